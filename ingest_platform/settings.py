"""Settings: every environment variable, its default, which ones are secrets, and the load-time check.

``ConfigError`` is the one exception type for a setting that is missing or malformed: its text
is a single line that names the setting and the fix, so the CLI and the code location can show
it as is (no traceback). ``check_settings`` looks at the whole environment at once and reports
every problem in one message, ``; ``-separated, each problem cut at 300 characters.

Rules:

- ``INGEST_ENV`` is ``local`` (default) or ``prod``; anything else is refused.
- **local** stays zero-config: nothing is required. A value that *is* set must still be well
  formed (a bad ``TIKTOK_TARGETS``, a non-numeric ``ORDERS_BUFFER_COUNT_RECORDS``, an unparseable
  ``PROXY_LIST``): it is refused at load rather than at the first run.
- **prod** requires ``SNOWFLAKE_ACCOUNT`` (an account identifier: ``orgname-account_name`` or
  the legacy ``locator[.region[.cloud]]``, not a URL), ``SNOWFLAKE_USER``, exactly one Snowflake
  authentication (``SNOWFLAKE_PASSWORD``, ``SNOWFLAKE_PRIVATE_KEY`` or
  ``SNOWFLAKE_PRIVATE_KEY_PATH``; a key is loaded with ``SNOWFLAKE_PRIVATE_KEY_PASSPHRASE`` to
  prove the pair fits), ``SNOWFLAKE_DATABASE``, ``SNOWFLAKE_WAREHOUSE``, ``INGEST_RAW_URI`` and
  ``ORDERS_LANDING_URI`` (an absolute local path or ``s3://bucket/prefix`` / ``gs://bucket/prefix``),
  ``PROXY_LIST`` (unless ``TIKTOK_BACKEND=apify``) and a real ``PRIVACY_HMAC_KEY`` (≥ 32 bytes,
  not a well-known default).
- A URI never carries credentials (``s3://KEY:SECRET@bucket``): object-store credentials come
  from the cloud's own variables or role, never from a value Dagster stores in its run config.

Secrets (``SECRET_SETTINGS``) reach Dagster resources only through ``EnvVar``, resolved at run
time (see ``dagster_layer/environments.py``): never a config value or a default, so they never
appear in a job snapshot, a run config, a log or metadata. Messages here name a setting and what
is wrong with it, never its value when it is a secret.

No Dagster imports here: the CLI calls this before it starts anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

ENVIRONMENTS = ("local", "prod")

# Secrets: only ever passed to resources as EnvVar (or read from a file whose *path* is the setting).
# PROXY_LIST is a secret as a whole: inline entries carry proxy passwords.
SECRET_SETTINGS = frozenset(
    {
        "PROXY_LIST",
        "PRIVACY_HMAC_KEY",
        "APIFY_TOKEN",
        "ANTICAPTCHA_API_KEY",
        "SNOWFLAKE_PASSWORD",
        "SNOWFLAKE_PRIVATE_KEY",
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
        "EMBEDDINGS_API_KEY",
        "ALERT_SLACK_TOKEN",
        "ALERT_WEBHOOK_URL",
    }
)

# Non-secret settings with a default; a second value is the prod default when it differs.
DEFAULTS: dict[str, tuple[str, str | None]] = {
    "TIKTOK_BASE_URL": ("http://127.0.0.1:8765", "https://www.tiktok.com"),
    "SCRAPER_MIN_DELAY_S": ("0.2", "3"),
    "SCRAPER_MAX_DELAY_S": ("0.6", "8"),
    "SCRAPER_LIST_WAIT_S": ("10", None),
    "ORDERS_BUFFER_COUNT_RECORDS": ("10000", None),
    "ORDERS_BUFFER_FLUSH_SECONDS": ("60", None),
    "ORDERS_FRESHNESS_HOURS": ("6", None),
    "ORDERS_RETRY_BACKOFF_SECONDS": ("60", None),
    "ORDERS_RETRY_BACKOFF_MAX_SECONDS": ("900", None),
    "ORDERS_RETRY_ALERT_AFTER": ("3", None),
    "ORDERS_SENSOR_INTERVAL_SECONDS": ("30", None),
    "EMBEDDINGS_PROVIDER": ("local", "snowflake_cortex"),
    "APIFY_API_URL": ("https://api.apify.com", None),
    "APIFY_TIKTOK_ACTOR": ("clockworks/tiktok-scraper", None),
    "APIFY_FACEBOOK_ACTOR": ("apify/facebook-posts-scraper", None),
    "ANTICAPTCHA_HOST": ("api.anti-captcha.com", None),
    "ANTICAPTCHA_BUDGET_USD_PER_RUN": ("1.0", None),
    "PRICE_PROXY_USD_PER_GB": ("8.0", None),
    "PRICE_CAPTCHA_USD_PER_1K": ("2.0", None),
    "PRICE_APIFY_USD_PER_1K_RESULTS": ("3.7", None),
    "PRICE_APIFY_USD_PER_CU": ("0.4", None),
    "SNOWFLAKE_ROLE": ("INGEST_LOADER", None),
    "SNOWFLAKE_SCHEMA": ("INGEST", None),
    "SNOWFLAKE_WAREHOUSE_SIZE": ("XSMALL", None),
    "SNOWFLAKE_CREDIT_PRICE_USD": ("3.0", None),
    "DAGSTER_UI_URL": ("http://127.0.0.1:3000", None),
    # Phone numbers written without +country code are read in this region, then (for national
    # spellings with a trunk "0" or a bracket) in the extra ones.
    "PRIVACY_PHONE_REGION": ("US", None),
    "PRIVACY_PHONE_REGIONS": ("GB,DE,FR,IN,BR", None),
}

# name -> (type, lowest allowed value, whether the lowest value itself is allowed)
NUMERIC_SETTINGS: dict[str, tuple[type, float, bool]] = {
    "ORDERS_BUFFER_COUNT_RECORDS": (int, 1, True),
    "ORDERS_BUFFER_FLUSH_SECONDS": (int, 1, True),
    "ORDERS_FRESHNESS_HOURS": (float, 0, False),
    "ORDERS_RETRY_BACKOFF_SECONDS": (int, 0, True),  # 0: retry on the next tick
    "ORDERS_RETRY_BACKOFF_MAX_SECONDS": (int, 0, True),
    "ORDERS_RETRY_ALERT_AFTER": (int, 1, True),
    "ORDERS_SENSOR_INTERVAL_SECONDS": (int, 1, True),
    "SCRAPER_MIN_DELAY_S": (float, 0, True),
    "SCRAPER_MAX_DELAY_S": (float, 0, True),
    "SCRAPER_LIST_WAIT_S": (float, 0, True),
    "ANTICAPTCHA_BUDGET_USD_PER_RUN": (float, 0, True),
    "PRICE_PROXY_USD_PER_GB": (float, 0, True),
    "PRICE_CAPTCHA_USD_PER_1K": (float, 0, True),
    "PRICE_APIFY_USD_PER_1K_RESULTS": (float, 0, True),
    "PRICE_APIFY_USD_PER_CU": (float, 0, True),
    "SNOWFLAKE_CREDIT_PRICE_USD": (float, 0, False),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "TIKTOK_BACKEND": ("browser", "apify", "auto"),
    "EMBEDDINGS_PROVIDER": ("local", "openai", "snowflake_cortex", "hashing"),
}

SNOWFLAKE_AUTH_SETTINGS = ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH")
PROD_REQUIRED = ("SNOWFLAKE_USER", "SNOWFLAKE_DATABASE", "SNOWFLAKE_WAREHOUSE")

# orgname-account_name (preferred), or a legacy locator with optional region and cloud.
_ACCOUNT_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9_]+|[A-Za-z]{1,3}[0-9]{3,8}(\.[a-z0-9\-_]+(\.(aws|gcp|azure))?)?"
)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]")
_OBJECT_STORE_SCHEMES = ("s3", "gs")


class ConfigError(ValueError):
    """A setting is missing or malformed; ``str(error)`` is one line naming it and the fix."""


def environment_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get("INGEST_ENV") or "local").strip()


def setting(name: str, environ: Mapping[str, str] | None = None, *, environment: str | None = None) -> str:
    """A non-secret setting's value, or its default for the environment (``DEFAULTS``)."""
    env = os.environ if environ is None else environ
    if name in SECRET_SETTINGS:
        raise KeyError(f"{name} is a secret: pass it to a resource as EnvVar({name!r}), never its value")
    value = env.get(name)
    if value:
        return value
    local_default, prod_default = DEFAULTS[name]
    if (environment or environment_name(env)) == "prod" and prod_default is not None:
        return prod_default
    return local_default


