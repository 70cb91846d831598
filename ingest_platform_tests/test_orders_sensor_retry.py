"""Item 3 of issue #11: a failed ORDERS load is retried by the sensor itself, with a backoff, and
loaded exactly once; a processed file moved back unchanged is picked up again.

The sensor runs with ``build_sensor_context`` against a real ``DagsterInstance`` whose run history
holds the real ``orders_job`` runs (``execute_in_process``). ``launch`` applies the daemon's
run-key rule (REFERENCE §12): a request whose ``run_key`` any earlier run had, whatever its status,
is skipped. The warehouse "fails for a minute" by having its DuckDB path taken by a directory.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    RunRequest,
    RunsFilter,
    SkipReason,
    build_sensor_context,
)

from ingest_platform.dagster_layer import warehouse as warehouse_layer
from ingest_platform.dagster_layer.alerts import AlertsResource
from ingest_platform.dagster_layer.quality import dead_letters
from ingest_platform.dagster_layer.resources import (
    LandingZoneResource,
    PrivacyResource,
    RawStoreResource,
    ThresholdsResource,
    WarehouseResource,
)
from ingest_platform.dagster_layer.warehouse import (
    LoadAttempt,
    RetryPolicy,
    orders,
    orders_job,
    orders_landing_sensor,
    plan_retries,
)

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("dagster_home")]


class RecordingAlerts(AlertsResource):
    """An AlertsResource whose only channel records what it was asked to send."""

    sent: ClassVar[list[str]] = []

    def senders(self) -> list[Any]:
        class Recorder:
            name = "recorder"

            def send(self, alert: Any) -> None:
                RecordingAlerts.sent.append(alert.text)

        return [Recorder()]


class Harness:
    """A landing zone, a DuckDB warehouse that can break, a real instance and the real job."""

    def __init__(self, tmp: Path, **policy: int) -> None:
        self.landing_dir = tmp / "landing"
        self.landing_dir.mkdir()
        self.duckdb_path = tmp / "warehouse.duckdb"
        self.landing = LandingZoneResource(
            uri=str(self.landing_dir), buffer_count_records=1, buffer_flush_seconds=3_600, **policy
        )
        self.resources = {
            "warehouse": WarehouseResource(engine="duckdb", duckdb_path=str(self.duckdb_path)),
            "raw_store": RawStoreResource(uri=str(tmp / "raw")),
            "landing": self.landing,
            "privacy": PrivacyResource(hmac_key="x" * 48),
            "thresholds": ThresholdsResource(),
            "alerts": RecordingAlerts(),
        }
        self.instance = DagsterInstance.ephemeral()
        self.job = Definitions(
            assets=[orders, dead_letters], jobs=[orders_job], resources=self.resources
        ).resolve_job_def("orders_job")
        self.cursor: str | None = None
        RecordingAlerts.sent.clear()

    def land(self, name: str, order_ids: list[str]) -> Path:
        path = self.landing_dir / name
        tmp = self.landing_dir / f".{name}.tmp"
        rows = [
            {"order_id": oid, "created_at": "2026-11-27T10:00:00Z", "amount": "12.50", "currency": "EUR"}
            for oid in order_ids
        ]
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
        os.replace(tmp, path)
        return path

    def break_warehouse(self) -> None:
        self.duckdb_path.mkdir()

    def heal_warehouse(self) -> None:
        self.duckdb_path.rmdir()

    def tick(self) -> RunRequest | SkipReason:
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"landing": self.landing, "alerts": self.resources["alerts"]},
        )
        result = orders_landing_sensor(context)
        self.cursor = context.cursor
        return result

    def launch(self, request: RunRequest) -> bool | None:
        """Run the request as the daemon would: None when its run key was used before."""
        seen = self.instance.get_runs(filters=RunsFilter(tags={"dagster/run_key": request.run_key}))
        if seen:
            return None
        result = self.job.execute_in_process(
            run_config=request.run_config,
            asset_selection=request.asset_selection,
            instance=self.instance,
            tags={**request.tags, "dagster/run_key": request.run_key or ""},
            raise_on_error=False,
        )
        return result.success

    def orders_ids(self) -> list[str]:
        with self.resources["warehouse"].open() as wh:
            return list(wh.read_sql("SELECT order_id FROM ORDERS ORDER BY order_id")["order_id"])

    def pending(self) -> list[str]:
        files = self.landing_dir.iterdir()
        return sorted(p.name for p in files if p.is_file() and not p.name.startswith("."))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The sensor's clock, moved by the test (no sleeping)."""
    now = [datetime.now(UTC)]
    monkeypatch.setattr(warehouse_layer, "_utcnow", lambda: now[0])
    return now


