"""Source assets (the seed's ``source.*`` topics): raw posts, stored outside the warehouse.

``raw_tiktok_posts`` scrapes with Playwright and Chromium, and can fall back to Apify
(``backend = browser | apify | auto``). ``raw_facebook_posts`` comes from the Apify actor.
Both write the same ``Post`` rows to the raw store; downstream cannot tell the backends apart.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field, field_validator

from ingest_platform.dagster_layer.common import (
    daily_partitions,
    numeric_metadata,
    rate,
    scrape_partition,
    spool_dead_letters,
    tiktok_partitions,
)
from ingest_platform.dagster_layer.resources import (
    ApifyResource,
    CaptchaResource,
    PricesResource,
    ProxyPoolResource,
    RawStoreResource,
    ThresholdsResource,
    TikTokScraperResource,
)
from ingest_platform.models import DeadLetter
from ingest_platform.scraping.targets import parse_targets

BACKENDS = ("browser", "apify", "auto")


def _rate_check(
    name: str, value: float, threshold: float, *, at_most: bool, counts: dict[str, int]
) -> AssetCheckResult:
    """A WARN check of a rate against its threshold, value and threshold as plottable numbers."""
    passed = value <= threshold if at_most else value >= threshold
    return AssetCheckResult(
        check_name=name,
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "value": MetadataValue.float(round(value, 4)),
            "threshold": MetadataValue.float(threshold),
            **{key: MetadataValue.int(count) for key, count in counts.items()},
        },
    )


def _success_check(platform: str, delivered: int, requested: int, threshold: float) -> AssetCheckResult:
    """Blocking ERROR check: the share of targets whose posts were delivered, by any backend."""
    value = delivered / requested if requested else 1.0
    passed = value >= threshold
    return AssetCheckResult(
        check_name="scraper_success_rate",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "platform": platform,
            "value": MetadataValue.float(round(value, 4)),
            "threshold": MetadataValue.float(threshold),
            "targets_requested": MetadataValue.int(requested),
            "targets_delivered": MetadataValue.int(delivered),
        },
        description=None
        if passed
        else "Below threshold: see the runbooks 'proxies dying' and 'page structure'.",
    )


def _dead_letter_check(rejected: int, kept: int, threshold: float) -> AssetCheckResult:
    value = rate(rejected, rejected + kept)
    return AssetCheckResult(
        check_name="dead_letter_rate",
        passed=value <= threshold,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "value": MetadataValue.float(round(value, 4)),
            "threshold": MetadataValue.float(threshold),
            "dead_letters": MetadataValue.int(rejected),
        },
    )


def _spool_rejects(context: AssetExecutionContext, store, source: str, rejects) -> int:
    letters = [
        DeadLetter.from_payload(
            source=source, reason=reject.reason, payload=reject.payload, record_key=reject.source_url
        )
        for reject in rejects
    ]
    return spool_dead_letters(context, store, source=source, batch_key=context.partition_key, letters=letters)


def _schema_drift_check(context: AssetExecutionContext, current: dict[str, str]) -> AssetCheckResult:
    """Compare this run's item schema with the one the previous materialization recorded."""
    from ingest_platform.scraping.schema_drift import compare

    previous_event = context.instance.get_latest_materialization_event(context.asset_key)
    previous_entry = (
        previous_event.asset_materialization.metadata.get("item_schema")
        if previous_event and previous_event.asset_materialization
        else None
    )
    previous = getattr(previous_entry, "value", None) or {}
    if not current or not previous:
        note = "no browser items this run" if not current else "first schema recorded: the baseline"
        return AssetCheckResult(
            check_name="schema_drift", passed=True, severity=AssetCheckSeverity.WARN, description=note,
            metadata={"fields": MetadataValue.int(len(current)), "value": MetadataValue.int(0)},
        )  # fmt: skip
    drift = compare(previous, current)
    return AssetCheckResult(
        check_name="schema_drift",
        passed=not drift.drifted,
        severity=AssetCheckSeverity.WARN,
        description=drift.describe() if drift.drifted else None,
        metadata={
            "value": MetadataValue.int(len(drift.vanished) + len(drift.changed)),
            "threshold": MetadataValue.int(0),
            "vanished": MetadataValue.json(drift.vanished),
            "changed_type": MetadataValue.json([list(change) for change in drift.changed]),
            "new_fields": MetadataValue.json(drift.added),
            "fields": MetadataValue.int(len(current)),
        },
    )


def _checks(asset_key: str, *, blocking_success: bool, scraping: bool) -> list[AssetCheckSpec]:
    specs = [
        AssetCheckSpec(
            "scraper_success_rate",
            asset=asset_key,
            blocking=blocking_success,
            description="Share of targets delivered; blocking: a failed scrape is not loaded downstream.",
        ),
        AssetCheckSpec(
            "dead_letter_rate", asset=asset_key, description="Share of records rejected to dead_letters."
        ),
    ]
    if scraping:
        specs += [
            AssetCheckSpec(
                "schema_drift",
                asset=asset_key,
                description="Fields of the scraped items that vanished or changed type since the last run.",
            ),
            AssetCheckSpec(
                "proxy_failure_rate", asset=asset_key, description="Share of proxied requests that failed."
            ),
            AssetCheckSpec(
                "captcha_solve_rate", asset=asset_key, description="Share of CAPTCHAs met that were solved."
            ),
        ]
    return specs