def check_settings(environ: Mapping[str, str] | None = None) -> None:
    """Raise ``ConfigError`` listing every problem in ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    name = environment_name(env)
    if name not in ENVIRONMENTS:
        problems.append(f"INGEST_ENV={name!r} is not one of {', '.join(ENVIRONMENTS)}")
    problems += _value_problems(env)
    if name == "prod":
        problems += _prod_problems(env)
    if problems:
        raise ConfigError("; ".join(_shorten(problem) for problem in problems))


MAX_PROBLEM_CHARS = 300


def _shorten(problem: str) -> str:
    """One problem, at most ``MAX_PROBLEM_CHARS``: a 10 MB value must not become a 10 MB message."""
    return problem if len(problem) <= MAX_PROBLEM_CHARS else problem[: MAX_PROBLEM_CHARS - 1] + "…"


def _set(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def _value_problems(env: Mapping[str, str]) -> list[str]:
    """Problems with values that are set, in any environment."""
    problems: list[str] = []
    for name, (kind, lowest, inclusive) in NUMERIC_SETTINGS.items():
        text = _set(env, name)
        if not text:
            continue
        try:
            number = kind(text)
        except ValueError:
            problems.append(f"{name}={text!r} is not {'an integer' if kind is int else 'a number'}")
            continue
        if number != number or number in (float("inf"), float("-inf")):
            problems.append(f"{name}={text!r} is not a finite number")
        elif number < lowest or (number == lowest and not inclusive):
            problems.append(f"{name}={text!r} must be {'at least' if inclusive else 'above'} {lowest:g}")
    low, high = _set(env, "SCRAPER_MIN_DELAY_S"), _set(env, "SCRAPER_MAX_DELAY_S")
    try:
        if low and high and float(low) > float(high):
            problems.append(f"SCRAPER_MIN_DELAY_S={low} is above SCRAPER_MAX_DELAY_S={high}")
    except ValueError:
        pass  # already reported above
    for name, choices in CHOICES.items():
        text = _set(env, name)
        if text and text not in choices:
            problems.append(f"{name}={text!r} is not one of {', '.join(choices)}")
    for name in ("INGEST_RAW_URI", "ORDERS_LANDING_URI"):
        text = _set(env, name)
        if text:
            problem = uri_problem(text)
            if problem:
                problems.append(f"{name} {problem}")
    problems += _phone_region_problems(env)
    problems += _parsed_problems(env)
    return problems


def phone_regions(text: str) -> list[str]:
    """``PRIVACY_PHONE_REGIONS``: comma-separated ISO 3166 codes, upper-cased, blanks dropped."""
    return [code.strip().upper() for code in text.split(",") if code.strip()]


def _phone_region_problems(env: Mapping[str, str]) -> list[str]:
    names = [name for name in ("PRIVACY_PHONE_REGION", "PRIVACY_PHONE_REGIONS") if _set(env, name)]
    if not names:
        return []
    import phonenumbers  # only when a region is set: the check stays cheap at load otherwise

    problems = []
    for name in names:
        codes = phone_regions(_set(env, name))
        unknown = [code for code in codes if code not in phonenumbers.SUPPORTED_REGIONS]
        if name == "PRIVACY_PHONE_REGION" and "," in _set(env, name):
            problems.append(f"{name} takes one region (put the others in PRIVACY_PHONE_REGIONS)")
        elif unknown:
            listed = ", ".join(unknown)[:80]
            problems.append(f"{name}: unknown phone region(s) {listed}; use ISO 3166 codes like US, GB")
    return problems


def _parsed_problems(env: Mapping[str, str]) -> list[str]:
    """Values whose own parser decides (proxies, targets, the privacy key): its message, one line."""
    from ingest_platform.privacy.keys import PrivacyKeyError, decode_secret
    from ingest_platform.scraping.proxy_config import ProxyConfigError, parse_proxy_list
    from ingest_platform.scraping.target_lists import TargetListError, parse_target_lists
    from ingest_platform.scraping.targets import parse_targets

    problems: list[str] = []
    checks: list[tuple[str, Callable[[], object], tuple[type[Exception], ...]]] = [
        # ProxyConfigError messages never contain a password.
        ("PROXY_LIST", lambda: parse_proxy_list(_set(env, "PROXY_LIST")), (ProxyConfigError,)),
        (
            "TIKTOK_TARGET_LISTS",
            lambda: parse_target_lists(_set(env, "TIKTOK_TARGET_LISTS")),
            (TargetListError,),
        ),
        # Without lists, TIKTOK_TARGETS is the 'default' list: as strict as a list's entries.
        ("TIKTOK_TARGETS", lambda: parse_targets(_set(env, "TIKTOK_TARGETS")), (ValueError,)),
        ("PRIVACY_HMAC_KEY", lambda: decode_secret(_set(env, "PRIVACY_HMAC_KEY")), (PrivacyKeyError,)),
    ]
    for name, parse, errors in checks:
        if not _set(env, name):
            continue
        try:
            parse()
        except errors as error:
            text = " ".join(str(error).split())
            problems.append(text if text.startswith(name) else f"{name}: {text}")
        except (ValueError, OSError) as error:
            # e.g. a PROXY_LIST so long the path probe fails: the value may be a secret, never echo it
            problems.append(f"{name} cannot be parsed ({type(error).__name__})")
    return problems


def _prod_problems(env: Mapping[str, str]) -> list[str]:
    from ingest_platform.privacy.keys import KEY_SETTING, MIN_KEY_BYTES, PrivacyKeyError, key_problem

    problems: list[str] = []
    account = _set(env, "SNOWFLAKE_ACCOUNT")
    if not account:
        problems.append("SNOWFLAKE_ACCOUNT is not set (the account identifier, e.g. myorg-myaccount)")
    else:
        problem = account_problem(account)
        if problem:
            problems.append(f"SNOWFLAKE_ACCOUNT {problem}")
    problems += [f"{name} is not set" for name in PROD_REQUIRED if not _set(env, name)]
    problems += snowflake_auth_problems(env)
    for name in ("INGEST_RAW_URI", "ORDERS_LANDING_URI"):
        text = _set(env, name)
        if not text:
            problems.append(f"{name} is not set (an absolute path or s3://bucket/prefix, gs://bucket/prefix)")
        elif not uri_problem(text) and "://" not in text and not Path(text).is_absolute():
            problems.append(f"{name} must be an absolute path or an object-store URI in prod")
    if not _set(env, "PROXY_LIST") and _set(env, "TIKTOK_BACKEND") != "apify":
        problems.append("PROXY_LIST is not set (proxy URLs, or the path of a file of them)")
    try:
        problem = key_problem(env.get(KEY_SETTING))
    except PrivacyKeyError:
        problem = None  # an undecodable key is already reported by _parsed_problems
    if problem:
        problems.append(f"{KEY_SETTING} {problem} (prod needs at least {MIN_KEY_BYTES} random bytes)")
    size = _set(env, "SNOWFLAKE_WAREHOUSE_SIZE")
    if size:
        from ingest_platform.warehouse.cost import normalise_size

        try:
            normalise_size(size)
        except ValueError as error:
            problems.append(f"SNOWFLAKE_WAREHOUSE_SIZE: {error}")
    return problems


def account_problem(account: str) -> str | None:
    """Why ``account`` is not a Snowflake account identifier, or None."""
    if "://" in account or "snowflakecomputing" in account.lower():
        return f"{account!r} is a URL: give the account identifier only (e.g. myorg-myaccount)"
    if not _ACCOUNT_RE.fullmatch(account):
        return (
            f"{account!r} is not an account identifier (orgname-account_name, or locator[.region[.cloud]] "
            "such as xy12345.eu-west-1)"
        )
    return None


def uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not a usable store location (local path, s3://bucket/prefix, gs://…), or None."""
    if "\0" in uri or any(c.isspace() for c in uri.strip("\n")):
        return "contains whitespace or a NUL byte"
    if "://" not in uri:
        return None
    scheme, _, rest = uri.partition("://")
    if scheme.lower() not in _OBJECT_STORE_SCHEMES:
        return f"has scheme {scheme!r}: use a local path, s3://bucket/prefix or gs://bucket/prefix"
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        # never echo it: the part before '@' is a credential
        return (
            "carries credentials in the URI; give object-store credentials through the cloud's own "
            "variables or role (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS)"
        )
    if not _BUCKET_RE.fullmatch(authority):
        return f"has an invalid bucket name {authority!r} (3-63 lower-case letters, digits, '.', '-')"
    return None