def test_a_failed_load_is_retried_after_a_backoff_with_a_new_key_and_loads_once(
    tmp_path: Path, clock: list[datetime]
) -> None:
    harness = Harness(tmp_path, retry_backoff_seconds=60, retry_backoff_max_seconds=600)
    harness.land("orders_a.jsonl", ["A1", "A2"])
    harness.break_warehouse()

    first = harness.tick()
    assert isinstance(first, RunRequest)
    assert harness.launch(first) is False  # the warehouse is unusable: the run fails
    assert harness.pending() == ["orders_a.jsonl"]
    harness.heal_warehouse()
    clock[0] = datetime.now(UTC)  # just after the failed run ended

    # Right after the failure the file waits out its backoff (1 x 60 s) ...
    waiting = harness.tick()
    assert isinstance(waiting, SkipReason)
    assert "1 failed file(s) wait to retry" in (waiting.skip_message or "")
    # ... then it is requested again, under a key no earlier run had (the daemon would skip it).
    clock[0] += timedelta(seconds=61)
    retry = harness.tick()
    assert isinstance(retry, RunRequest)
    assert retry.run_key != first.run_key
    assert retry.run_config == first.run_config
    assert retry.tags["ingest_platform/failed_before"] == "1"
    assert harness.launch(retry) is True

    assert harness.orders_ids() == ["A1", "A2"]
    assert harness.pending() == []
    assert isinstance(harness.tick(), SkipReason)  # nothing left: nothing requested again


def test_a_processed_file_moved_back_unchanged_is_loaded_again(tmp_path: Path, clock: list[datetime]) -> None:
    harness = Harness(tmp_path)
    path = harness.land("orders_b.jsonl", ["B1"])
    first = harness.tick()
    assert isinstance(first, RunRequest) and harness.launch(first) is True
    assert harness.pending() == []

    # Moved back with the same path, size and mtime (an operator replaying a batch).
    os.replace(tmp_path / "landing" / "processed" / path.name, path)
    again = harness.tick()
    assert isinstance(again, RunRequest)
    assert again.run_key != first.run_key
    assert harness.launch(again) is True
    assert harness.pending() == []
    assert harness.orders_ids() == ["B1"]  # loaded again, still one row


def test_a_file_being_loaded_is_not_requested_twice(tmp_path: Path, clock: list[datetime]) -> None:
    harness = Harness(tmp_path)
    harness.land("orders_c.jsonl", ["C1"])
    request = harness.tick()
    assert isinstance(request, RunRequest)
    # The daemon created the run, it has not finished yet (queued): no second request for the file.
    harness.instance.create_run_for_job(
        harness.job,
        run_config=request.run_config,
        tags={**request.tags, "dagster/run_key": request.run_key or ""},
    )
    skip = harness.tick()
    assert isinstance(skip, SkipReason)
    assert "1 file(s) being loaded" in (skip.skip_message or "")


def test_a_failed_file_goes_again_once_its_backoff_is_over_even_if_the_buffer_would_wait(
    tmp_path: Path, clock: list[datetime]
) -> None:
    harness = Harness(tmp_path, retry_backoff_seconds=60)
    harness.land("orders_e.jsonl", ["E1"])
    harness.break_warehouse()
    first = harness.tick()
    assert isinstance(first, RunRequest) and harness.launch(first) is False
    harness.heal_warehouse()
    # A redeploy raised the buffer: one young file with one record would wait an hour.
    harness.landing = LandingZoneResource(
        uri=harness.landing.uri,
        buffer_count_records=10_000,
        buffer_flush_seconds=3_600,
        retry_backoff_seconds=60,
    )
    clock[0] = datetime.now(UTC) + timedelta(seconds=61)
    retry = harness.tick()
    assert isinstance(retry, RunRequest)
    assert retry.tags["ingest_platform/flush_reason"] == "retry"
    assert harness.launch(retry) is True and harness.orders_ids() == ["E1"]


