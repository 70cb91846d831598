"""The ``PROXY_LIST`` setting: residential proxy endpoints, parsed so passwords never leak.

``PROXY_LIST`` is a comma/newline-separated list, or the path of a file with one entry per line
(blank lines and ``#`` comments ignored). Each entry is one of the forms providers hand out:

- ``http://user:pass@host:port``, ``https://…``, ``socks5://user:pass@host:port`` (also ``socks5h``,
  ``socks4``); credentials may be percent-encoded;
- ``user:pass@host:port`` (scheme-less URL, taken as ``http``);
- ``host:port:user:pass``, the common provider export format (a password may contain ``:``), and its
  mirror ``user:pass:host:port`` when only the last field is a port;
- ``host:port`` (no authentication).

Passwords are held as :class:`pydantic.SecretStr`. Nothing this module renders (``repr``, ``str``,
``redacted_url``, error messages) contains one; :func:`redact_secrets` masks credentials in any
other text (exception messages from a browser or HTTP client, log lines).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

__all__ = [
    "DEFAULT_SETTING",
    "ProxyConfigError",
    "ProxyEndpoint",
    "load_proxy_list_from_env",
    "parse_proxy_entry",
    "parse_proxy_list",
    "redact_secrets",
]

DEFAULT_SETTING = "PROXY_LIST"
SCHEMES = frozenset({"http", "https", "socks4", "socks5", "socks5h"})
MASK = "***"

# One DNS label; providers' gateway names sometimes contain '_' so it is allowed.
_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?", re.ASCII)


class ProxyConfigError(ValueError):
    """An invalid proxy entry. The message names the setting, the entry number and the redacted
    entry; it never contains a password."""


class ProxyEndpoint(BaseModel):
    """One proxy. Frozen and hashable; safe to log via ``str()``/``repr()``/``redacted_url``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: str = "http"
    host: str
    port: int = Field(ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("scheme")
    @classmethod
    def _check_scheme(cls, value: str) -> str:
        value = value.lower()
        if value not in SCHEMES:
            raise ValueError(f"unsupported scheme {value!r} (use one of {', '.join(sorted(SCHEMES))})")
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not _valid_host(value):
            raise ValueError(f"invalid host {value!r}")
        return value

    @property
    def proxy_id(self) -> str:
        """Stable, non-secret id for metrics and logs: the same host/port/user always maps to it."""
        digest = hashlib.sha256(f"{self.host}:{self.port}:{self.username or ''}".encode()).hexdigest()
        return "p-" + digest[:10]

    @property
    def server(self) -> str:
        """``scheme://host:port`` without credentials (what Playwright calls ``server``)."""
        return f"{self.scheme}://{_host_for_url(self.host)}:{self.port}"

    @property
    def redacted_url(self) -> str:
        """``scheme://user:***@host:port``: the username stays visible, the password never does."""
        return _render(self.scheme, self.host, str(self.port), self.username, self.password is not None)

    def url_with_credentials(self) -> str:
        """The full URL including the password, for HTTP clients. Never log the result."""
        if self.username is None:
            return self.server
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.get_secret_value(), safe="")
        return f"{self.scheme}://{userinfo}@{_host_for_url(self.host)}:{self.port}"

    def playwright_proxy(self) -> dict[str, str]:
        """Settings for Playwright's ``proxy=`` (``server``, plus ``username``/``password`` if set)."""
        settings = {"server": self.server}
        if self.username is not None:
            settings["username"] = self.username
        if self.password is not None:
            settings["password"] = self.password.get_secret_value()
        return settings

    def __repr__(self) -> str:
        return f"ProxyEndpoint({self.proxy_id}, {self.redacted_url})"

    def __str__(self) -> str:
        return self.redacted_url


