"""``check_settings``: local stays zero-config, a malformed value is refused anywhere, prod lists
every missing or malformed setting in one line, and no message ever repeats a secret."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_platform.settings import (
    DEFAULTS,
    NUMERIC_SETTINGS,
    SECRET_SETTINGS,
    ConfigError,
    account_problem,
    check_settings,
    setting,
    snowflake_private_key_der,
    uri_problem,
)
from ingest_platform_tests.conftest import rsa_pem

GOOD_KEY = "hex:" + hashlib.sha256(b"a test key, never a real one").hexdigest()


def prod_env(**overrides: str) -> dict[str, str]:
    env = {
        "INGEST_ENV": "prod",
        "SNOWFLAKE_ACCOUNT": "myorg-myaccount",
        "SNOWFLAKE_USER": "INGEST_LOADER_SVC",
        "SNOWFLAKE_PASSWORD": "a-password",
        "SNOWFLAKE_DATABASE": "ANALYTICS",
        "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
        "INGEST_RAW_URI": "s3://my-bucket/ingest/raw",
        "ORDERS_LANDING_URI": "gs://my-bucket/ingest/landing/orders",
        "PROXY_LIST": "http://user:pw@gate.example.com:7000",
        "PRIVACY_HMAC_KEY": GOOD_KEY,
        "TIKTOK_TARGETS": "@somecreator,#sometag",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def problems_of(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        check_settings(env)
    message = str(raised.value)
    assert "\n" not in message
    return message


# ---- local ---------------------------------------------------------------------------------------


def test_local_is_zero_config() -> None:
    check_settings({})
    check_settings({"INGEST_ENV": "local"})


@pytest.mark.parametrize("name", ["staging", "production", "PROD", "dev"])
def test_an_unknown_environment_is_refused(name: str) -> None:
    assert f"INGEST_ENV={name!r}" in problems_of({"INGEST_ENV": name})


def test_local_refuses_every_malformed_value_at_once() -> None:
    message = problems_of(
        {
            "TIKTOK_TARGETS": "@@not a handle",
            "ORDERS_BUFFER_COUNT_RECORDS": "ten thousand",
            "ORDERS_BUFFER_FLUSH_SECONDS": "0",
            "SCRAPER_MIN_DELAY_S": "nan",
            "PROXY_LIST": "http://user:S3cretPw@:7000",
            "TIKTOK_BACKEND": "selenium",
            "INGEST_RAW_URI": "ftp://host/raw",
        }
    )
    for name in (
        "TIKTOK_TARGETS",
        "ORDERS_BUFFER_COUNT_RECORDS",
        "ORDERS_BUFFER_FLUSH_SECONDS",
        "SCRAPER_MIN_DELAY_S",
        "PROXY_LIST",
        "TIKTOK_BACKEND",
        "INGEST_RAW_URI",
    ):
        assert name in message, (name, message)
    assert "S3cretPw" not in message


def test_bad_targets_are_refused_without_lists_like_a_bad_list() -> None:
    assert "TIKTOK_TARGETS" in problems_of({"TIKTOK_TARGETS": "@ok_creator,@@bad one"})
    assert "TIKTOK_TARGET_LISTS" in problems_of({"TIKTOK_TARGET_LISTS": "creators=@ok; Bad Name=@x"})


def test_min_delay_above_max_delay_is_refused() -> None:
    message = problems_of({"SCRAPER_MIN_DELAY_S": "5", "SCRAPER_MAX_DELAY_S": "1"})
    assert "SCRAPER_MIN_DELAY_S" in message and "SCRAPER_MAX_DELAY_S" in message


# ---- prod ----------------------------------------------------------------------------------------


def test_a_complete_prod_environment_passes() -> None:
    check_settings(prod_env())


def test_prod_with_nothing_names_every_missing_setting_in_one_line() -> None:
    message = problems_of({"INGEST_ENV": "prod"})
    for name in (
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_USER",
        "SNOWFLAKE_DATABASE",
        "SNOWFLAKE_WAREHOUSE",
        "SNOWFLAKE_PASSWORD",  # the auth problem names the three ways to authenticate
        "SNOWFLAKE_PRIVATE_KEY_PATH",
        "INGEST_RAW_URI",
        "ORDERS_LANDING_URI",
        "PROXY_LIST",
        "PRIVACY_HMAC_KEY",
    ):
        assert name in message, (name, message)
    assert message.count(";") >= 8


def test_prod_without_proxies_is_fine_when_only_apify_scrapes() -> None:
    check_settings(prod_env(PROXY_LIST=None, TIKTOK_BACKEND="apify"))
    assert "PROXY_LIST" in problems_of(prod_env(PROXY_LIST=None))


@pytest.mark.parametrize("key", ["changeme", "short", "hex:" + "00" * 32, "hex:zz"])
def test_prod_refuses_a_weak_default_or_undecodable_privacy_key(key: str) -> None:
    assert "PRIVACY_HMAC_KEY" in problems_of(prod_env(PRIVACY_HMAC_KEY=key))


def test_prod_needs_absolute_local_paths() -> None:
    message = problems_of(prod_env(INGEST_RAW_URI="relative/raw", ORDERS_LANDING_URI="/srv/landing"))
    assert "INGEST_RAW_URI" in message and "ORDERS_LANDING_URI" not in message


@pytest.mark.parametrize(
    "account",
    ["myorg-myaccount", "MYORG-MY_ACCOUNT_1", "xy12345", "xy12345.eu-west-1", "xy12345.us-east-2.aws"],
)
def test_account_identifier_forms_that_are_accepted(account: str) -> None:
    assert account_problem(account) is None
    check_settings(prod_env(SNOWFLAKE_ACCOUNT=account))


@pytest.mark.parametrize(
    "account",
    [
        "https://xy12345.snowflakecomputing.com",
        "xy12345.eu-west-1.snowflakecomputing.com",
        "my org",
        "-myaccount",
        "myorg-",
        "myorg.myaccount.extra.parts.here",
    ],
)
def test_account_urls_and_garbage_are_refused(account: str) -> None:
    assert "SNOWFLAKE_ACCOUNT" in problems_of(prod_env(SNOWFLAKE_ACCOUNT=account))


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("/srv/ingest/raw", True),
        ("s3://my-bucket/ingest/raw", True),
        ("s3://my-bucket", True),
        ("gs://my.bucket-1/prefix", True),
        ("s3://my-bucket/raw?endpoint_override=http://127.0.0.1:9000&region=us-east-1", True),
        ("s3://Bad_Bucket!/x", False),
        ("s3://ab/x", False),
        ("http://host/raw", False),
        ("file:///srv/raw", False),
        ("/srv/in gest", False),
    ],
)
def test_uri_forms(uri: str, ok: bool) -> None:
    assert (uri_problem(uri) is None) is ok, uri_problem(uri)


def test_credentials_in_a_uri_are_refused_and_never_echoed() -> None:
    message = problems_of(prod_env(INGEST_RAW_URI="s3://AKIAEXAMPLE:VerySecretKey42@my-bucket/raw"))
    assert "INGEST_RAW_URI" in message and "credentials" in message
    assert "VerySecretKey42" not in message and "AKIAEXAMPLE" not in message


# ---- Snowflake authentication --------------------------------------------------------------------


def test_prod_needs_exactly_one_snowflake_authentication() -> None:
    assert "no Snowflake authentication" in problems_of(prod_env(SNOWFLAKE_PASSWORD=None))
    pem, _ = rsa_pem()
    message = problems_of(prod_env(SNOWFLAKE_PRIVATE_KEY=pem))
    assert "SNOWFLAKE_PASSWORD" in message and "SNOWFLAKE_PRIVATE_KEY" in message and "exactly one" in message


def test_prod_accepts_a_key_pair_from_text_or_file(tmp_path: Path) -> None:
    pem, _ = rsa_pem("a passphrase")
    check_settings(
        prod_env(
            SNOWFLAKE_PASSWORD=None,
            SNOWFLAKE_PRIVATE_KEY=pem,
            SNOWFLAKE_PRIVATE_KEY_PASSPHRASE="a passphrase",
        )
    )
    path = tmp_path / "rsa_key.p8"
    path.write_text(pem)
    check_settings(
        prod_env(
            SNOWFLAKE_PASSWORD=None,
            SNOWFLAKE_PRIVATE_KEY_PATH=str(path),
            SNOWFLAKE_PRIVATE_KEY_PASSPHRASE="a passphrase",
        )
    )


def test_a_wrong_passphrase_is_one_line_naming_the_setting_at_load() -> None:
    pem, _ = rsa_pem("the right one")
    message = problems_of(
        prod_env(
            SNOWFLAKE_PASSWORD=None,
            SNOWFLAKE_PRIVATE_KEY=pem,
            SNOWFLAKE_PRIVATE_KEY_PASSPHRASE="NotTheRightOne",
        )
    )
    assert "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" in message
    assert "NotTheRightOne" not in message and "BEGIN" not in message


def test_private_key_der_matches_the_key_from_pem_base64_or_file(tmp_path: Path) -> None:
    import base64

    pem, der = rsa_pem("pp")
    assert snowflake_private_key_der(pem=pem, passphrase="pp") == der
    assert snowflake_private_key_der(pem=base64.b64encode(pem.encode()).decode(), passphrase="pp") == der
    path = tmp_path / "key.p8"
    path.write_text(pem)
    assert snowflake_private_key_der(path=str(path), passphrase="pp") == der
    plain, plain_der = rsa_pem()
    assert snowflake_private_key_der(pem=plain) == plain_der


@pytest.mark.parametrize(
    ("kwargs", "setting_named"),
    [
        ({"passphrase": None}, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),  # encrypted, no passphrase
        ({"passphrase": "wrong"}, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        ({"pem": "not a key at all", "passphrase": None}, "SNOWFLAKE_PRIVATE_KEY"),
        (
            {"pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "passphrase": None},
            "SNOWFLAKE_PRIVATE_KEY",
        ),
        ({"pem": None, "path": "/nonexistent/rsa_key.p8"}, "SNOWFLAKE_PRIVATE_KEY_PATH"),
    ],
)
def test_private_key_problems_are_one_line_config_errors(kwargs: dict, setting_named: str) -> None:
    pem, _ = rsa_pem("right")
    arguments = {"pem": pem, **kwargs}
    with pytest.raises(ConfigError) as raised:
        snowflake_private_key_der(**arguments)
    message = str(raised.value)
    assert setting_named in message and "\n" not in message
    assert "right" not in message.replace("wrong", "")


# ---- secrets and defaults ------------------------------------------------------------------------


def test_secret_values_are_never_served_as_plain_settings() -> None:
    for name in SECRET_SETTINGS:
        with pytest.raises(KeyError, match="EnvVar"):
            setting(name, {name: "x"})
    assert not SECRET_SETTINGS & set(DEFAULTS)  # a secret never has a default


def test_defaults_follow_the_environment() -> None:
    assert setting("SCRAPER_MIN_DELAY_S", {}) == "0.2"
    assert setting("SCRAPER_MIN_DELAY_S", {"INGEST_ENV": "prod"}) == "3"
    assert setting("SCRAPER_MIN_DELAY_S", {"SCRAPER_MIN_DELAY_S": "1.5", "INGEST_ENV": "prod"}) == "1.5"
    assert setting("ORDERS_BUFFER_COUNT_RECORDS", {"INGEST_ENV": "prod"}) == "10000"
    for name in NUMERIC_SETTINGS:
        float(setting(name, {}))  # every numeric default is itself valid


_NAMES = sorted(
    {*NUMERIC_SETTINGS, "PROXY_LIST", "TIKTOK_TARGETS", "TIKTOK_TARGET_LISTS", "PRIVACY_HMAC_KEY",
     "INGEST_RAW_URI", "ORDERS_LANDING_URI", "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_PRIVATE_KEY",
     "TIKTOK_BACKEND", "INGEST_ENV", "SNOWFLAKE_WAREHOUSE_SIZE"}
)  # fmt: skip
_HOSTILE_TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", " ", "\x00", "1e309", "-0", "9" * 5000, "://", "s3://", "@", "a:b:c:d", "hex:"]),
    st.builds(
        lambda part, n: part * n,
        st.sampled_from(["[", "{", "@", ":", ",", ";", "=", "9"]),
        st.integers(1, 5000),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_NAMES), _HOSTILE_TEXT, max_size=6), st.booleans())
def test_hostile_values_give_a_config_error_or_nothing(env: dict[str, str], prod: bool) -> None:
    if prod:
        env = {**prod_env(), **env, "INGEST_ENV": "prod"}
    try:
        check_settings(env)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and message
        assert len(message) <= 320 * (message.count("; ") + 1)  # a huge value is not echoed whole


def test_a_huge_value_gives_a_short_message() -> None:
    message = problems_of({"TIKTOK_TARGETS": "@" * 1_000_000, "ORDERS_BUFFER_COUNT_RECORDS": "9" * 5000})
    assert len(message) < 700 and "TIKTOK_TARGETS" in message and "ORDERS_BUFFER_COUNT_RECORDS" in message


def test_phone_regions_are_checked_at_load_and_reach_the_privacy_resource(monkeypatch) -> None:
    from ingest_platform.dagster_layer.environments import resources_for

    with pytest.raises(ConfigError, match="PRIVACY_PHONE_REGIONS: unknown phone region"):
        check_settings({"PRIVACY_PHONE_REGIONS": "GB,ZZ"})
    with pytest.raises(ConfigError, match="PRIVACY_PHONE_REGION takes one region"):
        check_settings({"PRIVACY_PHONE_REGION": "DE,FR"})
    monkeypatch.setenv("PRIVACY_PHONE_REGION", "de")
    monkeypatch.setenv("PRIVACY_PHONE_REGIONS", "at, ch")
    privacy = resources_for("local")["privacy"]
    assert privacy.default_phone_region == "DE" and privacy.extra_phone_regions == ["AT", "CH"]