def test_a_load_killed_after_its_files_moved_still_gets_its_dead_letters_loaded(
    tmp_path: Path, clock: list[datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest_platform.orders.landing import LandingZone

    harness = Harness(tmp_path)
    path = harness.land("orders_f.jsonl", ["F1", "F2"])
    with path.open("a") as out:  # one row every rule rejects: a dead letter
        out.write(json.dumps({"order_id": "F3", "created_at": "2026-11-27T10:00:00Z", "amount": "-5"}) + "\n")
    original = LandingZone.mark_processed

    def move_then_die(self: LandingZone, files: Any, **kwargs: Any) -> dict[str, str]:
        original(self, files, **kwargs)
        raise RuntimeError("killed right after the files moved")

    request = harness.tick()
    assert isinstance(request, RunRequest)
    monkeypatch.setattr(LandingZone, "mark_processed", move_then_die)
    assert harness.launch(request) is False  # ORDERS merged, the file moved, dead_letters never ran
    monkeypatch.undo()
    assert harness.pending() == [] and harness.orders_ids() == ["F1", "F2"]

    # Nothing is pending, yet the sensor sees the failed load and runs dead_letters alone.
    followup = harness.tick()
    assert isinstance(followup, RunRequest)
    assert followup.asset_selection is not None
    assert [key.to_user_string() for key in followup.asset_selection] == ["dead_letters"]
    assert harness.launch(followup) is True
    with harness.resources["warehouse"].open() as wh:
        letters = wh.read_sql("SELECT reason FROM dead_letters")
    assert list(letters["reason"]) == ["negative_amount"]
    assert isinstance(harness.tick(), SkipReason)  # done: not requested again


def test_a_run_that_died_without_a_trace_stops_holding_its_files(
    tmp_path: Path, clock: list[datetime]
) -> None:
    from dagster._core.events import DagsterEvent, DagsterEventType

    harness = Harness(tmp_path, retry_backoff_seconds=60)
    harness.land("orders_k.jsonl", ["K1"])
    request = harness.tick()
    assert isinstance(request, RunRequest)
    # The run started and its worker was SIGKILLed: nothing marks it failed on this instance.
    run = harness.instance.create_run_for_job(
        harness.job,
        run_config=request.run_config,
        tags={**request.tags, "dagster/run_key": request.run_key or ""},
    )
    start = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name="orders_job")
    harness.instance.report_dagster_event(start, run.run_id)
    clock[0] = datetime.now(UTC)
    assert "1 file(s) being loaded" in (_skip_message(harness.tick()))

    # Two hours later it counts as a failed attempt: retried after the backoff, under a new key.
    clock[0] += timedelta(seconds=warehouse_layer.STALE_RUN_SECONDS + 61)
    retry = harness.tick()
    assert isinstance(retry, RunRequest) and retry.run_key != request.run_key
    assert retry.tags["ingest_platform/failed_before"] == "1"
    assert harness.launch(retry) is True
    assert harness.orders_ids() == ["K1"]


def _skip_message(result: RunRequest | SkipReason) -> str:
    assert isinstance(result, SkipReason)
    return result.skip_message or ""


def test_repeated_failures_back_off_exponentially_alert_once_and_still_retry(
    tmp_path: Path, clock: list[datetime]
) -> None:
    harness = Harness(
        tmp_path, retry_backoff_seconds=10, retry_backoff_max_seconds=40, retry_alert_after_failures=3
    )
    harness.land("orders_d.jsonl", ["D1"])
    harness.break_warehouse()
    keys = []
    waits = []
    for _ in range(5):
        request = harness.tick()
        assert isinstance(request, RunRequest)
        keys.append(request.run_key)
        assert harness.launch(request) is False
        clock[0] = datetime.now(UTC)  # just after the failed run ended
        # the smallest step that the sensor accepts is the backoff now in force
        wait = 0
        while not isinstance(harness.tick(), RunRequest):
            clock[0] += timedelta(seconds=5)
            wait += 5
        waits.append(wait)
    assert len(set(keys)) == 5
    assert waits == [10, 20, 40, 40, 40]  # base * 2^(n-1), capped at 40 s (5 s steps)
    assert len(RecordingAlerts.sent) == 1  # once, when the 3rd failure in a row was seen
    assert "failed 3 load(s) in a row" in RecordingAlerts.sent[0]
    assert "orders_d.jsonl" in RecordingAlerts.sent[0]

    harness.heal_warehouse()
    request = harness.tick()
    assert isinstance(request, RunRequest) and harness.launch(request) is True
    assert harness.orders_ids() == ["D1"]
    assert harness.pending() == []


def test_plan_retries_counts_failures_per_file_version_since_the_last_success() -> None:
    from ingest_platform.orders.landing import LandingFile

    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    file = LandingFile("/l/x.jsonl", 10, t0, "jsonl", 1)
    version = warehouse_layer.file_version(file)
    replaced = LandingFile("/l/x.jsonl", 11, t0 + timedelta(seconds=1), "jsonl", 1)

    def run(n: int, ok: bool, versions: set[str]) -> LoadAttempt:
        return LoadAttempt(
            f"r{n}", "b", frozenset(versions), frozenset({"/l/x.jsonl"}), True, ok, t0.timestamp() + n
        )

    policy = RetryPolicy(backoff_seconds=10, backoff_max_seconds=25, alert_after_failures=2)
    history = [run(n, ok, {version}) for n, ok in [(1, False), (2, True), (3, False), (4, False)]]
    state = plan_retries([file], history, policy)
    assert state.retries["/l/x.jsonl"].failures == 2  # the success at r2 reset the streak
    last_failure = datetime.fromtimestamp(t0.timestamp() + 4, UTC)
    assert state.retries["/l/x.jsonl"].retry_at == last_failure + timedelta(seconds=20)
    # A new version of the file (the producer replaced it) starts clean.
    assert plan_retries([replaced], history, policy).retries == {}
    assert [policy.wait_seconds(n) for n in range(5)] == [0, 10, 20, 25, 25]
