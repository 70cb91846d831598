"""One resources dict per environment (``INGEST_ENV=local|prod``), as hooli-data-eng does.

``local``: embedded DuckDB, raw data and keys under DAGSTER_HOME, the sandbox's base URL, short
politeness delays. ``prod``: Snowflake; ``ingest_platform.settings.check_settings`` has refused
to load already if a required setting is missing or malformed.

Secrets (``settings.SECRET_SETTINGS``) are passed as ``EnvVar`` in *every* environment, local
and demo included, and only when set: Dagster stores the ``EnvVar``'s name in the job snapshot
and the run config, and reads the value from the environment when the run starts, so the value
is never at rest in ``$DAGSTER_HOME``. ``PROXY_LIST`` is one secret as a whole (inline entries
carry passwords); it may instead hold the path of a file of entries, which the resource reads at
run time, and it still goes through ``EnvVar``: one rule, whichever form it has. Non-secret
defaults come from ``settings.DEFAULTS``.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from ingest_platform.dagster_layer.alerts import AlertsResource
from ingest_platform.dagster_layer.resources import (
    ApifyResource,
    CaptchaResource,
    EmbeddingResource,
    LandingZoneResource,
    PricesResource,
    PrivacyResource,
    ProxyPoolResource,
    RawStoreResource,
    ThresholdsResource,
    TikTokScraperResource,
    WarehouseResource,
    dagster_home,
)
from ingest_platform.settings import SECRET_SETTINGS, phone_regions, setting

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8765"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _secret(name: str) -> EnvVar | None:
    """``EnvVar(name)`` when the secret is set, else None: never its value (Dagster would store it)."""
    if name not in SECRET_SETTINGS:
        raise KeyError(f"{name} is not listed in ingest_platform.settings.SECRET_SETTINGS")
    return EnvVar(name) if (os.environ.get(name) or "").strip() else None


def _privacy(environment: str) -> PrivacyResource:
    """The privacy shield: the key through EnvVar (prod requires it; local generates one)."""
    return PrivacyResource(
        hmac_key=_secret("PRIVACY_HMAC_KEY") if environment == "local" else EnvVar("PRIVACY_HMAC_KEY"),
        key_id=os.environ.get("PRIVACY_KEY_ID") if environment == "prod" else None,
        environment=environment,
        default_phone_region=setting("PRIVACY_PHONE_REGION").strip().upper(),
        extra_phone_regions=phone_regions(setting("PRIVACY_PHONE_REGIONS")),
    )


def _landing_retry() -> dict[str, int]:
    """Retry policy of the ORDERS landing sensor for failed loads (see the sensor's docstring)."""
    return {
        "retry_backoff_seconds": int(setting("ORDERS_RETRY_BACKOFF_SECONDS")),
        "retry_backoff_max_seconds": int(setting("ORDERS_RETRY_BACKOFF_MAX_SECONDS")),
        "retry_alert_after_failures": int(setting("ORDERS_RETRY_ALERT_AFTER")),
    }


def orders_sensor_interval_seconds() -> int:
    """ORDERS_SENSOR_INTERVAL_SECONDS: how often the daemon ticks the landing sensor (read at import)."""
    return int(setting("ORDERS_SENSOR_INTERVAL_SECONDS"))


def local_resources() -> dict[str, Any]:
    home = dagster_home()
    return {
        "warehouse": WarehouseResource(
            engine="duckdb", duckdb_path=_env("INGEST_DUCKDB_PATH", str(home / "warehouse.duckdb"))
        ),
        "raw_store": RawStoreResource(uri=_env("INGEST_RAW_URI", str(home / "raw"))),
        "landing": LandingZoneResource(
            uri=_env("ORDERS_LANDING_URI", str(home / "landing" / "orders")),
            buffer_count_records=int(setting("ORDERS_BUFFER_COUNT_RECORDS")),
            buffer_flush_seconds=int(setting("ORDERS_BUFFER_FLUSH_SECONDS")),
            **_landing_retry(),
        ),
        "proxy_pool": ProxyPoolResource(proxy_list=_secret("PROXY_LIST") or ""),
        "tiktok_scraper": TikTokScraperResource(
            base_url=setting("TIKTOK_BASE_URL", environment="local"),
            targets=_env("TIKTOK_TARGETS", ""),
            target_lists=_env("TIKTOK_TARGET_LISTS", ""),
            browser_executable=os.environ.get("INGEST_BROWSER_PATH"),
            min_delay_s=float(setting("SCRAPER_MIN_DELAY_S", environment="local")),
            max_delay_s=float(setting("SCRAPER_MAX_DELAY_S", environment="local")),
            list_wait_s=float(setting("SCRAPER_LIST_WAIT_S")),
            backend=_default_backend(),  # type: ignore[arg-type]
        ),
        # Unset: the key is generated once into $DAGSTER_HOME/privacy_hmac.key (0600) at run time.
        "privacy": _privacy("local"),
        "embeddings": EmbeddingResource(
            provider=setting("EMBEDDINGS_PROVIDER", environment="local"),  # type: ignore[arg-type]
            base_url=os.environ.get("EMBEDDINGS_BASE_URL"),
            api_key=_secret("EMBEDDINGS_API_KEY"),
            model=os.environ.get("EMBEDDINGS_MODEL"),
            cache_dir=str(home / "cache"),
        ),
        "thresholds": ThresholdsResource(),
        "alerts": _alerts(),
        "apify": _apify(),
        "prices": _prices(),
        "captcha": _captcha(),
    }


def _default_backend() -> str:
    # auto needs Apify; without a token the browser is the only backend there is.
    return _env("TIKTOK_BACKEND", "auto" if os.environ.get("APIFY_TOKEN") else "browser")


def _apify() -> ApifyResource:
    return ApifyResource(
        token=_secret("APIFY_TOKEN"),
        api_url=setting("APIFY_API_URL"),
        tiktok_actor=setting("APIFY_TIKTOK_ACTOR"),
        facebook_actor=setting("APIFY_FACEBOOK_ACTOR"),
    )


def _captcha() -> CaptchaResource:
    return CaptchaResource(
        api_key=_secret("ANTICAPTCHA_API_KEY"),
        host=setting("ANTICAPTCHA_HOST"),
        budget_usd_per_run=float(setting("ANTICAPTCHA_BUDGET_USD_PER_RUN")),
    )


def _prices() -> PricesResource:
    return PricesResource(
        proxy_usd_per_gb=float(setting("PRICE_PROXY_USD_PER_GB")),
        captcha_usd_per_1k=float(setting("PRICE_CAPTCHA_USD_PER_1K")),
        apify_usd_per_1k_results=float(setting("PRICE_APIFY_USD_PER_1K_RESULTS")),
        apify_usd_per_compute_unit=float(setting("PRICE_APIFY_USD_PER_CU")),
    )


def _alerts() -> AlertsResource:
    """Alert channels from the environment; secrets through EnvVar, only when configured."""
    return AlertsResource(
        webhook_url=_secret("ALERT_WEBHOOK_URL"),
        slack_token=_secret("ALERT_SLACK_TOKEN"),
        slack_channel=os.environ.get("ALERT_SLACK_CHANNEL"),
        ui_base_url=setting("DAGSTER_UI_URL"),
    )


def prod_resources() -> dict[str, Any]:
    from ingest_platform.privacy.keys import resolve_key

    # Fail at load, not at 3 a.m. in the first run: a prod deployment without a real key must not start
    # (check_settings reports it with everything else; this guards a direct call too).
    resolve_key(os.environ.get("PRIVACY_HMAC_KEY"), env="prod", instance_dir=dagster_home())
    return {
        "warehouse": WarehouseResource(
            engine="snowflake",
            snowflake_account=EnvVar("SNOWFLAKE_ACCOUNT"),
            snowflake_user=EnvVar("SNOWFLAKE_USER"),
            # Exactly one of the three is set (check_settings); the others stay None.
            snowflake_password=_secret("SNOWFLAKE_PASSWORD"),
            snowflake_private_key=_secret("SNOWFLAKE_PRIVATE_KEY"),
            snowflake_private_key_path=os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH") or None,
            snowflake_private_key_passphrase=_secret("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
            snowflake_role=setting("SNOWFLAKE_ROLE"),
            snowflake_database=EnvVar("SNOWFLAKE_DATABASE"),
            snowflake_schema=setting("SNOWFLAKE_SCHEMA"),
            snowflake_warehouse=EnvVar("SNOWFLAKE_WAREHOUSE"),
            warehouse_size=setting("SNOWFLAKE_WAREHOUSE_SIZE"),
            credit_price_usd=float(setting("SNOWFLAKE_CREDIT_PRICE_USD")),
        ),
        "raw_store": RawStoreResource(uri=EnvVar("INGEST_RAW_URI")),
        "landing": LandingZoneResource(
            uri=EnvVar("ORDERS_LANDING_URI"),
            buffer_count_records=int(setting("ORDERS_BUFFER_COUNT_RECORDS")),
            buffer_flush_seconds=int(setting("ORDERS_BUFFER_FLUSH_SECONDS")),
            **_landing_retry(),
        ),
        "proxy_pool": ProxyPoolResource(proxy_list=_secret("PROXY_LIST") or ""),
        "tiktok_scraper": TikTokScraperResource(
            base_url=setting("TIKTOK_BASE_URL", environment="prod"),
            # Either setting may be absent; the scrape of a list with no targets fails clearly.
            targets=EnvVar("TIKTOK_TARGETS") if os.environ.get("TIKTOK_TARGETS") else "",
            target_lists=EnvVar("TIKTOK_TARGET_LISTS") if os.environ.get("TIKTOK_TARGET_LISTS") else "",
            browser_executable=os.environ.get("INGEST_BROWSER_PATH"),
            min_delay_s=float(setting("SCRAPER_MIN_DELAY_S", environment="prod")),
            max_delay_s=float(setting("SCRAPER_MAX_DELAY_S", environment="prod")),
            list_wait_s=float(setting("SCRAPER_LIST_WAIT_S")),
            backend=_default_backend(),  # type: ignore[arg-type]
        ),
        "privacy": _privacy("prod"),
        "embeddings": EmbeddingResource(
            provider=setting("EMBEDDINGS_PROVIDER", environment="prod"),  # type: ignore[arg-type]
            base_url=os.environ.get("EMBEDDINGS_BASE_URL"),
            api_key=_secret("EMBEDDINGS_API_KEY"),
            model=os.environ.get("EMBEDDINGS_MODEL"),
        ),
        "thresholds": ThresholdsResource(),
        "alerts": _alerts(),
        "apify": _apify(),
        "prices": _prices(),
        "captcha": _captcha(),
    }


RESOURCES_BY_ENV = {"local": local_resources, "prod": prod_resources}


def resources_for(environment: str) -> dict[str, Any]:
    if environment not in RESOURCES_BY_ENV:
        raise ValueError(f"INGEST_ENV must be one of {sorted(RESOURCES_BY_ENV)}, got {environment!r}")
    return RESOURCES_BY_ENV[environment]()