class ScrapeConfig(Config):
    targets: list[str] | None = Field(
        default=None,
        description="Overrides the partition's target list for this run: @profiles, #hashtags, video URLs.",
    )
    max_posts_per_target: int | None = Field(default=None, ge=1)
    backend: str | None = Field(default=None, description="Overrides TIKTOK_BACKEND: browser, apify or auto.")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is not None and value not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {value!r}")
        return value


@asset(
    group_name="sources",
    partitions_def=tiktok_partitions,
    pool="scraper_tiktok",
    kinds={"python", "playwright", "parquet"},
    tags={"ingest_platform/platform": "tiktok"},
    check_specs=_checks("raw_tiktok_posts", blocking_success=True, scraping=True),
)
def raw_tiktok_posts(
    context: AssetExecutionContext,
    config: ScrapeConfig,
    tiktok_scraper: TikTokScraperResource,
    proxy_pool: ProxyPoolResource,
    captcha: CaptchaResource,
    apify: ApifyResource,
    prices: PricesResource,
    raw_store: RawStoreResource,
    thresholds: ThresholdsResource,
) -> MaterializeResult:
    """Public TikTok posts of one target list for one day: Playwright and Chromium, Apify as the fallback.

    Partitioned by (date x target list), so a day's scrape fans out into one run per list.
    In ``auto`` the browser runs first; when its success falls below the threshold or the proxy pool
    is exhausted, the remaining targets go through Apify in the same run (the metadata says why).
    Raw posts carry personal data, so they go to the raw store (parquet), never to a warehouse table.
    """
    from ingest_platform.scraping.backend_choice import fetch_posts
    from ingest_platform.scraping.backend_cost import BackendCostReport
    from ingest_platform.scraping.browser import BrowserNotFoundError, scrape_sync

    day, target_list = scrape_partition(context)
    target_text = ",".join(config.targets) if config.targets else tiktok_scraper.targets_of(target_list)
    try:
        targets = parse_targets(target_text, default_max_posts=tiktok_scraper.default_max_posts)
    except ValueError as error:
        raise Failure(description=f"target list {target_list!r}: {error}") from None
    if config.max_posts_per_target:
        targets = [target.model_copy(update={"max_posts": config.max_posts_per_target}) for target in targets]
    if not targets:
        raise Failure(
            description=f"No TikTok targets in list {target_list!r}: set TIKTOK_TARGETS "
            "(or TIKTOK_TARGET_LISTS) or the run config's `targets`."
        )
    mode = config.backend or tiktok_scraper.backend
    if mode in ("apify", "auto") and not apify.configured:
        raise Failure(description=f"TIKTOK_BACKEND={mode} needs Apify: set APIFY_TOKEN (and APIFY_API_URL).")

    proxies = proxy_pool.endpoints() if mode != "apify" else []
    settings = tiktok_scraper.settings()
    context.log.info(
        f"Scraping list {target_list!r} for {day}: {len(targets)} target(s), backend {mode}: "
        f"{settings.base_url} with {len(proxies)} proxies, {settings.concurrent_sessions} session(s)"
    )

    solver = captcha.solver(notify=context.log.warning) if mode != "apify" else None

    def browser_fetch(batch):
        return scrape_sync(batch, settings, proxies, progress=context.log.info, captcha=solver)

    apify_fetch = apify.fetcher(progress=context.log.info).fetch_tiktok if apify.configured else None
    try:
        combined = fetch_posts(
            targets,
            mode=mode,
            browser_fetch=browser_fetch if mode != "apify" else None,
            apify_fetch=apify_fetch,
            success_threshold=thresholds.scraper_success_min,
            progress=context.log.info,
        )
    except BrowserNotFoundError as error:
        raise Failure(description=str(error)) from None
    for error in combined.errors:
        context.log.warning(error)
    if combined.switched:
        context.log.warning(f"Switched remaining targets to Apify: {combined.switch_reason}")

    store = raw_store.open()
    path = store.write_posts("tiktok", day, combined.posts, shard=target_list)
    rejected = _spool_rejects(context, store, "raw_tiktok_posts", combined.rejects)

    browser = combined.browser_result
    metrics = browser.metrics if browser is not None else None
    price_list = prices.backend_prices()
    costs: dict = {}
    browser_posts = combined.per_backend["browser"].posts if "browser" in combined.per_backend else 0
    if metrics is not None:
        costs.update(BackendCostReport.for_browser(metrics, browser_posts, price_list).as_metadata())
    if combined.apify_result is not None:
        apify_posts = combined.per_backend["apify"].posts if "apify" in combined.per_backend else 0
        costs.update(
            BackendCostReport.for_apify(combined.apify_result.runs, apify_posts, price_list).as_metadata()
        )
    delivered = len(targets) - len(combined.failed_targets)
    item_schema = browser.schema.dominant() if browser is not None else {}
    table_rows = [
        f"| `{t.target}` | browser | {t.status} | {t.posts} | {t.proxy_id or '-'} |"
        for t in (browser.targets if browser else [])
    ] + [f"| `{text}` | apify | delivered | | |" for text in combined.targets_by_backend.get("apify", [])]
    targets_table = "\n".join(
        ["| target | backend | status | posts | proxy |", "|---|---|---|---|---|", *table_rows]
    )
    return MaterializeResult(
        metadata={
            **numeric_metadata(metrics.as_metadata() if metrics is not None else {}),
            **numeric_metadata(combined.as_metadata()),
            **numeric_metadata(costs),
            "dagster/row_count": MetadataValue.int(len(combined.posts)),
            "target_list": target_list,
            "dead_letters": MetadataValue.int(rejected),
            "dead_letter_rate": MetadataValue.float(round(rate(rejected, rejected + len(combined.posts)), 4)),
            "raw_path": MetadataValue.path(path),
            "targets": MetadataValue.md(targets_table),
            "item_schema": MetadataValue.json(item_schema),
        },
        check_results=[
            _schema_drift_check(context, item_schema),
            _success_check("tiktok", delivered, len(targets), thresholds.scraper_success_min),
            _rate_check(
                "proxy_failure_rate",
                metrics.proxy_failure_rate if metrics else 0.0,
                thresholds.proxy_failure_max,
                at_most=True,
                counts={
                    "proxy_requests": metrics.proxy_requests if metrics else 0,
                    "proxy_failures": metrics.proxy_failures if metrics else 0,
                },
            ),
            _rate_check(
                "captcha_solve_rate",
                metrics.captcha_solve_rate if metrics else 1.0,
                thresholds.captcha_solve_min,
                at_most=False,
                counts={
                    "captchas_seen": metrics.captchas_seen if metrics else 0,
                    "captchas_solved": metrics.captchas_solved if metrics else 0,
                },
            ),
            _dead_letter_check(rejected, len(combined.posts), thresholds.dead_letter_rate_max),
        ],
    )


