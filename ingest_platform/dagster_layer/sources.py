"""Source assets (the seed's ``source.*`` topics): raw scraped posts, stored outside the warehouse."""

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
from pydantic import Field

from ingest_platform.dagster_layer.common import daily_partitions, numeric_metadata, rate, spool_dead_letters
from ingest_platform.dagster_layer.resources import (
    ProxyPoolResource,
    RawStoreResource,
    ThresholdsResource,
    TikTokScraperResource,
)
from ingest_platform.models import DeadLetter
from ingest_platform.scraping.targets import parse_targets


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


class ScrapeConfig(Config):
    targets: list[str] | None = Field(
        default=None, description="Overrides TIKTOK_TARGETS for this run: @profiles, #hashtags, video URLs."
    )
    max_posts_per_target: int | None = Field(default=None, ge=1)


@asset(
    group_name="sources",
    partitions_def=daily_partitions,
    pool="scraper_tiktok",
    kinds={"python", "playwright", "parquet"},
    tags={"ingest_platform/platform": "tiktok"},
    check_specs=[
        AssetCheckSpec(
            "scraper_success_rate",
            asset="raw_tiktok_posts",
            blocking=True,
            description="Share of TikTok pages scraped successfully; blocking: a failed scrape is not loaded",
        ),
        AssetCheckSpec(
            "dead_letter_rate",
            asset="raw_tiktok_posts",
            description="Share of scraped records rejected to dead_letters.",
        ),
        AssetCheckSpec(
            "proxy_failure_rate",
            asset="raw_tiktok_posts",
            description="Share of proxied requests that failed (connection errors, dead proxies).",
        ),
        AssetCheckSpec(
            "captcha_solve_rate",
            asset="raw_tiktok_posts",
            description="Share of CAPTCHAs met that were solved.",
        ),
    ],
)
def raw_tiktok_posts(
    context: AssetExecutionContext,
    config: ScrapeConfig,
    tiktok_scraper: TikTokScraperResource,
    proxy_pool: ProxyPoolResource,
    raw_store: RawStoreResource,
    thresholds: ThresholdsResource,
) -> MaterializeResult:
    """Public TikTok posts for the day's targets, scraped with Playwright and Chromium.

    Raw posts carry personal data, so they go to the raw store (parquet), never to a warehouse table.
    """
    from ingest_platform.scraping.browser import BrowserNotFoundError, scrape_sync

    target_text = ",".join(config.targets) if config.targets else tiktok_scraper.targets
    try:
        targets = parse_targets(target_text, default_max_posts=tiktok_scraper.default_max_posts)
    except ValueError as error:
        raise Failure(description=f"TIKTOK_TARGETS: {error}") from None
    if config.max_posts_per_target:
        targets = [target.model_copy(update={"max_posts": config.max_posts_per_target}) for target in targets]
    if not targets:
        raise Failure(description="No TikTok targets: set TIKTOK_TARGETS or the run config's `targets`.")

    proxies = proxy_pool.endpoints()
    settings = tiktok_scraper.settings()
    context.log.info(
        f"Scraping {len(targets)} target(s) from {settings.base_url} with {len(proxies)} proxies, "
        f"{settings.concurrent_sessions} session(s)"
    )
    try:
        outcome = scrape_sync(targets, settings, proxies, progress=context.log.info)
    except BrowserNotFoundError as error:
        raise Failure(description=str(error)) from None

    store = raw_store.open()
    partition = context.partition_key
    path = store.write_posts("tiktok", partition, outcome.posts)
    letters = [
        DeadLetter.from_payload(
            source="raw_tiktok_posts",
            reason=reject.reason,
            payload=reject.payload,
            record_key=reject.source_url,
        )
        for reject in outcome.rejects
    ]
    rejected = spool_dead_letters(
        context, store, source="raw_tiktok_posts", batch_key=partition, letters=letters
    )

    metrics = outcome.metrics
    dead_letter_rate = rate(rejected, rejected + len(outcome.posts))
    success_ok = metrics.success_rate >= thresholds.scraper_success_min
    targets_table = "\n".join(
        ["| target | status | posts | proxy |", "|---|---|---|---|"]
        + [f"| `{t.target}` | {t.status} | {t.posts} | {t.proxy_id or '-'} |" for t in outcome.targets]
    )
    return MaterializeResult(
        metadata={
            **numeric_metadata(metrics.as_metadata()),
            "dagster/row_count": MetadataValue.int(len(outcome.posts)),
            "dead_letters": MetadataValue.int(rejected),
            "dead_letter_rate": MetadataValue.float(round(dead_letter_rate, 4)),
            "raw_path": MetadataValue.path(path),
            "backend": "browser",
            "targets": MetadataValue.md(targets_table),
        },
        check_results=[
            AssetCheckResult(
                check_name="scraper_success_rate",
                passed=success_ok,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "platform": "tiktok",
                    "value": MetadataValue.float(round(metrics.success_rate, 4)),
                    "threshold": MetadataValue.float(thresholds.scraper_success_min),
                    "pages_attempted": MetadataValue.int(metrics.pages_attempted),
                    "pages_succeeded": MetadataValue.int(metrics.pages_succeeded),
                },
                description=None if success_ok else "Below threshold: see the runbook 'proxies dying'.",
            ),
            _rate_check(
                "proxy_failure_rate",
                metrics.proxy_failure_rate,
                thresholds.proxy_failure_max,
                at_most=True,
                counts={"proxy_requests": metrics.proxy_requests, "proxy_failures": metrics.proxy_failures},
            ),
            _rate_check(
                "captcha_solve_rate",
                metrics.captcha_solve_rate,
                thresholds.captcha_solve_min,
                at_most=False,
                counts={"captchas_seen": metrics.captchas_seen, "captchas_solved": metrics.captchas_solved},
            ),
            AssetCheckResult(
                check_name="dead_letter_rate",
                passed=dead_letter_rate <= thresholds.dead_letter_rate_max,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "value": MetadataValue.float(round(dead_letter_rate, 4)),
                    "threshold": MetadataValue.float(thresholds.dead_letter_rate_max),
                    "dead_letters": MetadataValue.int(rejected),
                },
            ),
        ],
    )
