"""Where the pseudonymisation key comes from, and the rules it must pass.

The key lives outside the data (an environment variable / secret manager in production):
whoever holds both the key and the warehouse can re-identify people, so the warehouse alone
must not be enough. In ``prod`` a missing, short or well-known key is a hard error naming the
setting. Locally a missing key is generated once and kept in the Dagster instance directory
(mode 0600, published atomically: the file name never shows a partial key or wider permissions;
the directory is created 0700 when it did not exist) so tokens stay stable across runs without
anybody configuring anything. The key reaches Dagster resources only as ``EnvVar`` (never a
config value), so it is never stored in a run or job snapshot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

KEY_SETTING = "PRIVACY_HMAC_KEY"
KEY_ID_SETTING = "PRIVACY_HMAC_KEY_ID"
KEY_FILE_NAME = "privacy_hmac.key"
MIN_KEY_BYTES = 32
STRICT_ENVS = frozenset({"prod", "production", "staging"})

# Values that end up in .env.example files, docs and tutorials: never acceptable in prod.
KNOWN_DEFAULT_KEYS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "secret",
        "default",
        "password",
        "test",
        "dev",
        "local",
        "example",
        "your-secret-key",
        "your_secret_key",
        "privacy_hmac_key",
        "please-change-me-this-is-not-a-secret",
        "dev-only-privacy-key-do-not-use-in-prod",
        "0" * 64,
        "f" * 64,
    }
)


class PrivacyKeyError(RuntimeError):
    """The HMAC key is missing or unfit for the environment; the message names the setting."""


@dataclass(frozen=True)
class KeyMaterial:
    """A pseudonymisation key and the id stored beside every token it makes."""

    key: bytes = field(repr=False)
    key_id: str
    source: str = "setting"  # "setting" | "file" | "generated"

    def __repr__(self) -> str:  # the dataclass repr would be fine too; be explicit: no key
        return f"KeyMaterial(key_id={self.key_id!r}, source={self.source!r}, key=<{len(self.key)} bytes>)"


def derive_key_id(key: bytes) -> str:
    """A short, stable id for a key that reveals nothing about it.

    Keyed (HMAC under the key itself) rather than a bare hash, so even a weak key cannot be
    confirmed by hashing guesses against the id stored in every token.
    """
    return "k" + hmac.new(key, b"ingest_platform/privacy/key-id", hashlib.sha256).hexdigest()[:8]


def decode_secret(secret: str) -> bytes:
    """Key bytes from a setting: ``hex:...``, ``base64:...`` or else the raw UTF-8 text."""
    text = secret.strip()
    try:
        if text.startswith("hex:"):
            return bytes.fromhex(text[4:])
        if text.startswith("base64:"):
            return base64.b64decode(text[7:], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise PrivacyKeyError(f"{KEY_SETTING} is not valid {text.split(':', 1)[0]}: {exc}") from None
    return text.encode("utf-8")


def key_problem(secret: str | None) -> str | None:
    """Why a configured secret is unfit for production, or None if it is fine."""
    if secret is None or not secret.strip():
        return "is not set"
    if secret.strip().lower() in KNOWN_DEFAULT_KEYS:
        return "is a well-known default value"
    key = decode_secret(secret)
    if len(key) < MIN_KEY_BYTES:
        return f"is too short ({len(key)} bytes; at least {MIN_KEY_BYTES} are required)"
    if len(set(key)) < 8:
        return "has too little variety to be a random key"
    return None


def resolve_key(
    secret: str | None,
    *,
    env: str,
    instance_dir: Path,
    key_id: str | None = None,
) -> KeyMaterial:
    """The key to pseudonymise with in ``env``.

    ``secret`` is the value of ``PRIVACY_HMAC_KEY`` (None when unset). In a strict env
    (prod/production/staging) a missing, short or default key raises ``PrivacyKeyError``.
    Elsewhere a configured key is used (with a warning if weak) and a missing one is read
    from, or generated once into, ``instance_dir/privacy_hmac.key``.
    """
    strict = env.strip().lower() in STRICT_ENVS
    if secret is not None and secret.strip():
        problem = key_problem(secret)
        if problem is not None:
            if strict:
                raise PrivacyKeyError(
                    f"{KEY_SETTING} {problem}: set it to at least {MIN_KEY_BYTES} random bytes "
                    f"(e.g. 'hex:' + 64 hex digits) from your secret manager"
                )
            logger.warning("%s %s; acceptable only outside production (env=%s)", KEY_SETTING, problem, env)
        key = decode_secret(secret)
        return KeyMaterial(key=key, key_id=key_id or derive_key_id(key), source="setting")
    if strict:
        raise PrivacyKeyError(
            f"{KEY_SETTING} is not set: production needs a key of at least {MIN_KEY_BYTES} random bytes "
            "held outside the data (environment / secret manager)"
        )
    key, source = _local_key(Path(instance_dir))
    return KeyMaterial(key=key, key_id=key_id or derive_key_id(key), source=source)


def _local_key(instance_dir: Path) -> tuple[bytes, str]:
    path = instance_dir / KEY_FILE_NAME
    if path.exists():
        return _read_key_file(path), "file"
    if not instance_dir.exists():
        # A directory we create holds a secret: owner only. An existing one is the operator's to set.
        instance_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_bytes(MIN_KEY_BYTES)
    if not _publish_key_file(path, (key.hex() + "\n").encode("ascii")):
        return _read_key_file(path), "file"  # another process published its key first: use that one
    logger.info("generated a local privacy key in %s (not for production)", path)
    return key, "generated"


def _publish_key_file(path: Path, content: bytes) -> bool:
    """Write ``content`` to ``path`` atomically with mode 0600; False if ``path`` already exists.

    The key is written and fsynced into a private temporary file (created 0600 whatever the
    umask, O_EXCL), then hard-linked to its name: the name never points at a partial or
    wider-permission file, and of two processes starting at once exactly one key wins (the other
    process's link fails and it reads the winner's key).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask can only narrow 0600; be explicit anyway
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _read_key_file(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); restricting it to 0600", path, mode)
        path.chmod(0o600)
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PrivacyKeyError(f"{path} does not hold a hex key; delete it to generate a new one") from None
    if len(key) < MIN_KEY_BYTES:
        raise PrivacyKeyError(f"{path} holds a key shorter than {MIN_KEY_BYTES} bytes")
    return key
