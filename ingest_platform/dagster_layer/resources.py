"""Dagster resources: configuration (``ConfigurableResource`` + ``EnvVar``) around the pure libraries.

Each resource validates its settings and opens the library object an asset needs. Heavy libraries
(snowflake, playwright, torch) are imported inside methods, never here at module top, so the
code location loads fast. Secrets are ``EnvVar``s in every environment (never a config value or
a default, see ``dagster_layer/environments.py``) and never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource, Failure
from pydantic import Field, PrivateAttr

from ingest_platform.scraping.proxy_config import ProxyConfigError, ProxyEndpoint, parse_proxy_list

if TYPE_CHECKING:
    from ingest_platform.enrichment.embeddings import CachedEmbedder
    from ingest_platform.orders.landing import LandingZone
    from ingest_platform.privacy.policies import TablePolicy
    from ingest_platform.privacy.text_scrubber import TextScrubber
    from ingest_platform.privacy.tokens import Pseudonymizer
    from ingest_platform.raw_store import RawStore
    from ingest_platform.scraping.browser import BrowserSettings
    from ingest_platform.warehouse.base import Warehouse


def dagster_home() -> Path:
    """The instance directory; local keys and default data paths live under it."""
    return Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()


class RawStoreResource(ConfigurableResource):
    """Raw data with personal information, kept outside the warehouse (parquet under a URI)."""

    uri: str = Field(description="Local directory or object-store URI (s3://bucket/prefix) for raw data.")

    def open(self) -> RawStore:
        from ingest_platform.raw_store import RawStore

        return RawStore(self.uri)


class WarehouseResource(ConfigurableResource):
    """The warehouse: embedded DuckDB locally, Snowflake in production (same load semantics)."""

    engine: Literal["duckdb", "snowflake"] = "duckdb"
    duckdb_path: str = Field(default="", description="DuckDB database file (engine=duckdb).")
    snowflake_account: str | None = None
    snowflake_user: str | None = None
    snowflake_password: str | None = Field(default=None, description="SNOWFLAKE_PASSWORD (secret, EnvVar).")
    snowflake_private_key: str | None = Field(
        default=None, description="SNOWFLAKE_PRIVATE_KEY: PEM text of the key-pair key (secret, EnvVar)."
    )
    snowflake_private_key_path: str | None = Field(
        default=None, description="SNOWFLAKE_PRIVATE_KEY_PATH: a PEM key file, read when a run connects."
    )
    snowflake_private_key_passphrase: str | None = Field(
        default=None, description="SNOWFLAKE_PRIVATE_KEY_PASSPHRASE (secret, EnvVar) of an encrypted key."
    )
    snowflake_role: str | None = None
    snowflake_database: str | None = None
    snowflake_schema: str | None = None
    snowflake_warehouse: str | None = None
    chunk_size: int = Field(default=100_000, ge=1_000, description="Rows per load chunk (parquet file).")
    warehouse_size: str = "XSMALL"
    auto_suspend_s: int = 60
    credit_price_usd: float = Field(default=3.0, gt=0)

    def open(self) -> Warehouse:
        if self.engine == "duckdb":
            from ingest_platform.warehouse.duckdb_warehouse import DuckDBWarehouse

            if not self.duckdb_path:
                raise Failure("warehouse.duckdb_path (INGEST_DUCKDB_PATH) is empty")
            Path(self.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
            return DuckDBWarehouse(self.duckdb_path, chunk_size=self.chunk_size)

        missing = [
            name
            for name in ("snowflake_account", "snowflake_user", "snowflake_warehouse", "snowflake_database")
            if not getattr(self, name)
        ]
        if missing:
            raise Failure(f"Snowflake warehouse is missing settings: {', '.join(missing)}")
        from snowflake import connector

        from ingest_platform.settings import ConfigError
        from ingest_platform.warehouse.snowflake_warehouse import SnowflakeWarehouse, snowflake_connect_args

        try:
            connection_args = snowflake_connect_args(
                account=self.snowflake_account or "",
                user=self.snowflake_user or "",
                password=self.snowflake_password,
                private_key=self.snowflake_private_key,
                private_key_path=self.snowflake_private_key_path,
                private_key_passphrase=self.snowflake_private_key_passphrase,
                role=self.snowflake_role,
                database=self.snowflake_database,
                schema=self.snowflake_schema,
                warehouse=self.snowflake_warehouse,
            )
        except ConfigError as error:
            raise Failure(description=str(error)) from None
        return SnowflakeWarehouse(
            lambda: connector.connect(**connection_args),
            warehouse_name=self.snowflake_warehouse or "",
            chunk_size=self.chunk_size,
            credit_price_usd=self.credit_price_usd,
            warehouse_size=self.warehouse_size,
            auto_suspend_s=self.auto_suspend_s,
        )


class ProxyPoolResource(ConfigurableResource):
    """Residential proxies from ``PROXY_LIST`` (comma-separated URLs, or a file of them)."""

    proxy_list: str = Field(
        default="",
        description="PROXY_LIST (secret, EnvVar): proxy URLs with credentials, or a file of them.",
    )

    def endpoints(self) -> list[ProxyEndpoint]:
        try:
            return parse_proxy_list(self.proxy_list)
        except ProxyConfigError as error:
            # One clear message naming the setting; the parser already keeps passwords out of it.
            raise Failure(description=str(error)) from None


class TikTokScraperResource(ConfigurableResource):
    """Browser scraping settings for TikTok."""

    base_url: str = "https://www.tiktok.com"
    targets: str = Field(
        default="", description="TIKTOK_TARGETS: @profiles, #hashtags and video URLs (the 'default' list)."
    )
    target_lists: str = Field(
        default="",
        description="TIKTOK_TARGET_LISTS: named lists, 'name=targets; name2=targets' (partition keys).",
    )
    default_max_posts: int = Field(default=100, ge=1)
    browser_executable: str | None = Field(default=None, description="INGEST_BROWSER_PATH: Chromium binary.")
    headless: bool = True
    min_delay_s: float = 3.0
    max_delay_s: float = 8.0
    page_timeout_s: float = 30.0
    list_wait_s: float = 10.0
    concurrent_sessions: int = Field(default=2, ge=1)
    max_attempts_per_target: int = Field(default=4, ge=1, description="Sessions tried per target page.")
    quarantine_base_s: float = Field(default=30.0, gt=0, description="First cool-down of a blocked proxy.")
    quarantine_max_s: float = Field(default=1800.0, gt=0, description="Longest cool-down (it doubles).")
    pool_wait_max_s: float = Field(
        default=60.0,
        ge=0,
        description="How long to wait for a quarantined proxy before calling the pool exhausted.",
    )
    backend: Literal["browser", "apify", "auto"] = Field(
        default="browser", description="TIKTOK_BACKEND: browser, apify, or auto (browser, then Apify)."
    )

    def targets_of(self, target_list: str) -> str:
        """The entries of one named list (``TIKTOK_TARGETS`` is the list ``default``)."""
        from ingest_platform.scraping.target_lists import TargetListError, parse_target_lists

        try:
            lists = parse_target_lists(self.target_lists, fallback_targets=self.targets)
        except TargetListError as error:
            raise Failure(description=str(error)) from None
        if target_list not in lists:
            raise Failure(
                description=f"target list {target_list!r} is not configured; TIKTOK_TARGET_LISTS names "
                f"{', '.join(sorted(lists))}. Reload the code location after changing the lists."
            )
        return lists[target_list]

    def settings(self) -> BrowserSettings:
        from ingest_platform.scraping.browser import BrowserSettings

        try:
            return BrowserSettings(
                base_url=self.base_url.rstrip("/"),
                executable_path=self.browser_executable,
                headless=self.headless,
                min_delay_s=self.min_delay_s,
                max_delay_s=self.max_delay_s,
                page_timeout_s=self.page_timeout_s,
                list_wait_s=self.list_wait_s,
                concurrent_sessions=self.concurrent_sessions,
                max_attempts_per_target=self.max_attempts_per_target,
                quarantine_base_s=self.quarantine_base_s,
                quarantine_max_s=self.quarantine_max_s,
                pool_wait_max_s=self.pool_wait_max_s,
            )
        except ValueError as error:
            raise Failure(description=f"tiktok_scraper settings: {error}") from None


class PrivacyResource(ConfigurableResource):
    """The privacy shield's key and policies. In prod the key must come from PRIVACY_HMAC_KEY."""

    hmac_key: str | None = Field(default=None, description="PRIVACY_HMAC_KEY (secret, EnvVar).")
    key_id: str | None = None
    environment: Literal["local", "prod"] = "local"
    default_phone_region: str = "US"
    # PRIVACY_PHONE_REGIONS: also tried for national spellings that look like phones (trunk "0").
    extra_phone_regions: list[str] = Field(default_factory=lambda: ["GB", "DE", "FR", "IN", "BR"])

    _shield: tuple[Any, Any] | None = PrivateAttr(default=None)

    def _build(self) -> tuple[Pseudonymizer, TextScrubber]:
        if self._shield is None:
            from ingest_platform.privacy.keys import PrivacyKeyError, resolve_key
            from ingest_platform.privacy.text_scrubber import TextScrubber
            from ingest_platform.privacy.tokens import Pseudonymizer

            try:
                material = resolve_key(
                    self.hmac_key, env=self.environment, instance_dir=dagster_home(), key_id=self.key_id
                )
            except PrivacyKeyError as error:
                raise Failure(description=str(error)) from None
            pseudonymizer = Pseudonymizer(
                material.key, material.key_id, default_region=self.default_phone_region
            )
            scrubber = TextScrubber(
                pseudonymizer,
                default_region=self.default_phone_region,
                extra_phone_regions=self.extra_phone_regions,
            )
            self._shield = (pseudonymizer, scrubber)
        return self._shield

    @property
    def pseudonymizer(self) -> Pseudonymizer:
        return self._build()[0]

    @property
    def scrubber(self) -> TextScrubber:
        return self._build()[1]

    def apply(self, policy: TablePolicy, frame: Any) -> tuple[Any, Any]:
        pseudonymizer, scrubber = self._build()
        return policy.apply(frame, pseudonymizer, scrubber)