class FacebookConfig(Config):
    pages: list[str] | None = Field(default=None, description="Overrides FACEBOOK_PAGES: public page URLs.")
    results_limit: int = Field(default=50, ge=1)


@asset(
    group_name="sources",
    partitions_def=daily_partitions,
    pool="scraper_facebook",
    kinds={"python", "parquet"},
    tags={"ingest_platform/platform": "facebook"},
    check_specs=_checks("raw_facebook_posts", blocking_success=True, scraping=False),
)
def raw_facebook_posts(
    context: AssetExecutionContext,
    config: FacebookConfig,
    apify: ApifyResource,
    prices: PricesResource,
    raw_store: RawStoreResource,
    thresholds: ThresholdsResource,
) -> MaterializeResult:
    """Public Facebook page posts through the Apify actor, as the same ``Post`` rows (platform=facebook)."""
    import os

    from ingest_platform.scraping.apify_backend import ApifyRunFailed
    from ingest_platform.scraping.backend_cost import BackendCostReport

    pages = config.pages or [
        page.strip() for page in os.environ.get("FACEBOOK_PAGES", "").split(",") if page.strip()
    ]
    if not pages:
        raise Failure(description="No Facebook pages: set FACEBOOK_PAGES or the run config's `pages`.")
    if not apify.configured:
        raise Failure(description="raw_facebook_posts needs Apify: set APIFY_TOKEN (and APIFY_API_URL).")
    try:
        outcome = apify.fetcher(progress=context.log.info).fetch_facebook(pages, config.results_limit)
    except ApifyRunFailed as error:
        # What was fetched before the failure is kept; the failed pages are reported by the check.
        context.log.error(str(error))
        outcome = error.outcome
    store = raw_store.open()
    path = store.write_posts("facebook", context.partition_key, outcome.posts)
    rejected = _spool_rejects(context, store, "raw_facebook_posts", outcome.rejects)
    delivered = len(pages) - len(outcome.missing_pages)
    cost = BackendCostReport.for_apify(outcome.runs, len(outcome.posts), prices.backend_prices())
    return MaterializeResult(
        metadata={
            **numeric_metadata(outcome.as_metadata()),
            **numeric_metadata(cost.as_metadata()),
            "dagster/row_count": MetadataValue.int(len(outcome.posts)),
            "dead_letters": MetadataValue.int(rejected),
            "raw_path": MetadataValue.path(path),
            "backend": "apify",
        },
        check_results=[
            _success_check("facebook", delivered, len(pages), thresholds.scraper_success_min),
            _dead_letter_check(rejected, len(outcome.posts), thresholds.dead_letter_rate_max),
        ],
    )
