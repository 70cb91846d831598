"""Monitoring beyond the checks that run with their asset: freshness and the ORDERS loader lag.

Freshness: a TikTok scrape must have landed between 02:00 and 04:00 UTC (the target lists are
scheduled at 02:15; the scrape is partitioned by date x list, which the time-partition
freshness check does not take, so it is a last-update check with a deadline),
and ORDERS must have loaded within ``ORDERS_FRESHNESS_HOURS``. Loader lag is the seed's
"Kafka Connect lag": records waiting in the landing zone, checked every five minutes.

Loader lag is evaluated by ``orders_loader_lag_sensor`` (every ``LOADER_LAG_INTERVAL_SECONDS``)
and recorded with ``report_runless_asset_event``: it shows on ORDERS' ``loader_lag`` check in the
UI and ``check_alert_sensor`` alerts on it, without adding 288 runs a day to the Runs page
(issue #14). The same evaluation runs as a regular check when someone executes it.

Rules (the check fails when any holds):

* more than ``loader_lag_max_records`` records are pending (files at the landing root,
  ``.jsonl.gz``/``.csv.gz`` included, and files waiting out a retry backoff: they stay at the root);
* a pending file has waited longer than ``buffer_flush_seconds + retry_backoff_max_seconds +
  PENDING_GRACE_SECONDS``: the sensor should have loaded it by then, so it is stuck;
* a file failed ``retry_alert_after_failures`` loads in a row (severity ERROR; otherwise WARN);
* a file of an unknown format sits at the root (it would never be loaded).

Metadata: ``value`` (records), ``pending_files``, ``waiting_for_retry``, ``failed_loads_max``,
``unrecognised_files``, ``oldest_pending_age_s`` — numbers, so the UI plots them.
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    SensorEvaluationContext,
    SkipReason,
    asset_check,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    sensor,
)

from ingest_platform.dagster_layer.resources import LandingZoneResource, ThresholdsResource
from ingest_platform.dagster_layer.sources import raw_tiktok_posts
from ingest_platform.dagster_layer.warehouse import ORDERS_KEY, RetryPolicy, retry_state

LOADER_LAG_INTERVAL_SECONDS = 300
# Beyond flush time and the longest retry backoff, how long a file may wait before it counts as stuck.
PENDING_GRACE_SECONDS = 600

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


@dataclass(frozen=True)
class LoaderLag:
    """What is waiting in the landing zone, and whether that is a problem (see module docstring)."""

    records: int
    pending_files: int
    waiting_for_retry: int
    failed_loads_max: int
    unrecognised_files: int
    oldest_age_s: float
    max_age_s: float
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def severity(self) -> AssetCheckSeverity:
        # A file that keeps failing is data not arriving: an error. Plain backlog is a warning.
        return AssetCheckSeverity.ERROR if self.failed_loads_max else AssetCheckSeverity.WARN

    def metadata(self, max_records: int) -> dict[str, MetadataValue]:
        return {
            "value": MetadataValue.int(self.records),
            "threshold": MetadataValue.int(max_records),
            "pending_files": MetadataValue.int(self.pending_files),
            "waiting_for_retry": MetadataValue.int(self.waiting_for_retry),
            "failed_loads_max": MetadataValue.int(self.failed_loads_max),
            "unrecognised_files": MetadataValue.int(self.unrecognised_files),
            "oldest_pending_age_s": MetadataValue.float(round(self.oldest_age_s, 1)),
            "max_pending_age_s": MetadataValue.float(self.max_age_s),
        }

    @property
    def description(self) -> str | None:
        if self.passed:
            return None
        return "; ".join(self.problems) + ". See the runbook 'loader lag'."


def measure_loader_lag(
    landing: LandingZoneResource,
    instance: DagsterInstance,
    max_records: int,
    *,
    now: datetime | None = None,
) -> LoaderLag:
    """Measure the lag from the landing zone and the run history (no run needed)."""
    import pyarrow.fs as pafs  # lazily: the code location loads without pyarrow

    from ingest_platform.orders.landing import is_ignored_name

    now = now or datetime.now(UTC)
    zone = landing.open()
    pending = zone.pending_files()
    policy = RetryPolicy(
        landing.retry_backoff_seconds, landing.retry_backoff_max_seconds, landing.retry_alert_after_failures
    )
    retries = retry_state(instance, pending, policy, now=now).retries
    listed = {file.path for file in pending}
    # Files the loader does not recognise (an unknown extension) are never loaded: count them too,
    # so a producer's wrong file name shows up here instead of waiting unseen forever.
    unrecognised = [
        info
        for info in zone.fs.get_file_info(pafs.FileSelector(zone.root, allow_not_found=True))
        if info.type == pafs.FileType.File and not is_ignored_name(info.base_name) and info.path not in listed
    ]
    mtimes = [file.mtime for file in pending] + [
        info.mtime.replace(tzinfo=UTC) if info.mtime.tzinfo is None else info.mtime
        for info in unrecognised
        if info.mtime is not None
    ]
    oldest_age_s = max((now - min(mtimes)).total_seconds(), 0.0) if mtimes else 0.0
    records = sum(file.record_count or 0 for file in pending)
    failed_max = max((retry.failures for retry in retries.values()), default=0)
    max_age_s = float(
        landing.buffer_flush_seconds + landing.retry_backoff_max_seconds + PENDING_GRACE_SECONDS
    )
    problems = []
    if records > max_records:
        problems.append(f"{records} records pending (more than {max_records})")
    if oldest_age_s > max_age_s:
        problems.append(f"a file has waited {oldest_age_s:.0f}s (more than {max_age_s:.0f}s)")
    if failed_max >= policy.alert_after_failures:
        problems.append(f"a file failed {failed_max} loads in a row")
    if unrecognised:
        names = ", ".join(sorted(info.base_name for info in unrecognised)[:3])
        problems.append(f"{len(unrecognised)} file(s) of an unknown format are never loaded ({names})")
    return LoaderLag(
        records=records,
        pending_files=len(pending) + len(unrecognised),
        waiting_for_retry=len(retries),
        failed_loads_max=failed_max,
        unrecognised_files=len(unrecognised),
        oldest_age_s=oldest_age_s,
        max_age_s=max_age_s,
        problems=tuple(problems),
    )


@asset_check(
    asset=ORDERS_KEY,
    name="loader_lag",
    description="Records and files waiting in the landing zone (reported every 5 minutes by "
    "orders_loader_lag_sensor, without a run).",
)
def orders_loader_lag(
    context: AssetCheckExecutionContext, landing: LandingZoneResource, thresholds: ThresholdsResource
) -> AssetCheckResult:
    """The same evaluation as the sensor's, for a manual run from the UI (or with ORDERS in a run)."""
    lag = measure_loader_lag(landing, context.instance, thresholds.loader_lag_max_records)
    return AssetCheckResult(
        passed=lag.passed,
        severity=lag.severity,
        metadata=lag.metadata(thresholds.loader_lag_max_records),
        description=lag.description,
    )


@sensor(
    name="orders_loader_lag_sensor",
    minimum_interval_seconds=LOADER_LAG_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Evaluates ORDERS loader_lag every 5 minutes and records it without launching a run.",
)
def loader_lag_sensor(
    context: SensorEvaluationContext, landing: LandingZoneResource, thresholds: ThresholdsResource
) -> SkipReason:
    lag = measure_loader_lag(landing, context.instance, thresholds.loader_lag_max_records)
    context.instance.report_runless_asset_event(
        AssetCheckEvaluation(
            asset_key=ORDERS_KEY,
            check_name="loader_lag",
            passed=lag.passed,
            severity=lag.severity,
            metadata=lag.metadata(thresholds.loader_lag_max_records),
            description=lag.description,
        )
    )
    verdict = "passed" if lag.passed else f"failed: {lag.description}"
    # A SkipReason: the tick did its work (the evaluation is recorded) and requests no run.
    return SkipReason(
        f"loader_lag {verdict} ({lag.records} records in {lag.pending_files} file(s), "
        f"{lag.waiting_for_retry} waiting for retry)"
    )