class EmbeddingResource(ConfigurableResource):
    """Where post embeddings come from: local model, an OpenAI-compatible endpoint, or Cortex."""

    provider: Literal["local", "openai", "snowflake_cortex", "hashing"] = "local"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, description="EMBEDDINGS_API_KEY (secret, openai provider).")
    batch_size: int = 64
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="local provider: bfloat16 on CPUs with native bfloat16 (auto), or forced.",
    )
    packed: bool = Field(
        default=True,
        description=(
            "local provider: padding-free forward pass for BERT-family models, checked against "
            "sentence-transformers on load (off: always the stock encode)."
        ),
    )
    cache_dir: str | None = None

    def embedder(self, warehouse: WarehouseResource | None = None) -> CachedEmbedder:
        from ingest_platform.enrichment.embeddings import CachedEmbedder, build_embedding_provider

        kwargs: dict[str, Any] = {}
        if self.provider == "local":
            kwargs = {"batch_size": self.batch_size, "precision": self.precision, "packed": self.packed}
        elif self.provider == "openai":
            kwargs = {"base_url": self.base_url, "api_key": self.api_key, "model": self.model}
        elif self.provider == "snowflake_cortex":
            if warehouse is None or warehouse.engine != "snowflake":
                raise Failure(
                    description="embeddings.provider=snowflake_cortex needs the Snowflake warehouse"
                )
            opened = warehouse.open()
            kwargs = {"connection_factory": opened.connection_factory}
            if self.model:
                kwargs["model"] = self.model
        provider = build_embedding_provider(self.provider, **kwargs)
        cache = Path(self.cache_dir) / "embeddings_cache.parquet" if self.cache_dir else None
        return CachedEmbedder(provider, cache)


