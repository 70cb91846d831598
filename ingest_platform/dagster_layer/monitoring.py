"""Monitoring beyond the checks that run with their asset: freshness and the ORDERS loader lag.

Freshness: a TikTok scrape must have landed between 02:00 and 04:00 UTC (the target lists are
scheduled at 02:15; the scrape is partitioned by date x list, which the time-partition
freshness check does not take, so it is a last-update check with a deadline),
and ORDERS must have loaded within ``ORDERS_FRESHNESS_HOURS``. Loader lag is the seed's
"Kafka Connect lag": records waiting in the landing zone, checked every five minutes.
"""

import os
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    DefaultScheduleStatus,
    MetadataValue,
    ScheduleDefinition,
    asset_check,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    define_asset_job,
)

from ingest_platform.dagster_layer.resources import LandingZoneResource, ThresholdsResource
from ingest_platform.dagster_layer.sources import raw_tiktok_posts
from ingest_platform.dagster_layer.warehouse import ORDERS_KEY

# Dagster 1.13 prefers FreshnessPolicy on the asset, but a policy's state is not an asset check
# evaluation: checks are what check_alert_sensor watches and what the UI lists beside the others.
freshness_checks = [
    *build_last_update_freshness_checks(
        assets=[raw_tiktok_posts],
        lower_bound_delta=timedelta(hours=2),
        deadline_cron="0 4 * * *",
        timezone="UTC",
        severity=AssetCheckSeverity.WARN,
    ),
    *build_last_update_freshness_checks(
        assets=[ORDERS_KEY],
        lower_bound_delta=timedelta(hours=float(os.environ.get("ORDERS_FRESHNESS_HOURS") or 6)),
        severity=AssetCheckSeverity.WARN,
    ),
]
freshness_sensor = build_sensor_for_freshness_checks(
    freshness_checks=freshness_checks, minimum_interval_seconds=300, name="freshness_checks_sensor"
)


@asset_check(asset=ORDERS_KEY, name="loader_lag", description="Records waiting in the landing zone.")
def orders_loader_lag(landing: LandingZoneResource, thresholds: ThresholdsResource) -> AssetCheckResult:
    pending = landing.open().pending_files()
    records = sum(file.record_count or 0 for file in pending)
    oldest = min((file.mtime for file in pending), default=None)
    oldest_age_s = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    return AssetCheckResult(
        passed=records <= thresholds.loader_lag_max_records,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "value": MetadataValue.int(records),
            "threshold": MetadataValue.int(thresholds.loader_lag_max_records),
            "pending_files": MetadataValue.int(len(pending)),
            "oldest_pending_age_s": MetadataValue.float(round(oldest_age_s, 1)),
        },
        description=None
        if records <= thresholds.loader_lag_max_records
        else "The loader is behind: see the runbook 'loader lag'.",
    )


loader_lag_job = define_asset_job("orders_loader_lag_job", selection=AssetSelection.checks(orders_loader_lag))
loader_lag_schedule = ScheduleDefinition(
    job=loader_lag_job, cron_schedule="*/5 * * * *", default_status=DefaultScheduleStatus.RUNNING
)