def parse_proxy_list(value: str | None, *, setting: str = DEFAULT_SETTING) -> list[ProxyEndpoint]:
    """Parse the setting's value (entries, or a file path) into endpoints, de-duplicated in order.

    An empty value means "no proxies" and returns ``[]``. Raises :class:`ProxyConfigError`.
    """
    text = (value or "").strip()
    if not text:
        return []
    source = None
    if _looks_like_path(text):
        path = Path(text).expanduser()
        if not _is_file(path):
            raise ProxyConfigError(
                f"{setting}: {_mask_unparsed(text)!r} looks like a file path but no such file exists "
                "(give proxy URLs separated by commas or newlines, or the path of an existing file)"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProxyConfigError(
                f"{setting}: cannot read proxy file {path}: {type(exc).__name__}"
            ) from None
        source = str(path)

    endpoints: dict[str, ProxyEndpoint] = {}
    for number, entry in enumerate(_entries(text), start=1):
        where = f"{setting} entry {number}" + (f" (file {source})" if source else "")
        endpoint = parse_proxy_entry(entry, where=where)
        endpoints.setdefault(endpoint.proxy_id, endpoint)
    if not endpoints and source is not None:
        raise ProxyConfigError(f"{setting}: proxy file {source} has no entries")
    return list(endpoints.values())


def load_proxy_list_from_env(
    env: Mapping[str, str] | None = None, *, setting: str = DEFAULT_SETTING
) -> list[ProxyEndpoint]:
    """``parse_proxy_list(os.environ[setting])``; an unset variable means no proxies."""
    environ = os.environ if env is None else env
    return parse_proxy_list(environ.get(setting, ""), setting=setting)


def parse_proxy_entry(entry: str, *, where: str = f"{DEFAULT_SETTING} entry") -> ProxyEndpoint:
    """Parse one entry. ``where`` prefixes error messages (e.g. ``"PROXY_LIST entry 3"``)."""
    raw = entry.strip()
    try:
        parts = _split_entry(raw)
    except _Unparseable as exc:
        raise ProxyConfigError(f"{where} ({_mask_unparsed(raw)}): {exc}") from None
    scheme, host, port_text, username, password = parts
    shown = _render(scheme, host, port_text, username, password is not None)

    def fail(reason: str) -> ProxyConfigError:
        return ProxyConfigError(f"{where} ({shown}): {reason}")

    if scheme not in SCHEMES:
        raise fail(f"unsupported scheme {scheme!r} (use one of {', '.join(sorted(SCHEMES))})")
    if not host:
        raise fail("missing host")
    if not _valid_host(host):
        raise fail(f"invalid host {host!r}")
    if not port_text:
        raise fail("missing port (providers always give one, e.g. host:8000)")
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise fail(f"port {port_text!r} is not a number between 1 and 65535")
    if password is not None and not username:
        raise fail("password given without a username")
    try:
        return ProxyEndpoint(
            scheme=scheme,
            host=host,
            port=int(port_text),
            username=username or None,
            password=SecretStr(password) if password is not None else None,
        )
    except ValidationError as exc:
        # include_input=False: an input could be the password.
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise fail(reasons) from None


# Credentials in a URL: scheme://user:password@ (the password may contain '@': match to the last
# '@' before the host), and the scheme-less user:password@host:port form.
_URL_CREDENTIALS_RE = re.compile(
    r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s:/@]*):(?P<password>[^\s/]*)@(?=[^\s@/]+)"
)
_BARE_CREDENTIALS_RE = re.compile(
    r"(?<![\w:/@.])(?P<user>[A-Za-z0-9_.+\-]+):(?P<password>[^\s:/@]+)@(?=[A-Za-z0-9.\-\[\]]+:\d{1,5}\b)"
)


def redact_secrets(text: str, *, secrets: Iterable[str] = ()) -> str:
    """Mask ``user:pass@`` credentials in every URL inside ``text`` (and any literal ``secrets``).

    ``http://u:p@h:1/x`` becomes ``http://u:***@h:1/x``; ``u:p@h:1`` becomes ``u:***@h:1``.
    """
    redacted = _URL_CREDENTIALS_RE.sub(lambda m: f"{m['prefix']}{m['user']}:{MASK}@", text)
    redacted = _BARE_CREDENTIALS_RE.sub(lambda m: f"{m['user']}:{MASK}@", redacted)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        redacted = redacted.replace(secret, MASK)
    return redacted


# --------------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------------


class _Unparseable(ValueError):
    """The entry's shape is not one of the supported forms (no fields identified)."""


