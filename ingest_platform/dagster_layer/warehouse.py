"""Warehouse assets (the seed's ``sink.*`` topics): the ORDERS table and the sensor that feeds it.

The sensor buffers landing files the way the Snowflake Kafka connector buffers records: one run
when the pending records reach ``buffer_count_records`` or the oldest file is
``buffer_flush_seconds`` old. Its run key names the attempt at a batch, so a failed load is
retried (with a backoff) without anyone touching anything; a file being loaded is never requested
again, so nothing loads twice. The rules are in ``orders_landing_sensor``'s docstring and the
runbook "ORDERS load retries". The ``orders`` asset is thin: ``orders.load.load_order_batch`` does
the work and its report becomes metadata and the checks (``orders_reconciliation`` among them).
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    Config,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)
from pydantic import Field

from ingest_platform.dagster_layer.alerts import AlertsResource
from ingest_platform.dagster_layer.common import numeric_metadata, query_tag
from ingest_platform.dagster_layer.environments import orders_sensor_interval_seconds
from ingest_platform.dagster_layer.resources import (
    LandingZoneResource,
    PrivacyResource,
    RawStoreResource,
    ThresholdsResource,
    WarehouseResource,
)

if TYPE_CHECKING:  # landing imports pandas/pyarrow: keep them out of code-location load
    from ingest_platform.orders.landing import LandingFile

ORDERS_KEY = AssetKey("ORDERS")


class OrdersLoadConfig(Config):
    files: list[str] | None = Field(
        default=None, description="Landing files to load (set by the sensor); empty means every pending file."
    )
    file_versions: list[str] | None = Field(
        default=None,
        description="'path|size|mtime' of each file as the sensor saw it: the retry rule counts "
        "failed attempts per file version.",
    )


@asset(
    key=ORDERS_KEY,
    group_name="warehouse",
    pool="warehouse",
    kinds={"python", "duckdb", "snowflake"},
    tags={"ingest_platform/kind": "warehouse_load"},
    check_specs=[
        AssetCheckSpec(
            "dead_letter_rate",
            asset=ORDERS_KEY,
            description="Share of order records rejected: dead-lettered rows plus the records of "
            "quarantined files.",
        ),
        AssetCheckSpec(
            "order_ids_unique", asset=ORDERS_KEY, blocking=True, description="One row per order_id."
        ),
        AssetCheckSpec(
            "orders_reconciliation",
            asset=ORDERS_KEY,
            blocking=True,
            description="Per file and in total: rows read = loaded + superseded + dead-lettered "
            "(+ records of a quarantined file), in the load report and in orders_file_ledger.",
        ),
    ],
)
def orders(
    context: AssetExecutionContext,
    config: OrdersLoadConfig,
    landing: LandingZoneResource,
    privacy: PrivacyResource,
    warehouse: WarehouseResource,
    raw_store: RawStoreResource,
    thresholds: ThresholdsResource,
) -> MaterializeResult:
    """Commerce orders from the landing zone: validated, PII tokenised, MERGEd on ``order_id`` by
    version (``ingest_platform.orders.load``), every file reconciled."""
    from ingest_platform.orders.load import load_order_batch, reconciliation_problems
    from ingest_platform.privacy.policies import ORDERS_POLICY

    zone = landing.open()
    pii_in_kept_columns = 0

    def shield(frame):
        nonlocal pii_in_kept_columns
        shielded, stats = privacy.apply(ORDERS_POLICY, frame)
        pii_in_kept_columns += stats.pii_in_kept_columns  # ids that are e-mails or phones, now tokens
        return shielded

    with warehouse.open() as wh:
        report = load_order_batch(
            zone,
            config.files or None,
            apply_privacy=shield,
            warehouse=wh,
            raw_store=raw_store.open(),
            run_id=context.run.run_id,
            query_tag=query_tag(context),
        )
        ledger_problems = reconciliation_problems(wh, context.run.run_id)
    if report.not_pending:
        # Already processed by an earlier attempt of the same batch: nothing to redo for them.
        context.log.info(f"{len(report.not_pending)} file(s) of this batch are no longer pending")
    for file in report.files:
        if file.status == "quarantined":
            context.log.warning(f"Quarantined {file.path}: {file.quarantine_reason}")
    if report.left_pending:
        context.log.warning(
            f"{len(report.left_pending)} file(s) changed while loading, left pending for the next "
            f"batch: {list(report.left_pending)[:5]}"
        )
    if report.reject_reasons:
        context.log.warning(f"{report.dead_lettered} record(s) dead-lettered: {report.reject_reasons}")
    report_problems = [
        f"{f.path} ({f.fingerprint}): read {f.rows_read}, loaded {f.loaded}, superseded {f.superseded}, "
        f"dead-lettered {f.dead_lettered}, quarantined {f.quarantined_records}"
        for f in report.files
        if not f.balanced
    ]
    problems = report_problems + [p for p in ledger_problems if p not in report_problems]
    rate_value = round(report.dead_letter_rate, 4)
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(report.loaded),
            **numeric_metadata(report.as_metadata()),
            "files": MetadataValue.json(report.file_table()),
            "pii_in_kept_columns": MetadataValue.int(pii_in_kept_columns),
        },
        check_results=[
            AssetCheckResult(
                check_name="dead_letter_rate",
                passed=report.dead_letter_rate <= thresholds.dead_letter_rate_max,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "value": MetadataValue.float(rate_value),
                    "threshold": MetadataValue.float(thresholds.dead_letter_rate_max),
                    "rejected_records": MetadataValue.int(report.rejected),
                    "quarantined_records": MetadataValue.int(report.quarantined_records),
                },
            ),
            AssetCheckResult(
                check_name="order_ids_unique",
                passed=report.duplicate_keys == 0,
                severity=AssetCheckSeverity.ERROR,
                metadata={"duplicate_order_ids": MetadataValue.int(report.duplicate_keys)},
            ),
            AssetCheckResult(
                check_name="orders_reconciliation",
                passed=not problems,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "value": MetadataValue.int(len(problems)),
                    "threshold": MetadataValue.int(0),
                    "rows_read": MetadataValue.int(report.rows_read),
                    "loaded": MetadataValue.int(report.loaded),
                    "superseded": MetadataValue.int(report.superseded),
                    "dead_lettered": MetadataValue.int(report.dead_lettered),
                    "quarantined_records": MetadataValue.int(report.quarantined_records),
                    "problems": MetadataValue.json(problems[:20]),
                },
                description=None
                if not problems
                else f"{len(problems)} file(s) do not add up: {problems[0]}",
            ),
        ],
    )


# The ORDERS checks evaluated by the load itself. Freshness and loader_lag are the clock's to
# judge (their own sensors): in every load run they only added two steps (two processes under
# the multiprocess executor) that could never fail.
ORDERS_LOAD_CHECKS = ("dead_letter_rate", "order_ids_unique", "orders_reconciliation")

orders_job = define_asset_job(
    "orders_job",
    selection=AssetSelection.assets(ORDERS_KEY, AssetKey("dead_letters")).without_checks()
    | AssetSelection.checks(*(AssetCheckKey(ORDERS_KEY, name) for name in ORDERS_LOAD_CHECKS)),
    # No run retries: the landing sensor retries failed files itself, with a backoff, under a
    # new run key (an instant re-execution would hit the same unusable warehouse).
    tags={"ingest_platform/kind": "warehouse_load", "dagster/max_retries": "0"},
    description="Load pending order files into ORDERS, then the dead letters.",
)


# ---- the landing sensor and its retry rule --------------------------------------------------

BATCH_TAG = "ingest_platform/batch"
ATTEMPT_TAG = "ingest_platform/attempt"
FOLLOWUP_TAG = "ingest_platform/dead_letters_after"
# Enough history to see every recent attempt of the files still pending; older runs only matter
# for files that have been failing for days, which the alert has long reported.
RUN_HISTORY_LIMIT = 500
# A run still "started" after this long has died without anyone recording it (run monitoring
# fails such runs after max_runtime_seconds, the same 2 h in dagster.yaml; this covers
# instances without it): its files count as a failed attempt instead of being held forever.
STALE_RUN_SECONDS = 7_200


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for files whose load failed, and when to alert about them."""

    backoff_seconds: float = 60
    backoff_max_seconds: float = 900
    alert_after_failures: int = 3

    def wait_seconds(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure: base * 2^(n-1), capped."""
        if failures <= 0:
            return 0.0
        return float(min(self.backoff_seconds * 2 ** min(failures - 1, 30), self.backoff_max_seconds))


@dataclass(frozen=True)
class LoadAttempt:
    """One orders_job run as the sensor sees it: which file versions it loads and how it ended."""

    run_id: str
    batch: str | None
    file_versions: frozenset[str] | None  # None: a run over "every pending file" (manual run)
    paths: frozenset[str] | None
    finished: bool
    succeeded: bool
    end_time: float | None
    followup_of: str | None = None  # a dead_letters-only run after this failed load run


@dataclass(frozen=True)
class FileRetry:
    """A pending file that failed to load: how often in a row, and when it may go again."""

    path: str
    failures: int
    last_failure: datetime
    retry_at: datetime


@dataclass(frozen=True)
class RetryState:
    """What the run history says about the pending files (shared by the sensor and loader_lag)."""

    in_flight: frozenset[str]  # paths an unfinished run is loading
    all_in_flight: bool  # an unfinished run loads every pending file
    retries: dict[str, FileRetry]  # path -> failure state, for pending files that failed before

    def waiting(self, now: datetime) -> dict[str, FileRetry]:
        """Failed files whose backoff has not elapsed yet."""
        return {path: retry for path, retry in self.retries.items() if retry.retry_at > now}


def file_version(file: "LandingFile") -> str:
    """One landed version of a file: path, size and mtime (a replaced file is a new version)."""
    path, size, mtime = file.identity
    return f"{path}|{size}|{mtime}"


def plan_retries(
    pending: Sequence["LandingFile"], attempts: Iterable[LoadAttempt], policy: RetryPolicy
) -> RetryState:
    """Per pending file, its consecutive failed attempts (since its last successful load).

    Failures count per file *version*: a file replaced by the producer starts clean. A file that
    loaded and was moved back with the same path, size and mtime has a success on record, so its
    failure count starts from zero again.
    """
    by_version = {file_version(file): file for file in pending}
    in_flight: set[str] = set()
    all_in_flight = False
    history: dict[str, list[LoadAttempt]] = {version: [] for version in by_version}
    for attempt in attempts:
        if attempt.followup_of is not None:
            continue  # loads dead letters only: holds no landing file
        if not attempt.finished:
            if attempt.paths is None:
                all_in_flight = True
            else:
                in_flight |= attempt.paths
            continue
        for version in attempt.file_versions or ():
            if version in history:
                history[version].append(attempt)
    retries: dict[str, FileRetry] = {}
    for version, runs in history.items():
        failures, last_end = 0, 0.0
        for run in sorted(runs, key=lambda r: r.end_time or 0.0):
            if run.succeeded:
                failures, last_end = 0, 0.0
            else:
                failures, last_end = failures + 1, max(last_end, run.end_time or 0.0)
        if failures:
            last = datetime.fromtimestamp(last_end, UTC)
            path = by_version[version].path
            retries[path] = FileRetry(
                path, failures, last, last + timedelta(seconds=policy.wait_seconds(failures))
            )
    return RetryState(frozenset(in_flight), all_in_flight, retries)


def load_attempts(
    instance: DagsterInstance, job_name: str = "orders_job", *, now: datetime | None = None
) -> list[LoadAttempt]:
    """The recent runs of ``job_name`` with the file versions each one was asked to load."""
    now_ts = (now or _utcnow()).timestamp()
    attempts = []
    for record in instance.get_run_records(filters=RunsFilter(job_name=job_name), limit=RUN_HISTORY_LIMIT):
        run = record.dagster_run
        config = ((run.run_config or {}).get("ops") or {}).get("ORDERS", {}).get("config") or {}
        files = config.get("files")
        versions = config.get("file_versions")
        finished, end_time = run.is_finished, record.end_time or record.update_timestamp.timestamp()
        started = record.start_time
        running = not finished and run.status == DagsterRunStatus.STARTED and started is not None
        if running and now_ts - started > STALE_RUN_SECONDS:
            finished, end_time = True, started + STALE_RUN_SECONDS  # dead: a failed attempt
        attempts.append(
            LoadAttempt(
                run_id=run.run_id,
                batch=run.tags.get(BATCH_TAG),
                file_versions=frozenset(versions) if versions else None,
                paths=frozenset(files) if files else None,
                finished=finished,
                succeeded=run.status == DagsterRunStatus.SUCCESS,
                end_time=end_time,
                followup_of=run.tags.get(FOLLOWUP_TAG),
            )
        )
    return attempts


def dead_letter_followup(
    attempts: Sequence[LoadAttempt], state: RetryState, policy: RetryPolicy, now: datetime
) -> tuple[str, int] | None:
    """(failed load run id, follow-up number) when a dead_letters-only run is due, else None.

    A load run that died after its files moved (SIGKILL, a crash in the last move) leaves its
    rejects spooled but not in ``dead_letters``, and no pending file would ever run that step
    again. So once the latest finished load run failed, no load is running, and none of its
    files waits for a retry, the sensor requests ``dead_letters`` alone (idempotent: keyed by
    letter id), with the same backoff if that fails too, until one succeeds.
    """
    loads = [a for a in attempts if a.followup_of is None]
    if any(not a.finished for a in attempts) or state.retries:
        return None
    finished = sorted((a for a in loads if a.finished), key=lambda a: a.end_time or 0.0)
    if not finished or finished[-1].succeeded:
        return None
    failed = finished[-1]
    followups = [a for a in attempts if a.followup_of == failed.run_id]
    if any(a.succeeded for a in followups):
        return None
    if followups:
        last_end = max(a.end_time or 0.0 for a in followups)
        due = datetime.fromtimestamp(last_end, UTC) + timedelta(seconds=policy.wait_seconds(len(followups)))
        if due > now:
            return None
    return failed.run_id, len(followups)


def retry_state(
    instance: DagsterInstance,
    pending: Sequence["LandingFile"],
    policy: RetryPolicy | None = None,
    *,
    now: datetime | None = None,
) -> RetryState:
    """The retry state of ``pending`` from ``instance``'s run history (used by ``loader_lag`` too)."""
    return plan_retries(pending, load_attempts(instance, now=now), policy or RetryPolicy())


def attempt_run_key(batch: str, attempt: int) -> str:
    """The run key of one attempt at a batch: the daemon skips a key it has seen, whatever the
    run's outcome, so a retry needs a key of its own."""
    return f"{batch}-{attempt}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@sensor(
    job=orders_job,
    minimum_interval_seconds=orders_sensor_interval_seconds(),
    default_status=DefaultSensorStatus.RUNNING,
)
def orders_landing_sensor(
    context: SensorEvaluationContext, landing: LandingZoneResource, alerts: AlertsResource
):
    """Buffers landing files like the Kafka connector (flush on record count or on age) and retries
    failed loads by itself.

    Rules:

    * The batch is every pending file that no unfinished ``orders_job`` run is loading and that
      is not waiting out a retry backoff. It flushes when its records reach
      ``buffer_count_records``, its oldest file is ``buffer_flush_seconds`` old, or it holds a
      failed file whose backoff is over.
    * The run key names the *attempt*: ``<batch fingerprint>-<n>``, the fingerprint a hash of
      every file's (path, size, mtime) and ``n`` the number of earlier runs of that fingerprint.
      The daemon skips any key it has seen, failed runs included: a key of the file set alone
      would block a failed batch forever, and a processed file moved back unchanged too.
    * A file whose run failed is requested again after ``retry_backoff_seconds * 2^(failures-1)``,
      capped at ``retry_backoff_max_seconds``, counted per file version (path, size, mtime) since
      its last successful load. It stays at the landing root meanwhile, so loader_lag counts it.
    * Once a file has failed ``retry_alert_after_failures`` loads in a row an alert goes out
      through ``AlertsResource`` (once per file version and failure streak); it keeps retrying
      at the capped backoff.
    * It never loads twice: a file being loaded is never requested again until that run ends,
      a loaded file has left the root, and the load itself is an idempotent MERGE.
    * A load run that failed after its files moved (killed mid-move) is followed by a
      ``dead_letters``-only run, so its spooled rejects reach the table without a new file
      (``dead_letter_followup``).
    """
    from ingest_platform.alerting import Alert, deliver
    from ingest_platform.orders.landing import decide_flush, run_key_for

    now = _utcnow()
    policy = RetryPolicy(
        landing.retry_backoff_seconds, landing.retry_backoff_max_seconds, landing.retry_alert_after_failures
    )
    pending = landing.open().pending_files()
    attempts = load_attempts(context.instance, now=now)
    state = plan_retries(pending, attempts, policy)
    cursor = json.loads(context.cursor) if context.cursor else {}
    alerted: dict[str, int] = cursor.get("alerted", {})
    pending_versions = {file.path: file_version(file) for file in pending}
    alerts_due = [
        retry
        for path, retry in state.retries.items()
        if retry.failures >= policy.alert_after_failures
        and alerted.get(pending_versions[path], 0) < policy.alert_after_failures
    ]
    if alerts_due:
        names = ", ".join(sorted(retry.path.rsplit("/", 1)[-1] for retry in alerts_due)[:5])
        worst = max(retry.failures for retry in alerts_due)
        title = f"[ERROR] ORDERS: {len(alerts_due)} landing file(s) failed {worst} load(s) in a row"
        alert = Alert(
            kind="run_failed",
            title=title,
            text=f"{title} ({names}); retrying every {policy.wait_seconds(worst):.0f}s. "
            "See the runbook 'ORDERS load retries'.",
            asset="ORDERS",
            severity="ERROR",
            value=float(worst),
            threshold=float(policy.alert_after_failures),
        )
        context.log.error(alert.text)
        for problem in deliver([alert], alerts.senders()):
            context.log.warning(f"alert delivery failed: {problem}")
        for retry in alerts_due:
            alerted[pending_versions[retry.path]] = retry.failures
    # Forget versions that are no longer pending (loaded, replaced or removed).
    cursor = {"alerted": {v: n for v, n in alerted.items() if v in set(pending_versions.values())}}
    context.update_cursor(json.dumps(cursor, sort_keys=True))

    if state.all_in_flight:
        return SkipReason("a run loading every pending file is in progress")
    waiting = state.waiting(now)
    candidates = [f for f in pending if f.path not in state.in_flight and f.path not in waiting]
    held = ""
    if waiting:
        soonest = min(retry.retry_at for retry in waiting.values())
        next_in = (soonest - now).total_seconds()
        held = f"; {len(waiting)} failed file(s) wait to retry, next in {next_in:.0f}s"
    loading = state.in_flight & set(pending_versions)
    if loading:
        held += f"; {len(loading)} file(s) being loaded"
    decision = decide_flush(
        candidates,
        now=now,
        buffer_count_records=landing.buffer_count_records,
        buffer_flush_seconds=landing.buffer_flush_seconds,
    )
    # A failed file whose backoff is over goes now, whatever the buffer says: it already waited.
    retry_due = [f for f in candidates if f.path in state.retries]
    flush_reason = decision.reason or ("retry" if retry_due else None)
    if flush_reason is None:
        followup = dead_letter_followup(attempts, state, policy, now)
        if followup is not None:
            failed_run, number = followup
            return RunRequest(
                run_key=f"dead-letters-after-{failed_run}-{number}",
                asset_selection=[AssetKey("dead_letters")],
                tags={FOLLOWUP_TAG: failed_run, "ingest_platform/kind": "warehouse_load"},
            )
        return SkipReason(
            f"{decision.records} record(s) in {len(candidates)} file(s) pending, "
            f"oldest {decision.oldest_age_s:.0f}s "
            f"(flush at {landing.buffer_count_records} records or {landing.buffer_flush_seconds}s){held}"
        )
    batch = run_key_for(decision.files)
    # Every earlier run of this exact batch, whatever its status, used up one key.
    attempt = context.instance.get_runs_count(RunsFilter(job_name=orders_job.name, tags={BATCH_TAG: batch}))
    files = [file.path for file in decision.files]
    retrying = [state.retries[f].failures for f in files if f in state.retries]
    retry_tag = {"ingest_platform/failed_before": str(max(retrying))} if retrying else {}
    return RunRequest(
        run_key=attempt_run_key(batch, attempt),
        run_config={
            "ops": {
                "ORDERS": {
                    "config": {"files": files, "file_versions": [file_version(f) for f in decision.files]}
                }
            }
        },
        tags={
            "ingest_platform/flush_reason": flush_reason,
            "ingest_platform/records": str(decision.records),
            BATCH_TAG: batch,
            ATTEMPT_TAG: str(attempt),
            **retry_tag,
        },
    )