class LandingZoneResource(ConfigurableResource):
    """Where order files land: a local directory or an object-store prefix."""

    uri: str = Field(description="ORDERS_LANDING_URI: directory or s3://bucket/prefix of order files.")
    buffer_count_records: int = Field(default=10_000, ge=1)
    buffer_flush_seconds: int = Field(default=60, ge=1)
    # A failed load is requested again after min(base * 2^(failures-1), max) seconds; an alert
    # goes out once a file has failed this many loads in a row (it keeps retrying at the cap).
    retry_backoff_seconds: int = Field(default=60, ge=0, description="ORDERS_RETRY_BACKOFF_SECONDS")
    retry_backoff_max_seconds: int = Field(default=900, ge=0, description="ORDERS_RETRY_BACKOFF_MAX_SECONDS")
    retry_alert_after_failures: int = Field(default=3, ge=1, description="ORDERS_RETRY_ALERT_AFTER")

    def open(self, *, source: str = "ORDERS") -> LandingZone:
        """``source`` names the asset that rejects unreadable lines (the dead-letter rate is per asset)."""
        from ingest_platform.orders.landing import LandingZone

        if "://" not in self.uri:
            Path(self.uri).mkdir(parents=True, exist_ok=True)
        return LandingZone(self.uri, source=source)