def snowflake_auth_problems(env: Mapping[str, str]) -> list[str]:
    """Exactly one Snowflake authentication must be given; a key must load with its passphrase."""
    given = [name for name in SNOWFLAKE_AUTH_SETTINGS if _set(env, name)]
    if not given:
        return [
            "no Snowflake authentication: set SNOWFLAKE_PRIVATE_KEY_PATH (key-pair, preferred), "
            "SNOWFLAKE_PRIVATE_KEY or SNOWFLAKE_PASSWORD"
        ]
    if len(given) > 1:
        return [f"more than one Snowflake authentication is set ({', '.join(given)}): keep exactly one"]
    if given[0] == "SNOWFLAKE_PASSWORD":
        return []
    try:
        snowflake_private_key_der(
            pem=env.get("SNOWFLAKE_PRIVATE_KEY"),
            path=env.get("SNOWFLAKE_PRIVATE_KEY_PATH"),
            passphrase=env.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        )
    except ConfigError as error:
        return [str(error)]
    return []


def snowflake_private_key_der(
    *, pem: str | None = None, path: str | None = None, passphrase: str | None = None
) -> bytes:
    """The Snowflake private key as unencrypted PKCS#8 DER bytes (what ``snowflake.connector.connect``
    takes as ``private_key``), from PEM text or a PEM file, decrypted with ``passphrase``.

    Raises ``ConfigError`` naming the setting at fault (never the key or the passphrase). The PEM
    may also be given base64-encoded (one line, as secret managers often store it).
    """
    if path:
        setting_name = "SNOWFLAKE_PRIVATE_KEY_PATH"
        try:
            data = Path(path).expanduser().read_bytes()
        except OSError as error:
            raise ConfigError(
                f"{setting_name}: cannot read {path} ({type(error).__name__}: {error.strerror})"
            ) from None
    elif pem:
        setting_name = "SNOWFLAKE_PRIVATE_KEY"
        data = pem.strip().encode()
        if b"-----BEGIN" not in data:
            import base64
            import binascii

            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"{setting_name} is neither PEM text (-----BEGIN PRIVATE KEY-----) nor base64 of it"
                ) from None
    else:
        raise ConfigError("no Snowflake private key: set SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY")
    from cryptography.hazmat.primitives import serialization

    password = passphrase.encode() if passphrase else None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            raise ConfigError(
                f"{setting_name} is encrypted: set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"
            ) from None
        raise ConfigError(
            f"SNOWFLAKE_PRIVATE_KEY_PASSPHRASE is set but {setting_name} is not encrypted: "
            "unset the passphrase"
        ) from None
    except ValueError:
        if password is not None:
            raise ConfigError(
                f"SNOWFLAKE_PRIVATE_KEY_PASSPHRASE does not decrypt {setting_name} (wrong passphrase, "
                "or not a PKCS#8 PEM private key)"
            ) from None
        raise ConfigError(
            f"{setting_name} is not a PEM private key (PKCS#8, -----BEGIN PRIVATE KEY-----)"
        ) from None
    except Exception as error:  # unsupported algorithm and the like: still one line, no key material
        raise ConfigError(f"{setting_name} cannot be loaded ({type(error).__name__})") from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
