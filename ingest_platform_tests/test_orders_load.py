"""``load_order_batch`` end to end (DuckDB, a real landing directory, a real raw store): the
issue #11 library items, each reproduced as a hostile user would and checked against the rule.

Item numbers refer to issue #11. Each test here failed on main 839a513 (most raise there: the
library function, the snapshot-checked move or the new report did not exist; the behaviour
tests — ids, versions, bounds, spool keys — assert values main got wrong).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from ingest_platform.orders.dead_letters import (
    DEAD_LETTERS_TABLE,
    ReplayOutcome,
    load_dead_letters,
    pending_letters,
    record_replays,
    replayed_letter_ids,
)
from ingest_platform.orders.landing import LandingZone
from ingest_platform.orders.load import (
    FILE_LEDGER_TABLE,
    OrdersLoadReport,
    load_order_batch,
    reconciliation_problems,
)
from ingest_platform.privacy.text_scrubber import TextScrubber
from ingest_platform.privacy.tokens import Pseudonymizer
from ingest_platform.raw_store import RawStore
from ingest_platform.warehouse import DuckDBWarehouse


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, object]]:
    landing = tmp_path / "landing"
    landing.mkdir()
    warehouse = DuckDBWarehouse(tmp_path / "wh.duckdb")
    try:
        yield {
            "landing": landing,
            "zone": LandingZone(str(landing)),
            "warehouse": warehouse,
            "raw": RawStore(str(tmp_path / "raw")),
        }
    finally:
        warehouse.close()


def _drop_pii(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["customer_name", "customer_email", "customer_phone", "shipping_address"])


def _load(env: dict[str, object], run_id: str = "r1") -> OrdersLoadReport:
    return load_order_batch(
        env["zone"],  # type: ignore[arg-type]
        None,
        apply_privacy=_drop_pii,
        warehouse=env["warehouse"],  # type: ignore[arg-type]
        raw_store=env["raw"],  # type: ignore[arg-type]
        run_id=run_id,
        query_tag="test",
    )


def _order(order_id: object, **extra: object) -> dict[str, object]:
    return {"order_id": order_id, "created_at": "2026-11-27T10:00:00Z", "amount": 10.5, **extra}


def _write(path: Path, rows: list[dict[str, object]], *, extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _orders(env: dict[str, object]) -> pd.DataFrame:
    wh = env["warehouse"]
    return wh.read_sql("SELECT * FROM orders ORDER BY order_id")  # type: ignore[attr-defined]


def _shield() -> tuple[Pseudonymizer, TextScrubber]:
    pseudo = Pseudonymizer(b"load-test-key-0123456789abcdef!!", "t1")
    return pseudo, TextScrubber(pseudo)


# -- reconciliation --------------------------------------------------------------------------


def test_every_file_reconciles_in_the_report_and_the_ledger(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    _write(
        landing / "a.jsonl",
        [
            _order("A1"),
            _order("A2"),
            _order("A1", created_at="2026-11-28T10:00:00Z"),
            _order("A3", amount=-1),
        ],
        extra_lines=("{not json",),
    )
    csv_text = "order_id,created_at,amount\nB1,2026-11-27T10:00:00Z,1\n"
    (landing / "b.csv").write_text(csv_text, encoding="utf-8")
    (landing / "c.jsonl").write_text("garbage\n" * 7, encoding="utf-8")

    report = _load(env)

    by_name = {f.name: f for f in report.files}
    a = by_name["a.jsonl"]
    assert (a.rows_read, a.loaded, a.superseded, a.dead_lettered) == (5, 2, 1, 2)
    assert by_name["b.csv"].loaded == 1 and by_name["b.csv"].status == "loaded"
    c = by_name["c.jsonl"]
    assert c.status == "quarantined" and c.quarantined_records == 7 and c.rows_read == 7
    assert report.reconciles and all(f.balanced for f in report.files)
    assert reconciliation_problems(env["warehouse"], "r1") == []  # type: ignore[arg-type]
    # Item 11: quarantined lines count as rejected records (7 + 2 of 13), not 0.
    assert report.rejected == 9 and report.dead_letter_rate == pytest.approx(9 / 13)
    metadata = report.as_metadata()
    assert metadata["quarantined_records"] == 7 and metadata["rows_read"] == 13
    assert all(isinstance(v, int | float | str) for v in metadata.values())


def test_reconciliation_problems_name_a_file_whose_counts_do_not_add_up(env: dict[str, object]) -> None:
    _write(env["landing"] / "a.jsonl", [_order("A1")])  # type: ignore[operator]
    _load(env)
    wh: DuckDBWarehouse = env["warehouse"]  # type: ignore[assignment]
    with wh._session() as session:  # simulate a lost row: the check must notice
        session.execute(f"UPDATE {FILE_LEDGER_TABLE} SET loaded = 0")
    [problem] = reconciliation_problems(wh, "r1")
    assert "a.jsonl" in problem and "read 1 but accounted 0" in problem


# -- item 2: a file replaced during a load ---------------------------------------------------


def test_a_file_replaced_after_it_was_read_is_not_moved_and_loads_next_time(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    path = _write(landing / "latest.jsonl", [_order("OLD")])
    zone: LandingZone = env["zone"]  # type: ignore[assignment]
    original_read = zone.read

    def read_then_replace(files, **kwargs):  # type: ignore[no-untyped-def]
        result = original_read(files, **kwargs)
        tmp = _write(landing / "latest.jsonl.tmp", [_order("NEW")])
        os.replace(tmp, path)  # the producer's write-then-rename, while the run is loading
        return result

    zone.read = read_then_replace  # type: ignore[method-assign]
    report = _load(env)
    assert report.left_pending == (str(path),)
    assert path.exists() and "NEW" in path.read_text()
    assert not (landing / "processed" / "latest.jsonl").exists()

    zone.read = original_read  # type: ignore[method-assign]
    _load(env, "r2")
    assert _orders(env)["order_id"].tolist() == ["NEW", "OLD"]
    assert (landing / "processed" / "latest.jsonl").exists() and not path.exists()


def test_a_file_replaced_between_the_check_and_the_rename_is_moved_back(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    path = _write(landing / "latest.jsonl", [_order("OLD")])

    class RacyZone(LandingZone):
        def _free_name(self, directory: str, name: str, companion_suffix: str | None) -> str:
            if directory.endswith("processed"):
                tmp = _write(landing / "latest.jsonl.tmp", [_order("NEW")])
                os.replace(tmp, path)  # lands after the fingerprint check, before the rename
            return super()._free_name(directory, name, companion_suffix)

    env["zone"] = RacyZone(str(landing))
    report = _load(env)
    assert report.left_pending == (str(path),)
    assert "NEW" in path.read_text()  # the unread version is back, pending
    assert not (landing / "processed" / "latest.jsonl").exists()


# -- item 4: ids are text ---------------------------------------------------------------------


def test_huge_numeric_ids_keep_every_digit_and_a_missing_id_does_not_turn_5_into_5_0(
    env: dict[str, object],
) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    _write(landing / "a.jsonl", [_order(9007199254740993), _order(9007199254740992), _order(5)])
    _write(landing / "b.jsonl", [{"created_at": "2026-11-27T10:00:00Z", "amount": 1}, _order(5)])
    report = _load(env)
    assert sorted(_orders(env)["order_id"]) == ["5", "9007199254740992", "9007199254740993"]
    assert report.superseded == 1  # order 5 twice, not "5" and "5.0"
    _write(landing / "c.jsonl", [_order(5, amount=7)])
    _load(env, "r2")
    assert _orders(env)["order_id"].tolist().count("5") == 1
    assert report.duplicate_keys == 0


def test_parquet_integer_ids_with_a_null_stay_integers(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    frame = pd.DataFrame(
        {
            "order_id": pd.array([5, None, 9007199254740993], dtype="Int64"),
            "created_at": ["2026-11-27T10:00:00Z"] * 3,
            "amount": [1.0, 2.0, 3.0],
        }
    )
    frame.to_parquet(landing / "a.parquet")
    report = _load(env)
    assert sorted(_orders(env)["order_id"]) == ["5", "9007199254740993"]
    assert report.reject_reasons == {"missing_order_id": 1}


def test_non_integral_numeric_ids_are_rejected(env: dict[str, object]) -> None:
    _write(env["landing"] / "a.jsonl", [_order(5.5), _order(6.0), _order(True), _order("X")])  # type: ignore[operator]
    report = _load(env)
    assert sorted(_orders(env)["order_id"]) == ["6", "X"]
    assert report.reject_reasons == {"invalid_order_id": 2}


# -- item 5: long names -----------------------------------------------------------------------


@pytest.mark.parametrize("length", [245, 250, 255])
def test_long_names_are_quarantined_and_processed_twice_without_errno_36(
    env: dict[str, object], length: int
) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    name = "o" * (length - len(".jsonl")) + ".jsonl"
    bad = "b" * (length - len(".jsonl")) + ".jsonl"
    for run in ("r1", "r2"):
        _write(landing / name, [_order(f"{run}-A")])
        (landing / bad).write_text("garbage\n", encoding="utf-8")
        report = _load(env, run)
        assert report.files_loaded == 1 and report.quarantined_files == 1
    assert sorted(_orders(env)["order_id"]) == ["r1-A", "r2-A"]
    processed = sorted(p.name for p in (landing / "processed").iterdir())
    data = [p for p in processed if not p.endswith(".origin.txt")]
    assert len(data) == 2 and all(len(p.encode()) <= 255 for p in processed)
    origins = [p for p in (landing / "processed").iterdir() if p.name.endswith(".origin.txt")]
    assert all(name in p.read_text() for p in origins) and len(origins) == 2
    reasons = list((landing / "quarantine").glob("*.reason.txt"))
    assert len(reasons) == 2 and all(bad in p.read_text() for p in reasons)
    assert env["zone"].pending_files() == []  # type: ignore[attr-defined]


# -- item 6: versions -------------------------------------------------------------------------


def test_an_older_version_in_a_later_batch_never_overwrites_the_newer_row(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    _write(landing / "a.jsonl", [_order("O1", amount=20, created_at="2026-11-28T10:00:00Z")])
    _load(env)
    _write(landing / "b.jsonl", [_order("O1", amount=10, created_at="2026-11-27T10:00:00Z")])
    _load(env, "r2")
    assert _orders(env)["amount"].tolist() == [20.0]


def test_updated_at_orders_versions_before_created_at(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    _write(
        landing / "a.jsonl",
        [
            _order("O1", amount=1, created_at="2026-11-28T10:00:00Z", updated_at="2026-11-28T10:00:00Z"),
            _order("O1", amount=2, created_at="2026-11-20T10:00:00Z", updated_at="2026-11-29T10:00:00Z"),
        ],
    )
    _load(env)
    _write(landing / "b.jsonl", [_order("O1", amount=3, created_at="2026-12-01T10:00:00Z")])
    _load(env, "r2")  # created_at 12-01 (no updated_at) is newer than updated_at 11-29: replaces
    _write(landing / "c.jsonl", [_order("O1", amount=4, updated_at="2026-11-30T10:00:00Z")])
    _load(env, "r3")  # updated 11-30 is older than 12-01: ignored
    assert _orders(env)["amount"].tolist() == [3.0]


# -- item 8: bounds and exact money -----------------------------------------------------------


def test_out_of_range_values_are_rejected_with_a_reason(env: dict[str, object]) -> None:
    _write(
        env["landing"] / "a.jsonl",  # type: ignore[operator]
        [
            _order("items", items=1e20),
            _order("huge", amount=1e308),
            _order("tiny", amount=1e-320),
            _order("cents", amount=12.345),
            _order("ok", amount=0.1, items=3),
        ],
        extra_lines=('{"order_id": "big", "created_at": "2026-11-27T10:00:00Z", "amount": 1e400}',),
    )
    report = _load(env)
    # 1e308 is a number beyond MAX_AMOUNT; 1e400 does not even fit a float (inf): invalid.
    assert report.reject_reasons == {"invalid_items": 1, "amount_out_of_range": 1, "invalid_amount": 3}
    stored = env["warehouse"].read_sql("SELECT order_id, CAST(amount AS VARCHAR) AS a, items FROM orders")  # type: ignore[attr-defined]
    assert stored.to_dict("records") == [{"order_id": "ok", "a": "0.10", "items": 3}]


# -- items 9 and 10: spool keys and dead-letter identity --------------------------------------


def test_same_name_landed_twice_keeps_both_payloads_and_a_rerun_adds_no_letter(
    env: dict[str, object],
) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    raw: RawStore = env["raw"]  # type: ignore[assignment]
    wh: DuckDBWarehouse = env["warehouse"]  # type: ignore[assignment]
    pseudo, scrubber = _shield()
    _write(landing / "orders.jsonl", [_order("D1", amount=-1)])
    day1 = _load(env)
    _write(landing / "orders.jsonl", [_order("D2", amount=-2), _order("D3", amount=-3)])
    _load(env, "r2")

    letters = raw.read_dead_letters("ORDERS")
    assert len(letters) == 3 and len({letter.key for letter in letters}) == 3
    [first] = [letter for letter in letters if letter.record_key == "D1"]
    assert first.source_fingerprint == day1.files[0].fingerprint
    again = raw.dead_letter(first.key)
    assert again is not None and json.loads(again.payload)["order_id"] == "D1"

    report = load_dead_letters(raw, wh, scrubber=scrubber, pseudonymizer=pseudo, query_tag="t")
    assert report.new_rows == 3
    # Rename and re-land day 1's content (same fingerprint), rerun everything: no new rows.
    processed = landing / "processed" / "orders.jsonl"
    os.replace(processed, landing / "orders_again.jsonl")
    _load(env, "r3")
    report = load_dead_letters(raw, wh, scrubber=scrubber, pseudonymizer=pseudo, query_tag="t")
    assert report.new_rows == 0 and report.by_source == {"ORDERS": 3}


def test_crash_after_the_merge_before_the_move_adds_no_dead_letter_twice(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    raw: RawStore = env["raw"]  # type: ignore[assignment]
    wh: DuckDBWarehouse = env["warehouse"]  # type: ignore[assignment]
    pseudo, scrubber = _shield()
    for i in range(3):
        _write(landing / f"f{i}.jsonl", [_order(f"ok{i}"), _order(f"bad{i}", amount=-1)], extra_lines=("{x",))
    zone: LandingZone = env["zone"]  # type: ignore[assignment]
    calls = {"n": 0}
    original = zone.mark_processed

    def die_after_one(files, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed half-way through moving files")
        return original(files, **kwargs)

    zone.mark_processed = die_after_one  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        _load(env)
    load_dead_letters(raw, wh, scrubber=scrubber, pseudonymizer=pseudo, query_tag="t")
    zone.mark_processed = original  # type: ignore[method-assign]
    _load(env, "r2")
    report = load_dead_letters(raw, wh, scrubber=scrubber, pseudonymizer=pseudo, query_tag="t")
    assert report.by_source == {"ORDERS": 6}
    assert wh.read_sql(f"SELECT COUNT(DISTINCT letter_id) AS n FROM {DEAD_LETTERS_TABLE}")["n"].iloc[0] == 6
    assert sorted(_orders(env)["order_id"]) == ["ok0", "ok1", "ok2"]


# -- item 7: a fresh warehouse ----------------------------------------------------------------


def test_dead_letters_on_a_fresh_warehouse_is_an_empty_table(env: dict[str, object]) -> None:
    pseudo, scrubber = _shield()
    wh: DuckDBWarehouse = env["warehouse"]  # type: ignore[assignment]
    report = load_dead_letters(env["raw"], wh, scrubber=scrubber, pseudonymizer=pseudo, query_tag="t")  # type: ignore[arg-type]
    assert report.new_rows == 0 and report.by_source == {}
    assert wh.read_sql(f"SELECT COUNT(*) AS n FROM {DEAD_LETTERS_TABLE}")["n"].iloc[0] == 0


# -- replay bookkeeping -----------------------------------------------------------------------


def test_replayed_letters_leave_the_pending_list(env: dict[str, object]) -> None:
    _write(env["landing"] / "a.jsonl", [_order("R1", amount=-1), _order("R2", currency="usd")])  # type: ignore[operator]
    _load(env)
    raw: RawStore = env["raw"]  # type: ignore[assignment]
    wh: DuckDBWarehouse = env["warehouse"]  # type: ignore[assignment]
    assert replayed_letter_ids(wh) == set()
    pending = pending_letters(raw, wh, reason="invalid_currency")
    assert [letter.record_key for letter in pending] == ["R2"]
    record_replays(wh, [ReplayOutcome(pending[0].key, "ORDERS", "loaded")], query_tag="t", run_id="rp")
    record_replays(wh, [ReplayOutcome(pending[0].key, "ORDERS", "loaded")], query_tag="t", run_id="rp")
    assert replayed_letter_ids(wh) == {pending[0].key}
    assert [letter.record_key for letter in pending_letters(raw, wh)] == ["R1"]


# -- item 11: gzip ----------------------------------------------------------------------------


def test_gzip_files_are_listed_and_loaded_or_quarantined(env: dict[str, object]) -> None:
    landing: Path = env["landing"]  # type: ignore[assignment]
    lines = "\n".join(json.dumps(_order(f"G{i}")) for i in range(3)) + "\n"
    (landing / "orders.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    (landing / "orders.csv.gz").write_bytes(
        gzip.compress(b"order_id,created_at,amount\nC1,2026-11-27T10:00:00Z,1.25\n")
    )
    (landing / "broken.ndjson.gz").write_bytes(gzip.compress(lines.encode())[:20])
    zone: LandingZone = env["zone"]  # type: ignore[assignment]
    listed = {f.name: f.record_count for f in zone.pending_files()}
    # Counts are of decompressed lines; a truncated file's count is a guess, but it is listed.
    assert set(listed) == {"orders.jsonl.gz", "orders.csv.gz", "broken.ndjson.gz"}
    assert (listed["orders.jsonl.gz"], listed["orders.csv.gz"]) == (3, 1)
    report = _load(env)
    assert sorted(_orders(env)["order_id"]) == ["C1", "G0", "G1", "G2"]
    [broken] = [f for f in report.files if f.status == "quarantined"]
    assert broken.name == "broken.ndjson.gz" and "gzip" in (broken.quarantine_reason or "")
    assert zone.pending_files() == []
    assert _orders(env).set_index("order_id")["amount"]["C1"] == float(Decimal("1.25"))


def test_five_unreadable_files_count_as_rejected_records(env: dict[str, object]) -> None:
    # Item 11: five quarantined files of 1,000 lines each reported dead_letter_rate 0.0.
    landing: Path = env["landing"]  # type: ignore[assignment]
    for i in range(5):
        (landing / f"junk{i}.jsonl").write_text("\x00not json\n" * 1_000, encoding="utf-8")
    _write(landing / "good.jsonl", [_order("G")])
    report = _load(env)
    assert report.quarantined_files == 5 and report.quarantined_records == 5_000
    assert report.dead_letter_rate == pytest.approx(5_000 / 5_001)
    assert report.as_metadata()["dead_letter_rate"] == pytest.approx(round(5_000 / 5_001, 4))
    assert len(list((landing / "quarantine").glob("*.reason.txt"))) == 5
