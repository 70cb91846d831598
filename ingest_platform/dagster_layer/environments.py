"""One resources dict per environment (``INGEST_ENV=local|prod``), as hooli-data-eng does.

``local``: embedded DuckDB, raw data and keys under DAGSTER_HOME, the sandbox's base URL, short
politeness delays. ``prod``: Snowflake and every secret through ``EnvVar``; a missing or default
privacy key stops the code location from loading.
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

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8765"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _landing_retry() -> dict[str, int]:
    """Retry policy of the ORDERS landing sensor for failed loads (see the sensor's docstring)."""
    return {
        "retry_backoff_seconds": int(_env("ORDERS_RETRY_BACKOFF_SECONDS", "60")),
        "retry_backoff_max_seconds": int(_env("ORDERS_RETRY_BACKOFF_MAX_SECONDS", "900")),
        "retry_alert_after_failures": int(_env("ORDERS_RETRY_ALERT_AFTER", "3")),
    }


def orders_sensor_interval_seconds() -> int:
    """ORDERS_SENSOR_INTERVAL_SECONDS: how often the daemon ticks the landing sensor (read at import)."""
    return int(_env("ORDERS_SENSOR_INTERVAL_SECONDS", "30"))


def local_resources() -> dict[str, Any]:
    home = dagster_home()
    return {
        "warehouse": WarehouseResource(
            engine="duckdb", duckdb_path=_env("INGEST_DUCKDB_PATH", str(home / "warehouse.duckdb"))
        ),
        "raw_store": RawStoreResource(uri=_env("INGEST_RAW_URI", str(home / "raw"))),
        "landing": LandingZoneResource(
            uri=_env("ORDERS_LANDING_URI", str(home / "landing" / "orders")),
            buffer_count_records=int(_env("ORDERS_BUFFER_COUNT_RECORDS", "10000")),
            buffer_flush_seconds=int(_env("ORDERS_BUFFER_FLUSH_SECONDS", "60")),
            **_landing_retry(),
        ),
        "proxy_pool": ProxyPoolResource(proxy_list=_env("PROXY_LIST", "")),
        "tiktok_scraper": TikTokScraperResource(
            base_url=_env("TIKTOK_BASE_URL", SANDBOX_DEFAULT_URL),
            targets=_env("TIKTOK_TARGETS", ""),
            target_lists=_env("TIKTOK_TARGET_LISTS", ""),
            browser_executable=os.environ.get("INGEST_BROWSER_PATH"),
            min_delay_s=float(_env("SCRAPER_MIN_DELAY_S", "0.2")),
            max_delay_s=float(_env("SCRAPER_MAX_DELAY_S", "0.6")),
            list_wait_s=float(_env("SCRAPER_LIST_WAIT_S", "10")),
            backend=_default_backend(),  # type: ignore[arg-type]
        ),
        "privacy": PrivacyResource(hmac_key=os.environ.get("PRIVACY_HMAC_KEY"), environment="local"),
        "embeddings": EmbeddingResource(
            provider=_env("EMBEDDINGS_PROVIDER", "local"),  # type: ignore[arg-type]
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
        token=EnvVar("APIFY_TOKEN") if os.environ.get("APIFY_TOKEN") else None,
        api_url=_env("APIFY_API_URL", "https://api.apify.com"),
        tiktok_actor=_env("APIFY_TIKTOK_ACTOR", "clockworks/tiktok-scraper"),
        facebook_actor=_env("APIFY_FACEBOOK_ACTOR", "apify/facebook-posts-scraper"),
    )


def _captcha() -> CaptchaResource:
    return CaptchaResource(
        api_key=EnvVar("ANTICAPTCHA_API_KEY") if os.environ.get("ANTICAPTCHA_API_KEY") else None,
        host=_env("ANTICAPTCHA_HOST", "api.anti-captcha.com"),
        budget_usd_per_run=float(_env("ANTICAPTCHA_BUDGET_USD_PER_RUN", "1.0")),
    )


def _prices() -> PricesResource:
    return PricesResource(
        proxy_usd_per_gb=float(_env("PRICE_PROXY_USD_PER_GB", "8.0")),
        captcha_usd_per_1k=float(_env("PRICE_CAPTCHA_USD_PER_1K", "2.0")),
        apify_usd_per_1k_results=float(_env("PRICE_APIFY_USD_PER_1K_RESULTS", "3.7")),
        apify_usd_per_compute_unit=float(_env("PRICE_APIFY_USD_PER_CU", "0.4")),
    )


def _alerts() -> AlertsResource:
    """Alert channels from the environment; secrets through EnvVar, only when configured."""
    return AlertsResource(
        webhook_url=EnvVar("ALERT_WEBHOOK_URL") if os.environ.get("ALERT_WEBHOOK_URL") else None,
        slack_token=EnvVar("ALERT_SLACK_TOKEN") if os.environ.get("ALERT_SLACK_TOKEN") else None,
        slack_channel=os.environ.get("ALERT_SLACK_CHANNEL"),
        ui_base_url=_env("DAGSTER_UI_URL", "http://127.0.0.1:3000"),
    )


def prod_resources() -> dict[str, Any]:
    from ingest_platform.privacy.keys import resolve_key

    # Fail at load, not at 3 a.m. in the first run: a prod deployment without a real key must not start.
    resolve_key(os.environ.get("PRIVACY_HMAC_KEY"), env="prod", instance_dir=dagster_home())
    return {
        "warehouse": WarehouseResource(
            engine="snowflake",
            snowflake_account=EnvVar("SNOWFLAKE_ACCOUNT"),
            snowflake_user=EnvVar("SNOWFLAKE_USER"),
            snowflake_password=EnvVar("SNOWFLAKE_PASSWORD"),
            snowflake_role=_env("SNOWFLAKE_ROLE", "INGEST_LOADER"),
            snowflake_database=EnvVar("SNOWFLAKE_DATABASE"),
            snowflake_schema=_env("SNOWFLAKE_SCHEMA", "INGEST"),
            snowflake_warehouse=EnvVar("SNOWFLAKE_WAREHOUSE"),
            warehouse_size=_env("SNOWFLAKE_WAREHOUSE_SIZE", "XSMALL"),
            credit_price_usd=float(_env("SNOWFLAKE_CREDIT_PRICE_USD", "3.0")),
        ),
        "raw_store": RawStoreResource(uri=EnvVar("INGEST_RAW_URI")),
        "landing": LandingZoneResource(uri=EnvVar("ORDERS_LANDING_URI"), **_landing_retry()),
        "proxy_pool": ProxyPoolResource(proxy_list=EnvVar("PROXY_LIST")),
        "tiktok_scraper": TikTokScraperResource(
            base_url=_env("TIKTOK_BASE_URL", "https://www.tiktok.com"),
            # Either setting may be absent; the scrape of a list with no targets fails clearly.
            targets=EnvVar("TIKTOK_TARGETS") if os.environ.get("TIKTOK_TARGETS") else "",
            target_lists=EnvVar("TIKTOK_TARGET_LISTS") if os.environ.get("TIKTOK_TARGET_LISTS") else "",
            browser_executable=os.environ.get("INGEST_BROWSER_PATH"),
            min_delay_s=float(_env("SCRAPER_MIN_DELAY_S", "3")),
            max_delay_s=float(_env("SCRAPER_MAX_DELAY_S", "8")),
            backend=_default_backend(),  # type: ignore[arg-type]
        ),
        "privacy": PrivacyResource(
            hmac_key=EnvVar("PRIVACY_HMAC_KEY"), key_id=os.environ.get("PRIVACY_KEY_ID"), environment="prod"
        ),
        "embeddings": EmbeddingResource(
            provider=_env("EMBEDDINGS_PROVIDER", "snowflake_cortex"),  # type: ignore[arg-type]
            base_url=os.environ.get("EMBEDDINGS_BASE_URL"),
            api_key=EnvVar("EMBEDDINGS_API_KEY") if os.environ.get("EMBEDDINGS_API_KEY") else None,
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