def _entries(text: str) -> Iterable[str]:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # A trailing " # comment" (space before '#'): passwords do not contain whitespace.
        stripped = re.split(r"\s+#", stripped, maxsplit=1)[0]
        for entry in stripped.split(","):
            if entry.strip():
                yield entry.strip()


def _looks_like_path(text: str) -> bool:
    """One token with a path separator (entries have none outside '://'), '~', or an existing file."""
    if any(sep in text for sep in ("\n", ",", "://", "@")):
        return False
    return "/" in text or "\\" in text or text.startswith("~") or _is_file(Path(text))


def _is_file(path: Path) -> bool:
    # Path.is_file() raises on a name the OS refuses outright (ENAMETOOLONG for a 256+ character
    # token): such a value is not a file, and the caller reports it as a bad entry.
    try:
        return path.is_file()
    except OSError:
        return False


def _split_entry(raw: str) -> tuple[str, str, str, str | None, str | None]:
    """Split an entry into (scheme, host, port, username, password) without validating them."""
    if not raw:
        raise _Unparseable("empty entry")
    if any(c.isspace() for c in raw):
        raise _Unparseable("contains whitespace")
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        return _split_authority(scheme.lower(), rest)
    if "@" in raw:
        return _split_authority("http", raw)
    fields = raw.split(":")
    if len(fields) == 2:
        return "http", fields[0], fields[1], None, None
    if len(fields) >= 4:
        host_first = _is_port(fields[1])
        user_first = _is_port(fields[-1])
        if host_first and user_first:
            # "user:1234:host:8080" vs "host:1234:user:8080": trust whichever end looks like a host,
            # so a numeric password is never mistaken for a port (and shown in logs).
            host_first = _looks_like_host(fields[0]) or not _looks_like_host(fields[-2])
        if host_first:  # host:port:user:pass (the password may contain ':')
            return "http", fields[0], fields[1], fields[2], ":".join(fields[3:])
        if user_first:  # user:pass:host:port
            return "http", fields[-2], fields[-1], fields[0], ":".join(fields[1:-2])
        raise _Unparseable("expected host:port:user:pass (no valid port in field 2 or in the last field)")
    raise _Unparseable("expected scheme://user:pass@host:port, host:port:user:pass or host:port")


def _split_authority(scheme: str, rest: str) -> tuple[str, str, str, str | None, str | None]:
    # Cut any path/query, then the userinfo at the LAST '@' (a raw password may contain '@').
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, hostport = authority.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text)
        password = unquote(password_text) if colon else None
    if hostport.startswith("["):  # [IPv6]:port
        host, _, after = hostport[1:].partition("]")
        port = after[1:] if after.startswith(":") else after
    else:
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    return scheme, host, port, username, password


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL_RE.fullmatch(label) for label in name.split("."))


def _looks_like_host(text: str) -> bool:
    """An IP address, ``localhost`` or a dotted name: what a gateway field looks like."""
    return _valid_host(text) and ("." in text or text.lower() == "localhost" or ":" in text)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _render(scheme: str, host: str, port: str, username: str | None, has_password: bool) -> str:
    userinfo = ""
    if username:
        userinfo = f"{username}:{MASK}@" if has_password else f"{username}@"
    elif has_password:
        userinfo = f":{MASK}@"
    return f"{scheme}://{userinfo}{_host_for_url(host)}" + (f":{port}" if port else "")


def _mask_unparsed(raw: str) -> str:
    """Redact an entry whose fields could not be identified: keep only what cannot be a password."""
    if "@" in raw:
        userinfo, _, hostpart = raw.rpartition("@")
        prefix, sep, userinfo = userinfo.rpartition("://")
        user = userinfo.split(":", 1)[0]
        return f"{prefix}{sep}{user}:{MASK}@{hostpart}"
    if "://" in raw:
        return raw  # a URL without userinfo carries no credentials
    fields = raw.split(":")
    if len(fields) <= 2:
        return raw  # host or host:port: no credential field
    # host:port:user:pass-like but unparseable: any field could be the secret; show the first only.
    return ":".join([fields[0]] + [MASK] * (len(fields) - 1))