class ThresholdsResource(ConfigurableResource):
    """Every monitoring threshold in one place (the seed's numbers are the defaults)."""

    scraper_success_min: float = Field(default=0.95, ge=0, le=1)
    proxy_failure_max: float = Field(default=0.10, ge=0, le=1)
    captcha_solve_min: float = Field(default=0.90, ge=0, le=1)
    dead_letter_rate_max: float = Field(default=0.02, ge=0, le=1)
    daily_cost_max_usd: float = Field(default=15.0, ge=0)
    avg_batch_min_records: int = Field(default=5_000, ge=1)
    loader_lag_max_records: int = Field(default=10_000, ge=1)


class ApifyResource(ConfigurableResource):
    """Apify actors: the zero-maintenance fallback for TikTok and the source for Facebook."""

    token: str | None = Field(default=None, description="APIFY_TOKEN (secret).")
    api_url: str = Field(default="https://api.apify.com", description="APIFY_API_URL.")
    tiktok_actor: str = "clockworks/tiktok-scraper"
    facebook_actor: str = "apify/facebook-posts-scraper"
    run_timeout_s: int = Field(default=900, ge=10)
    max_items: int = Field(default=10_000, ge=1)
    memory_mbytes: int = Field(default=1024, ge=128)

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def fetcher(self, progress: Any = None) -> Any:
        from pydantic import SecretStr

        from ingest_platform.scraping.apify_backend import ApifyFetcher, ApifySettings

        if not self.token:
            raise Failure(
                description="Apify is not configured: set APIFY_TOKEN (and APIFY_API_URL if not apify.com)"
            )
        settings = ApifySettings(
            token=SecretStr(self.token),
            api_url=self.api_url,
            tiktok_actor=self.tiktok_actor,
            facebook_actor=self.facebook_actor,
            run_timeout_s=self.run_timeout_s,
            max_items=self.max_items,
            memory_mbytes=self.memory_mbytes,
        )
        return ApifyFetcher(settings, progress=progress)


class PricesResource(ConfigurableResource):
    """Unit prices behind the cost per 1,000 posts of each backend (set them to your contracts)."""

    proxy_usd_per_gb: float = Field(default=8.0, ge=0)
    captcha_usd_per_1k: float = Field(default=2.0, ge=0)
    apify_usd_per_1k_results: float = Field(default=3.7, ge=0)
    apify_usd_per_compute_unit: float = Field(default=0.4, ge=0)

    def backend_prices(self) -> Any:
        from ingest_platform.scraping.backend_cost import BackendPrices

        return BackendPrices(
            proxy_usd_per_gb=self.proxy_usd_per_gb,
            captcha_usd_per_1k=self.captcha_usd_per_1k,
            apify_usd_per_1k_results=self.apify_usd_per_1k_results,
            apify_usd_per_compute_unit=self.apify_usd_per_compute_unit,
        )


class CaptchaResource(ConfigurableResource):
    """CAPTCHA solving through Anti-Captcha (python-anticaptcha). Without a key, the scraper rotates."""

    api_key: str | None = Field(default=None, description="ANTICAPTCHA_API_KEY (secret).")
    host: str = Field(
        default="api.anti-captcha.com",
        description="ANTICAPTCHA_HOST; http://host:port for a plain-HTTP service.",
    )
    budget_usd_per_run: float = Field(
        default=1.0, ge=0, description="Stop solving once a run spent this much."
    )
    poll_interval_s: float = Field(default=3.0, gt=0)
    max_wait_s: float = Field(default=120.0, gt=0)

    def solver(self, notify: Any = None) -> Any:
        if not self.api_key:
            return None
        from ingest_platform.scraping.captcha import CaptchaSolver

        return CaptchaSolver(
            self.api_key,
            host=self.host,  # a scheme in it decides TLS (a local stand-in speaks plain HTTP)
            budget_usd_per_run=self.budget_usd_per_run,
            poll_interval_s=self.poll_interval_s,
            max_wait_s=self.max_wait_s,
            notify=notify,
        )
