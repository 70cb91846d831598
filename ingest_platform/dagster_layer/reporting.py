"""``cost_report``: the seed's Cost Impact Analysis from what the platform actually measured.

It reads the numeric metadata the source assets and ``warehouse_cost`` recorded (latest
materialization per day, last 30 days) and renders the projection and the recommendation as a
markdown table in the UI. The arithmetic lives in ``ingest_platform.cost_report``.
"""

from collections import defaultdict

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)
from pydantic import Field

from ingest_platform.cost_report import CostAssumptions, DailyUsage, build_cost_report
from ingest_platform.dagster_layer.common import numeric_metadata
from ingest_platform.dagster_layer.cost import warehouse_cost
from ingest_platform.dagster_layer.resources import ThresholdsResource
from ingest_platform.dagster_layer.sources import raw_facebook_posts, raw_tiktok_posts

DAYS = 30


class CostReportConfig(Config):
    maintenance_hours_per_week: float = Field(default=2.5, ge=0, description="Scraper upkeep, hours/week.")
    engineer_usd_per_hour: float = Field(default=75.0, ge=0)


def _latest_by_partition(instance, key: AssetKey) -> dict[str, dict]:
    """Metadata of the newest materialization of each partition (records come newest first)."""
    records = instance.fetch_materializations(key, limit=DAYS * 10).records
    latest: dict[str, dict] = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or materialization.partition is None:
            continue
        latest.setdefault(materialization.partition, dict(materialization.metadata))
    return latest


def _number(metadata: dict, key: str, default: float = 0.0) -> float:
    entry = metadata.get(key)
    value = getattr(entry, "value", entry)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


@asset(
    group_name="quality",
    deps=[raw_tiktok_posts, raw_facebook_posts, warehouse_cost],
    kinds={"python"},
)
def cost_report(
    context: AssetExecutionContext, config: CostReportConfig, thresholds: ThresholdsResource
) -> MaterializeResult:
    """Monthly cost per component at the current volume, browser vs Apify per 1,000 posts, and the
    recommendation the seed's review asks for: continue with proxies or switch to Apify."""
    instance = context.instance
    tiktok = _latest_by_partition(instance, raw_tiktok_posts.key)
    facebook = _latest_by_partition(instance, raw_facebook_posts.key)
    warehouse = _latest_by_partition(instance, warehouse_cost.key)
    days = sorted(set(tiktok) | set(facebook) | set(warehouse))[-DAYS:]
    usage = defaultdict(dict)
    for day in days:
        t, f, w = tiktok.get(day, {}), facebook.get(day, {}), warehouse.get(day, {})
        success = _number(t, "browser_success_rate", -1.0)
        usage[day] = DailyUsage(
            day=day,
            browser_posts=int(_number(t, "browser_posts")),
            browser_proxy_usd=_number(t, "browser_proxy_usd"),
            browser_captcha_usd=_number(t, "browser_captcha_usd"),
            browser_success_rate=None if success < 0 else success,
            apify_posts=int(_number(t, "apify_posts") + _number(f, "dagster/row_count")),
            apify_usd=_number(t, "apify_cost_usd") + _number(f, "apify_cost_usd"),
            warehouse_usd=_number(w, "cost_usd"),
        )
    report = build_cost_report(
        [usage[day] for day in days],
        CostAssumptions(
            maintenance_hours_per_week=config.maintenance_hours_per_week,
            engineer_usd_per_hour=config.engineer_usd_per_hour,
            success_threshold=thresholds.scraper_success_min,
        ),
    )
    context.log.info(f"Recommendation: {report.recommendation} ({report.reason})")
    return MaterializeResult(
        metadata={
            **numeric_metadata(report.as_metadata()),
            "report": MetadataValue.md(report.markdown),
            "reason": report.reason,
        }
    )


cost_report_job = define_asset_job("cost_report_job", selection=[cost_report.key])
# After warehouse_cost (04:00 UTC), so yesterday's warehouse figure is in. On by default, as all
# that only reads data already here (the default-status rule: dagster_layer/scheduling.py).
cost_report_schedule = ScheduleDefinition(
    job=cost_report_job, cron_schedule="0 5 * * *", default_status=DefaultScheduleStatus.RUNNING
)
