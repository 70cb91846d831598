"""The ORDERS pipeline at the Dagster level: the landing sensor and the ORDERS asset, run for real.

The sensor is evaluated with ``build_sensor_context`` against a temporary landing zone: it flushes
on record count or on file age, skips otherwise, and its ``run_key`` identifies the batch (the
daemon drops a RunRequest whose key it has seen, so a stable key is what stops double loads).

The asset runs through ``materialize`` / the real ``orders_job`` on an ephemeral instance with
local resources pointing at temporary paths (DuckDB), and once on the Snowflake implementation
under fakesnow patch mode (REFERENCE §7). Ground truth comes from ``sandbox.orders``: the valid
order ids, the expected rejects and every raw personal value written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetCheckEvaluation,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    SkipReason,
    build_sensor_context,
    materialize,
)

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
    attempt_run_key,
    orders,
    orders_job,
    orders_landing_sensor,
)
from ingest_platform.orders.landing import LandingZone, run_key_for
from ingest_platform.raw_store import RawStore
from ingest_platform.sandbox.orders import (
    CORRUPT_JSON_LINE,
    CORRUPT_JSON_ROWS,
    OrderFilesTruth,
    write_malformed_file,
    write_order_files,
)
from ingest_platform_tests.conftest import fakesnow_warehouse_resource

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # fakesnow's arrow-copy notice, weak-key notice
    pytest.mark.usefixtures("dagster_home"),  # PrivacyResource and the instance look at DAGSTER_HOME
]

HMAC_KEY = "x" * 48


# ---- helpers -------------------------------------------------------------------------------


def landing_resource(landing: Path, *, count: int = 10_000, flush_s: int = 60) -> LandingZoneResource:
    return LandingZoneResource(uri=str(landing), buffer_count_records=count, buffer_flush_seconds=flush_s)


def local_resources(tmp: Path, warehouse: WarehouseResource | None = None) -> dict[str, Any]:
    """What ``environments.local_resources()`` builds, pointed at temporary paths."""
    return {
        "warehouse": warehouse
        or WarehouseResource(engine="duckdb", duckdb_path=str(tmp / "warehouse.duckdb")),
        "raw_store": RawStoreResource(uri=str(tmp / "raw")),
        "landing": landing_resource(tmp / "landing"),
        "privacy": PrivacyResource(hmac_key=HMAC_KEY),
        "thresholds": ThresholdsResource(),
    }


def run_orders(
    resources: Mapping[str, Any],
    *,
    run_config: Mapping[str, Any] | None = None,
    raise_on_error: bool = True,
) -> ExecuteInProcessResult:
    return materialize(
        [orders],
        resources=dict(resources),
        run_config=dict(run_config or {}),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def orders_table(resources: Mapping[str, Any]) -> pd.DataFrame:
    with resources["warehouse"].open() as wh:
        if "orders" not in wh.list_tables():
            return pd.DataFrame(columns=["order_id", "amount"])
        frame = wh.read_sql("SELECT * FROM ORDERS ORDER BY order_id")
    return frame.reset_index(drop=True)


def check_results(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def materialization_metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


def pending_names(landing: Path) -> list[str]:
    return sorted(path.name for path in landing.iterdir() if path.is_file())


def spooled_dead_letters(resources: Mapping[str, Any]) -> list[Any]:
    return RawStore(resources["raw_store"].uri).read_dead_letters()


def reject_counts(letters: Iterable[Any]) -> dict[str, int]:
    """Rejects per reason, from DeadLetters or from plain reason strings."""
    counts: dict[str, int] = {}
    for letter in letters:
        reason = letter if isinstance(letter, str) else letter.reason
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def age_files(paths: list[Path], seconds: float) -> None:
    """Make files look ``seconds`` old (the age rule reads mtimes)."""
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


def evaluate_sensor(landing: LandingZoneResource) -> RunRequest | SkipReason:
    context = build_sensor_context(
        resources={"landing": landing, "alerts": AlertsResource()}, instance=DagsterInstance.ephemeral()
    )
    return orders_landing_sensor(context)


def put_back(landing: Path, names: list[str]) -> None:
    """Copy processed files back under their original names (a producer resending a batch)."""
    for name in names:
        shutil.copyfile(landing / "processed" / name, landing / name)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "landing").mkdir()
    return tmp_path


@pytest.fixture
def truth(tmp: Path) -> OrderFilesTruth:
    # 3 files x 40 rows, 2 bad rows each (cycling through the validation rules)
    return write_order_files(tmp / "landing", n_files=3, rows_per_file=40, bad_rows_per_file=2)


# ---- the sensor ----------------------------------------------------------------------------


def test_sensor_skips_while_the_buffer_is_neither_full_nor_old(tmp: Path) -> None:
    landing = landing_resource(tmp / "landing", count=1_000, flush_s=3_600)
    empty = evaluate_sensor(landing)
    assert isinstance(empty, SkipReason)
    assert "0 record(s) in 0 file(s)" in (empty.skip_message or "")

    write_order_files(tmp / "landing", n_files=2, rows_per_file=10)
    skip = evaluate_sensor(landing)
    assert isinstance(skip, SkipReason)
    assert "20 record(s) in 2 file(s)" in (skip.skip_message or "")
    assert "1000 records or 3600s" in (skip.skip_message or "")


def test_sensor_flushes_on_record_count(tmp: Path, truth: OrderFilesTruth) -> None:
    landing = landing_resource(tmp / "landing", count=100, flush_s=3_600)  # 120 records pending
    request = evaluate_sensor(landing)

    assert isinstance(request, RunRequest)
    files = request.run_config["ops"]["ORDERS"]["config"]["files"]
    assert [Path(f).name for f in files] == [p.name for p in truth.files]  # oldest first, all of them
    # the first attempt at this batch: its fingerprint, attempt 0
    assert request.run_key == attempt_run_key(run_key_for(landing.open().pending_files()), 0)
    assert request.tags["ingest_platform/flush_reason"] == "count"
    assert request.tags["ingest_platform/records"] == "120"


def test_sensor_flushes_on_age_with_few_records(tmp: Path) -> None:
    landing = landing_resource(tmp / "landing", count=10_000, flush_s=60)
    old = write_order_files(tmp / "landing", n_files=1, rows_per_file=5, seed=1)
    assert isinstance(evaluate_sensor(landing), SkipReason)  # 5 records, seconds old

    age_files(old.files, 600)
    fresh = write_order_files(tmp / "landing", n_files=1, rows_per_file=5, seed=2)
    request = evaluate_sensor(landing)
    assert isinstance(request, RunRequest)
    assert request.tags["ingest_platform/flush_reason"] == "age"
    # the oldest file triggers the flush; the whole buffer (fresh file too) goes in the batch
    files = [Path(f).name for f in request.run_config["ops"]["ORDERS"]["config"]["files"]]
    assert files == [old.files[0].name, fresh.files[0].name]


def test_run_key_is_stable_for_a_batch_and_changes_with_it(tmp: Path, truth: OrderFilesTruth) -> None:
    landing = landing_resource(tmp / "landing", count=1, flush_s=3_600)
    first = evaluate_sensor(landing)
    again = evaluate_sensor(landing)
    assert isinstance(first, RunRequest) and isinstance(again, RunRequest)
    # Same pending batch, same key: the daemon drops the second request (no double load while
    # the first run is queued or running).
    assert again.run_key == first.run_key
    assert again.run_config == first.run_config

    write_order_files(tmp / "landing", n_files=1, rows_per_file=5, seed=99)
    grown = evaluate_sensor(landing)
    assert isinstance(grown, RunRequest)
    assert grown.run_key != first.run_key
    assert len(grown.run_config["ops"]["ORDERS"]["config"]["files"]) == len(truth.files) + 1

    # A file rewritten in place (new mtime) is new content: new key.
    age_files(truth.files[:1], 3)
    touched = evaluate_sensor(landing)
    assert isinstance(touched, RunRequest)
    assert touched.run_key not in {first.run_key, grown.run_key}

    # Once loaded, the files leave the root: the next arrival makes a batch of its own.
    zone = LandingZone(str(tmp / "landing"))
    zone.mark_processed(zone.pending_files())
    assert isinstance(evaluate_sensor(landing), SkipReason)
    write_order_files(tmp / "landing", n_files=1, rows_per_file=5, seed=100)
    later = evaluate_sensor(landing)
    assert isinstance(later, RunRequest)
    assert later.run_key not in {first.run_key, grown.run_key, touched.run_key}
    assert len(later.run_config["ops"]["ORDERS"]["config"]["files"]) == 1


def test_sensor_request_runs_orders_job_and_loads_exactly_its_batch(
    tmp: Path, truth: OrderFilesTruth
) -> None:
    resources = local_resources(tmp)
    landing = landing_resource(tmp / "landing", count=100, flush_s=3_600)
    request = evaluate_sensor(landing)
    assert isinstance(request, RunRequest)
    # A file that lands after the request was made waits for the next batch.
    late = write_order_files(tmp / "landing", n_files=1, rows_per_file=5, seed=77)

    job = Definitions(assets=[orders, dead_letters], jobs=[orders_job], resources=resources).resolve_job_def(
        "orders_job"
    )
    result = job.execute_in_process(
        run_config=request.run_config, instance=DagsterInstance.ephemeral(), tags=request.tags
    )

    assert result.success
    assert set(orders_table(resources)["order_id"]) == truth.order_ids
    assert pending_names(tmp / "landing") == [late.files[0].name]
    # dead_letters ran after ORDERS in the same job: the rejects are in the warehouse, scrubbed
    with resources["warehouse"].open() as wh:
        letters = wh.read_sql("SELECT reason, payload, record_key FROM dead_letters")
    assert reject_counts(letters["reason"]) == truth.expected_reject_counts
    text = " ".join(letters["payload"].astype(str)) + " ".join(letters["record_key"].astype(str))
    assert not [value for value in truth.pii_values if value in text]


# ---- the ORDERS asset on DuckDB ------------------------------------------------------------


def test_orders_loads_valid_rows_tokenised_and_spools_rejects(tmp: Path, truth: OrderFilesTruth) -> None:
    resources = local_resources(tmp)
    result = run_orders(resources)

    table = orders_table(resources)
    assert set(table["order_id"]) == truth.order_ids
    assert table["order_id"].is_unique
    # PII is tokenised or dropped before the warehouse: no raw value survives in any column
    stored = set(table.astype(str).to_numpy().ravel())
    assert not stored & truth.pii_values
    assert "shipping_address" not in table.columns
    assert {"customer_email_token", "customer_phone_token"} <= set(table.columns)

    letters = spooled_dead_letters(resources)
    assert reject_counts(letters) == truth.expected_reject_counts
    assert {letter.run_id for letter in letters} == {result.run_id}

    meta = materialization_metadata(result)
    assert meta["dagster/row_count"] == len(truth.order_ids)
    assert (meta["files_loaded"], meta["files_quarantined"]) == (3, 0)
    assert (meta["records_in"], meta["dead_letters"]) == (truth.rows_written, truth.bad_row_count)
    checks = check_results(result)
    assert checks["order_ids_unique"].passed
    # 6 rejects out of 120 records is 5 %, above the 2 % threshold: the WARN check fails
    assert not checks["dead_letter_rate"].passed
    assert checks["dead_letter_rate"].metadata["value"].value == pytest.approx(0.05)
    assert pending_names(tmp / "landing") == []
    assert sorted(p.name for p in (tmp / "landing" / "processed").iterdir()) == [p.name for p in truth.files]


def test_rerunning_the_same_files_does_not_duplicate(tmp: Path, truth: OrderFilesTruth) -> None:
    resources = local_resources(tmp)
    run_orders(resources)
    before = orders_table(resources)
    letters_before = spooled_dead_letters(resources)

    put_back(tmp / "landing", [p.name for p in truth.files])
    assert pending_names(tmp / "landing") == [p.name for p in truth.files]
    again = run_orders(resources)

    after = orders_table(resources)
    assert len(after) == len(before) == len(truth.order_ids)
    assert after["order_id"].is_unique
    pd.testing.assert_frame_equal(after, before)
    # the same batch replaces its own spooled rejects instead of adding a second copy
    assert reject_counts(spooled_dead_letters(resources)) == reject_counts(letters_before)
    assert check_results(again)["order_ids_unique"].passed
    assert pending_names(tmp / "landing") == []


def test_a_retry_of_a_finished_batch_loads_nothing_twice(tmp: Path, truth: OrderFilesTruth) -> None:
    resources = local_resources(tmp)
    request = evaluate_sensor(landing_resource(tmp / "landing", count=1))
    assert isinstance(request, RunRequest)
    run_orders(resources, run_config=request.run_config)
    before = orders_table(resources)

    # A re-execution of the same run (same file list): those files are no longer pending.
    retry = run_orders(resources, run_config=request.run_config)

    assert retry.success
    pd.testing.assert_frame_equal(orders_table(resources), before)
    assert reject_counts(spooled_dead_letters(resources)) == truth.expected_reject_counts
    meta = materialization_metadata(retry)
    assert (meta["files_loaded"], meta["records_in"], meta["rows_loaded"]) == (0, 0, 0)


def test_malformed_and_duplicate_files_lose_nothing_valid(tmp: Path, truth: OrderFilesTruth) -> None:
    landing = tmp / "landing"
    corrupt = write_malformed_file(landing, "corrupt_json")
    bad = {
        "empty": write_malformed_file(landing, "empty"),
        "wrong_schema": write_malformed_file(landing, "wrong_schema"),
        "unreadable": write_malformed_file(landing, "truncated"),
    }
    # The same orders sent twice under another name: merged on order_id, never doubled.
    clean = write_order_files(landing, n_files=1, rows_per_file=10, seed=5)
    shutil.copyfile(clean.files[0], landing / "orders_resent.jsonl")
    lines = corrupt.read_text().splitlines()
    corrupt_ids = {json.loads(line)["order_id"] for line in lines[: CORRUPT_JSON_LINE - 1]}
    resources = local_resources(tmp)

    result = run_orders(resources)

    assert result.success
    table = orders_table(resources)
    assert truth.order_ids | clean.order_ids | corrupt_ids <= set(table["order_id"])
    assert len(table) == len(truth.order_ids) + len(clean.order_ids) + CORRUPT_JSON_ROWS - 1
    assert table["order_id"].is_unique
    assert check_results(result)["order_ids_unique"].passed

    quarantine = landing / "quarantine"
    for reason, path in bad.items():
        assert (quarantine / path.name).exists()
        note = (quarantine / (path.name + ".reason.txt")).read_text()
        assert f"reason: {reason}:" in note
    assert not (quarantine / corrupt.name).exists()  # one bad line does not condemn the file

    # every bad row and the one cut line are dead-lettered; duplicates are not rejects
    expected = {**truth.expected_reject_counts, "corrupt_json": 1}
    assert reject_counts(spooled_dead_letters(resources)) == expected
    meta = materialization_metadata(result)
    assert (meta["files_loaded"], meta["files_quarantined"]) == (6, 3)
    assert pending_names(landing) == []


def test_a_later_file_updates_existing_orders(tmp: Path, truth: OrderFilesTruth) -> None:
    resources = local_resources(tmp)
    run_orders(resources)
    update = _update_file(tmp / "landing" / "processed" / truth.files[0].name, n=4)

    run_orders(resources)

    table = orders_table(resources).set_index("order_id")
    assert len(table) == len(truth.order_ids)
    for order_id, amount in update.items():
        assert table.loc[order_id, "amount"] == pytest.approx(amount)


def _update_file(source: Path, *, n: int) -> dict[str, float]:
    """Land a new version of the first ``n`` valid orders of a loaded file (amount + 1000)."""
    target = source.parent.parent / "orders_update.jsonl"
    frame = pd.DataFrame([json.loads(line) for line in source.read_text().splitlines()])
    frame = frame[frame["order_id"].notna() & (pd.to_numeric(frame["amount"]) > 0)]
    frame = frame[frame["currency"].str.fullmatch("[A-Z]{3}")].head(n).copy()
    frame["amount"] = pd.to_numeric(frame["amount"]) + 1000
    frame.to_json(target, orient="records", lines=True, force_ascii=False)
    return dict(zip(frame["order_id"], frame["amount"], strict=True))


def test_a_crash_inside_the_merge_leaves_orders_and_landing_as_they_were(
    tmp: Path, truth: OrderFilesTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest_platform.warehouse.duckdb_warehouse import DuckDBSession

    resources = local_resources(tmp)
    run_orders(resources)
    before = orders_table(resources)
    letters_before = spooled_dead_letters(resources)
    second = write_order_files(tmp / "landing", n_files=2, rows_per_file=30, seed=21, bad_rows_per_file=1)
    update = _update_file(tmp / "landing" / "processed" / truth.files[1].name, n=3)
    batch = pending_names(tmp / "landing")

    # DuckDB's merge is BEGIN; UPDATE matched; INSERT new; COMMIT. Die after the UPDATE ran.
    original = DuckDBSession.execute
    crashes = []

    def die_on_insert(self: DuckDBSession, sql: str, params: Any = None) -> list[tuple]:
        if sql.startswith('INSERT INTO "orders"') and not crashes:
            crashes.append(sql)
            raise RuntimeError("killed in the middle of the merge")
        return original(self, sql, params)

    monkeypatch.setattr(DuckDBSession, "execute", die_on_insert)
    failed = run_orders(resources, raise_on_error=False)

    assert not failed.success and crashes
    pd.testing.assert_frame_equal(orders_table(resources), before)  # the UPDATE was rolled back
    assert pending_names(tmp / "landing") == batch  # nothing moved: the batch is still pending
    assert reject_counts(spooled_dead_letters(resources)) == reject_counts(letters_before)

    monkeypatch.undo()
    rerun = run_orders(resources)

    assert rerun.success
    table = orders_table(resources)
    assert set(table["order_id"]) == truth.order_ids | second.order_ids
    assert table["order_id"].is_unique
    amounts = table.set_index("order_id")["amount"]
    assert all(amounts[order_id] == pytest.approx(amount) for order_id, amount in update.items())
    assert pending_names(tmp / "landing") == []
    expected = dict(truth.expected_reject_counts)
    for reason, n in second.expected_reject_counts.items():
        expected[reason] = expected.get(reason, 0) + n
    assert reject_counts(spooled_dead_letters(resources)) == expected


def test_a_crash_after_the_commit_but_before_the_files_move_reloads_idempotently(
    tmp: Path, truth: OrderFilesTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A quarantined file in the batch: gone by the rerun, it must not change the spool's key.
    write_malformed_file(tmp / "landing", "empty")
    resources = local_resources(tmp)
    monkeypatch.setattr(LandingZone, "mark_processed", _raise("killed before the files moved"))
    failed = run_orders(resources, raise_on_error=False)
    assert not failed.success
    assert set(orders_table(resources)["order_id"]) == truth.order_ids  # the MERGE had committed
    # Nothing moved: files move (or are quarantined) only after the MERGE, one by one, and the
    # first move died.
    assert pending_names(tmp / "landing") == sorted([p.name for p in truth.files] + ["orders_empty.jsonl"])

    monkeypatch.undo()
    assert run_orders(resources).success
    table = orders_table(resources)
    assert len(table) == len(truth.order_ids) and table["order_id"].is_unique
    # the rerun replaced the failed run's spool: every reject once, none twice
    assert reject_counts(spooled_dead_letters(resources)) == truth.expected_reject_counts
    assert pending_names(tmp / "landing") == []


def test_a_crash_right_after_the_files_moved_loses_no_reject(
    tmp: Path, truth: OrderFilesTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = local_resources(tmp)
    original = LandingZone.mark_processed

    def move_then_die(self: LandingZone, files: Any, **kwargs: Any) -> dict[str, str]:
        moved = original(self, files, **kwargs)
        if not self.pending_files():  # the last file has moved: die before anything else
            raise RuntimeError("killed right after the files moved")
        return moved

    monkeypatch.setattr(LandingZone, "mark_processed", move_then_die)
    assert not run_orders(resources, raise_on_error=False).success
    monkeypatch.undo()

    # Nothing is pending any more, so no rerun would ever see these files again: the rejects
    # must already be in the spool.
    assert pending_names(tmp / "landing") == []
    assert reject_counts(spooled_dead_letters(resources)) == truth.expected_reject_counts
    assert run_orders(resources).success
    assert reject_counts(spooled_dead_letters(resources)) == truth.expected_reject_counts
    assert set(orders_table(resources)["order_id"]) == truth.order_ids


def _raise(message: str) -> Any:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(message)

    return boom


def test_a_batch_of_only_bad_files_before_any_order_loaded(tmp: Path) -> None:
    # The very first batch can be all garbage: ORDERS does not exist yet.
    write_malformed_file(tmp / "landing", "empty")
    write_malformed_file(tmp / "landing", "wrong_schema")
    resources = local_resources(tmp)

    result = run_orders(resources)

    assert result.success
    assert sorted(p.name for p in (tmp / "landing" / "quarantine").glob("*.jsonl")) == [
        "orders_empty.jsonl",
        "orders_wrong_schema.jsonl",
    ]
    assert check_results(result)["order_ids_unique"].passed
    assert materialization_metadata(result)["dagster/row_count"] == 0


# ---- the ORDERS asset on Snowflake (fakesnow) ----------------------------------------------


@pytest.fixture
def snowflake_warehouse() -> Iterator[WarehouseResource]:
    with fakesnow_warehouse_resource(snowflake_role="INGEST_LOADER") as warehouse:
        yield warehouse


def test_orders_on_snowflake_loads_reruns_and_survives_a_crashed_merge(
    tmp: Path,
    truth: OrderFilesTruth,
    snowflake_warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ingest_platform.warehouse.snowflake_warehouse import SnowflakeWarehouse

    resources = local_resources(tmp, snowflake_warehouse)
    first = run_orders(resources)

    table = orders_table(resources)
    assert set(table["order_id"]) == truth.order_ids and table["order_id"].is_unique
    assert not set(table.astype(str).to_numpy().ravel()) & truth.pii_values
    meta = materialization_metadata(first)
    assert meta["engine"] == "snowflake"
    assert meta["estimated_credits"] > 0  # a cold-start estimate per load on Snowflake
    assert check_results(first)["order_ids_unique"].passed

    # rerun of the same files: MERGE on order_id, no duplicates
    put_back(tmp / "landing", [p.name for p in truth.files])
    run_orders(resources)
    assert len(orders_table(resources)) == len(truth.order_ids)

    # the single MERGE statement fails once: ORDERS unchanged, the batch stays pending
    second = write_order_files(tmp / "landing", n_files=1, rows_per_file=30, seed=31)
    before = orders_table(resources)
    original = SnowflakeWarehouse._merge_from_stage
    calls: list[str] = []

    def fail_once(self: SnowflakeWarehouse, *args: Any, **kwargs: Any) -> int | None:
        calls.append("merge")
        if len(calls) == 1:
            raise RuntimeError("warehouse connection lost during MERGE")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SnowflakeWarehouse, "_merge_from_stage", fail_once)
    assert not run_orders(resources, raise_on_error=False).success
    pd.testing.assert_frame_equal(orders_table(resources), before)
    assert pending_names(tmp / "landing") == [second.files[0].name]

    assert run_orders(resources).success
    after = orders_table(resources)
    assert set(after["order_id"]) == truth.order_ids | second.order_ids
    assert after["order_id"].is_unique
    assert pending_names(tmp / "landing") == []


# ---- item 7: a fresh warehouse --------------------------------------------------------------


def test_a_fresh_warehouse_whose_first_batch_has_no_reject_runs_the_whole_job(tmp: Path) -> None:
    # No reject anywhere yet: the dead_letters table does not exist when dead_letters runs.
    rows = [
        {"order_id": f"F{i}", "created_at": "2026-11-27T10:00:00Z", "amount": "3.50", "currency": "EUR"}
        for i in range(3)
    ]
    (tmp / "landing" / "orders_clean.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    resources = local_resources(tmp)
    job = Definitions(assets=[orders, dead_letters], jobs=[orders_job], resources=resources).resolve_job_def(
        "orders_job"
    )

    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)

    assert result.success
    assert set(orders_table(resources)["order_id"]) == {"F0", "F1", "F2"}
    (letters,) = [
        event
        for event in result.get_asset_materialization_events()
        if event.asset_key.to_user_string() == "dead_letters"
    ]
    assert letters.materialization.metadata["dagster/row_count"].value == 0


# ---- reconciliation and the dead-letter rate (items 11 and reconciliation) ------------------


def _clean_rows(prefix: str, n: int) -> str:
    created = "2026-11-27T10:00:00Z"
    rows = [
        {"order_id": f"{prefix}{i}", "created_at": created, "amount": "3.50", "currency": "EUR"}
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_quarantined_lines_count_in_the_dead_letter_rate_and_every_file_reconciles(tmp: Path) -> None:
    landing = tmp / "landing"
    (landing / "orders_good.jsonl").write_text(
        _clean_rows("G", 10) + _clean_rows("G", 2) + '{"order_id": "G99", "amount": "-1"}\n'
    )
    for n in range(5):  # unreadable: every line is garbage, so the whole file is quarantined
        (landing / f"orders_bad_{n}.jsonl").write_text("not json at all\n" * 100)
    resources = local_resources(tmp)

    result = run_orders(resources)

    meta = materialization_metadata(result)
    assert meta["files_quarantined"] == 5 and meta["quarantined_records"] == 500
    # 13 rows read in the good file: 10 loaded, 2 superseded (same ids again), 1 dead-lettered
    assert (meta["rows_read"], meta["rows_merged"], meta["rows_superseded"], meta["dead_letters"]) == (
        513,
        10,
        2,
        1,
    )
    files = {row["name"]: row for row in meta["files"]}
    assert files["orders_good.jsonl"]["rows_read"] == 13 and files["orders_good.jsonl"]["fingerprint"]
    assert all(files[f"orders_bad_{n}.jsonl"]["quarantined_records"] == 100 for n in range(5))
    checks = check_results(result)
    assert checks["orders_reconciliation"].passed
    # Rejected records are the dead letter plus the quarantined lines: 501 of 513, not 0.0.
    assert checks["dead_letter_rate"].metadata["value"].value == pytest.approx(round(501 / 513, 4))
    assert not checks["dead_letter_rate"].passed


def test_orders_reconciliation_blocks_the_run_when_the_ledger_does_not_add_up(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest_platform.orders import load as load_module

    (tmp / "landing" / "orders_r.jsonl").write_text(_clean_rows("R", 4))
    resources = local_resources(tmp)
    original = load_module.record_file_ledger

    def lose_a_row(warehouse: Any, reconciliations: Any, **kwargs: Any) -> Any:
        # A ledger that says one row more was read than went anywhere.
        tampered = [load_module._replace(rec, rows_read=rec.rows_read + 1) for rec in reconciliations]
        return original(warehouse, tampered, **kwargs)

    monkeypatch.setattr(load_module, "record_file_ledger", lose_a_row)
    job = Definitions(assets=[orders, dead_letters], jobs=[orders_job], resources=resources).resolve_job_def(
        "orders_job"
    )
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)

    assert not result.success  # blocking ERROR check: the run fails, downstream is skipped
    evaluation = check_results(result)["orders_reconciliation"]
    assert not evaluation.passed
    assert evaluation.metadata["value"].value == 1
    assert "orders_r.jsonl" in (evaluation.description or "")
    assert "read 5 but accounted 4" in (evaluation.description or "")
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["dead_letters"]]
