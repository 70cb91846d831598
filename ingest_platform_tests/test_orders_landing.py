"""Landing zone: listing, record counts and their cache, reading every format, bad files,
moves, and the buffer flush decision with its run key."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ingest_platform.orders.landing import (
    FlushDecision,
    LandingFile,
    LandingZone,
    RecordCountCache,
    decide_flush,
    run_key_for,
)
from ingest_platform.sandbox.orders import (
    CORRUPT_JSON_LINE,
    CORRUPT_JSON_ROWS,
    write_malformed_file,
    write_order_files,
)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _touch(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _order(i: int, **extra: object) -> dict[str, object]:
    return {"order_id": f"O{i}", "created_at": "2026-11-27T10:00:00Z", "amount": 10.0 + i, **extra}


@pytest.fixture
def zone(tmp_path: Path) -> LandingZone:
    # A private cache so counts from other tests never leak into hit/miss assertions.
    return LandingZone(str(tmp_path / "landing"), count_cache=RecordCountCache())


@pytest.fixture
def landing(zone: LandingZone) -> Path:
    path = Path(zone.root)
    path.mkdir(parents=True)
    return path


# -- listing and counts ----------------------------------------------------------------------


def test_pending_files_lists_order_files_oldest_first_and_skips_the_rest(
    zone: LandingZone, landing: Path
) -> None:
    newer = _jsonl(landing / "b.jsonl", [_order(1)])
    older = _jsonl(landing / "a_late.jsonl", [_order(2)])
    _touch(newer, T0)
    _touch(older, T0 - timedelta(minutes=5))
    for ignored in ("c.jsonl.tmp", "d.csv.part", ".hidden.jsonl", "_SUCCESS", "_tmp.parquet", "notes.txt"):
        (landing / ignored).write_text("x\n")
    (landing / "processed").mkdir()
    _jsonl(landing / "processed" / "old.jsonl", [_order(3)])

    files = zone.pending_files()

    assert [f.name for f in files] == ["a_late.jsonl", "b.jsonl"]
    assert all(f.mtime.tzinfo is not None and f.mtime.utcoffset() == timedelta(0) for f in files)
    assert files[1].mtime == T0
    assert files[0].size_bytes == older.stat().st_size
    assert files[0].format == "jsonl"


def test_pending_files_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    assert LandingZone(str(tmp_path / "nowhere")).pending_files() == []


def test_record_counts_are_cheap_per_format(zone: LandingZone, landing: Path) -> None:
    _jsonl(landing / "a.jsonl", [_order(i) for i in range(7)])
    (landing / "b.csv").write_text("order_id,amount\nA,1\nB,2\nC,3", encoding="utf-8")  # no final newline
    pq.write_table(pa.table({"order_id": ["x"] * 5}), landing / "c.parquet")
    (landing / "d.jsonl").write_bytes(b"")
    (landing / "e.parquet").write_bytes(b"not parquet at all")

    counts = {f.name: (f.format, f.record_count) for f in zone.pending_files()}

    assert counts == {
        "a.jsonl": ("jsonl", 7),
        "b.csv": ("csv", 3),  # header excluded
        "c.parquet": ("parquet", 5),  # from the footer
        "d.jsonl": ("jsonl", 0),
        "e.parquet": ("parquet", None),  # uncountable: read() will quarantine it
    }


def test_record_counts_are_cached_by_path_size_and_mtime(zone: LandingZone, landing: Path) -> None:
    path = _jsonl(landing / "a.jsonl", [_order(i) for i in range(3)])
    _jsonl(landing / "b.jsonl", [_order(9)])
    cache = zone.count_cache

    assert [f.record_count for f in zone.pending_files()] == [3, 1]
    assert (cache.misses, cache.hits) == (2, 0)
    # A sensor tick 30 s later: nothing is re-read.
    assert [f.record_count for f in zone.pending_files()] == [3, 1]
    assert (cache.misses, cache.hits) == (2, 2)
    # A new LandingZone (a resource rebuilt per tick) sharing the cache also hits.
    again = LandingZone(zone.uri, count_cache=cache)
    assert sum(f.record_count or 0 for f in again.pending_files()) == 4
    assert cache.misses == 2

    _jsonl(path, [_order(i) for i in range(5)])  # the file grew: new size and mtime
    _touch(path, T0)
    counts = {f.name: f.record_count for f in zone.pending_files()}
    assert counts == {"a.jsonl": 5, "b.jsonl": 1}
    assert cache.misses == 3


# -- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_read_each_format(tmp_path: Path, fmt: str) -> None:
    truth = write_order_files(tmp_path, n_files=2, rows_per_file=25, fmt=fmt, seed=5)
    zone = LandingZone(str(tmp_path))
    files = zone.pending_files()

    result = zone.read(files)

    assert [f.record_count for f in files] == [25, 25]
    assert result.bad_files == {} and result.rejects == []
    frame = result.frame
    assert len(frame) == 50
    assert set(frame["order_id"]) == truth.order_ids
    assert set(frame["_source_file"]) == {f.path for f in files}
    first = frame[frame["_source_file"] == files[0].path]
    expected_lines = list(range(2, 27)) if fmt == "csv" else list(range(1, 26))  # CSV: header is line 1
    assert first["_source_line"].tolist() == expected_lines


def test_csv_columns_stay_text(zone: LandingZone, landing: Path) -> None:
    # Type inference would turn the postcode into 2139 and the phone into an integer.
    (landing / "a.csv").write_text(
        "order_id,postcode,customer_phone,amount,note\n"
        '0042,02139,4915112345678,12.50,"multi\nline, with comma"\n'
        "0043,,,7,\n",
        encoding="utf-8",
    )
    frame = zone.read(zone.pending_files()).frame
    assert frame["order_id"].tolist() == ["0042", "0043"]
    assert frame["postcode"].tolist() == ["02139", None]
    assert frame["customer_phone"].tolist()[0] == "4915112345678"
    assert frame["note"].tolist() == ["multi\nline, with comma", None]


def test_corrupt_json_line_rejects_one_record_with_its_line_number(zone: LandingZone, landing: Path) -> None:
    path = write_malformed_file(landing, "corrupt_json")

    result = zone.read(zone.pending_files(), run_id="run-1")

    assert result.bad_files == {}
    assert len(result.frame) == CORRUPT_JSON_ROWS - 1
    expected_lines = [n for n in range(1, CORRUPT_JSON_ROWS + 1) if n != CORRUPT_JSON_LINE]
    assert result.frame["_source_line"].tolist() == expected_lines
    [reject] = result.rejects
    assert reject.reason == "corrupt_json"
    assert reject.record_key == f"{path.name}:{CORRUPT_JSON_LINE}"
    assert reject.run_id == "run-1"
    payload = json.loads(reject.payload)
    assert payload["_source_line"] == CORRUPT_JSON_LINE
    assert payload["_source_file"].endswith(path.name)
    assert payload["raw"] == path.read_text(encoding="utf-8").splitlines()[CORRUPT_JSON_LINE - 1]


def test_jsonl_type_changes_and_blank_lines_fall_back_without_losing_rows(
    zone: LandingZone, landing: Path
) -> None:
    # order_id is a number then a string: the vectorised reader refuses the file, the per-line
    # fallback keeps both rows; blank lines don't shift line numbers.
    (landing / "a.jsonl").write_text(
        json.dumps(_order(1) | {"order_id": 1}) + "\n\n" + json.dumps(_order(2)) + "\n   \n",
        encoding="utf-8",
    )
    (landing / "b.jsonl").write_text(json.dumps(_order(3)) + "\n\n" + json.dumps(_order(4)), encoding="utf-8")

    result = zone.read(zone.pending_files())

    assert result.rejects == [] and result.bad_files == {}
    assert result.frame["order_id"].astype(str).tolist() == ["1", "O2", "O3", "O4"]
    assert result.frame["_source_line"].tolist() == [1, 3, 1, 3]


def test_mostly_corrupt_jsonl_is_a_bad_file_not_a_flood_of_rejects(zone: LandingZone, landing: Path) -> None:
    (landing / "a.jsonl").write_text('{"order_id": "A"}\nnot json\n{broken\n', encoding="utf-8")
    result = zone.read(zone.pending_files())
    assert result.rejects == []
    [(path, reason)] = result.bad_files.items()
    assert path.endswith("a.jsonl")
    assert reason.startswith("unreadable: 2 of 3 lines")


def test_csv_row_with_wrong_field_count_is_rejected_with_its_line(zone: LandingZone, landing: Path) -> None:
    (landing / "a.csv").write_text(
        "order_id,amount,currency\nA,1,USD\nB,2\nC,3,EUR\nD,4,EUR,extra\nE,5,GBP\n", encoding="utf-8"
    )
    result = zone.read(zone.pending_files())
    assert result.frame["order_id"].tolist() == ["A", "C", "E"]
    assert result.frame["_source_line"].tolist() == [2, 4, 6]
    assert [(r.reason, r.record_key) for r in result.rejects] == [
        ("malformed_csv_row", "a.csv:3"),
        ("malformed_csv_row", "a.csv:5"),
    ]
    assert json.loads(result.rejects[0].payload)["raw"] == "B,2"


def test_unusable_files_are_reported_in_bad_files(zone: LandingZone, landing: Path) -> None:
    good = _jsonl(landing / "good.jsonl", [_order(1), _order(2)])
    empty = write_malformed_file(landing, "empty")
    wrong = write_malformed_file(landing, "wrong_schema")
    truncated = write_malformed_file(landing, "truncated")
    header_only = landing / "header_only.csv"
    header_only.write_text("order_id,amount\n", encoding="utf-8")
    blank = landing / "blank.jsonl"
    blank.write_text("\n  \n", encoding="utf-8")
    no_rows = landing / "no_rows.parquet"
    pq.write_table(pa.table({"order_id": pa.array([], pa.string())}), no_rows)
    wrong_parquet = landing / "wrong.parquet"
    pq.write_table(pa.table({"id": ["x"]}), wrong_parquet)

    result = zone.read([*zone.pending_files(), str(landing / "vanished.jsonl")])

    reasons = {Path(p).name: r.split(":")[0] for p, r in result.bad_files.items()}
    assert reasons == {
        empty.name: "empty",
        blank.name: "empty",
        header_only.name: "empty",
        no_rows.name: "empty",
        wrong.name: "wrong_schema",
        wrong_parquet.name: "wrong_schema",
        truncated.name: "unreadable",
        "vanished.jsonl": "missing",
    }
    assert "no order_id column" in result.bad_files[str(wrong)]
    assert set(result.frame["_source_file"]) == {str(good)}
    assert len(result.frame) == 2 and result.rejects == []


def test_read_of_nothing_is_an_empty_frame(zone: LandingZone) -> None:
    result = zone.read([])
    assert result.frame.empty
    assert {"order_id", "_source_file", "_source_line"} <= set(result.frame.columns)


# -- moves -----------------------------------------------------------------------------------


def test_mark_processed_is_idempotent_and_never_overwrites(zone: LandingZone, landing: Path) -> None:
    first = _jsonl(landing / "a.jsonl", [_order(1)])
    files = zone.pending_files()

    moved = zone.mark_processed(files)
    assert moved == {str(first): str(landing / "processed" / "a.jsonl")}
    assert zone.mark_processed(files) == {}  # repeat: nothing left to move
    assert zone.pending_files() == []

    # A new file with the same name lands later: both versions are kept.
    _jsonl(landing / "a.jsonl", [_order(2)])
    moved = zone.mark_processed(zone.pending_files())
    assert list(moved.values()) == [str(landing / "processed" / "a__1.jsonl")]
    assert json.loads((landing / "processed" / "a.jsonl").read_text())["order_id"] == "O1"
    assert json.loads((landing / "processed" / "a__1.jsonl").read_text())["order_id"] == "O2"


def test_quarantine_writes_a_reason_file_and_is_idempotent(zone: LandingZone, landing: Path) -> None:
    path = write_malformed_file(landing, "truncated")
    reason = zone.read(zone.pending_files()).bad_files[str(path)]

    target = zone.quarantine(str(path), reason)

    assert target == str(landing / "quarantine" / path.name)
    assert not path.exists() and Path(target).exists()
    note = (landing / "quarantine" / f"{path.name}.reason.txt").read_text(encoding="utf-8")
    assert f"reason: {reason}" in note and f"original_path: {path}" in note
    assert zone.quarantine(str(path), reason) is None  # repeat: no-op
    assert sorted(p.name for p in (landing / "quarantine").iterdir()) == [
        path.name,
        f"{path.name}.reason.txt",
    ]

    # Same name again: suffixed, with its own reason file; the first is untouched.
    write_malformed_file(landing, "truncated")
    second = zone.quarantine(zone.pending_files()[0], "unreadable: again")
    assert second == str(landing / "quarantine" / "orders_truncated__1.parquet")
    assert (landing / "quarantine" / "orders_truncated__1.parquet.reason.txt").exists()
    assert zone.pending_files() == []


def test_same_interface_over_an_injected_filesystem(tmp_path: Path) -> None:
    # Stands in for S3: a non-local filesystem whose paths are relative ("landing/a.jsonl").
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    (tmp_path / "landing").mkdir()
    _jsonl(tmp_path / "landing" / "a.jsonl", [_order(1), _order(2)])
    zone = LandingZone("landing", filesystem=fs, count_cache=RecordCountCache())

    files = zone.pending_files()
    assert [(f.path, f.record_count) for f in files] == [("landing/a.jsonl", 2)]
    assert zone.read(files).frame["_source_file"].unique().tolist() == ["landing/a.jsonl"]
    assert zone.mark_processed(files) == {"landing/a.jsonl": "landing/processed/a.jsonl"}
    assert (tmp_path / "landing" / "processed" / "a.jsonl").exists()


def test_s3_uris_resolve_to_the_same_layout() -> None:
    # Construction only (no request is sent): the layout is the same prefix arithmetic.
    zone = LandingZone("s3://bucket/landing/?region=eu-west-1")
    assert zone.fs.type_name == "s3"
    assert (zone.root, zone.processed_dir, zone.quarantine_dir) == (
        "bucket/landing",
        "bucket/landing/processed",
        "bucket/landing/quarantine",
    )


def test_bom_and_crlf_files(zone: LandingZone, landing: Path) -> None:
    (landing / "a.csv").write_bytes(b"\xef\xbb\xbforder_id,amount\r\nA,1\r\nB,2\r\n")
    (landing / "b.jsonl").write_bytes(b'{"order_id": "C", "amount": 3}\r\n{"order_id": "D", "amount": 4}\r\n')
    result = zone.read(zone.pending_files())
    assert result.rejects == [] and result.bad_files == {}
    assert result.frame["order_id"].tolist() == ["A", "B", "C", "D"]
    assert result.frame["_source_line"].tolist() == [2, 3, 1, 2]


def test_relative_local_paths_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    _jsonl(tmp_path / "here" / "a.jsonl", [_order(1)])
    zone = LandingZone("here")
    assert zone.root == str(tmp_path / "here")
    assert [f.name for f in zone.pending_files()] == ["a.jsonl"]


# -- buffering -------------------------------------------------------------------------------


def _file(name: str, *, records: int | None, age_s: float, size: int = 100) -> LandingFile:
    return LandingFile(f"/landing/{name}", size, T0 - timedelta(seconds=age_s), "jsonl", records)


def test_decide_flush_on_count() -> None:
    pending = [_file("b", records=6_000, age_s=5), _file("a", records=4_000, age_s=10)]
    decision = decide_flush(pending, now=T0, buffer_count_records=10_000, buffer_flush_seconds=60)
    assert decision.should_flush and decision.reason == "count"
    assert decision.records == 10_000
    assert [f.path for f in decision.files] == ["/landing/a", "/landing/b"]  # mtime order
    assert decision.oldest_age_s == pytest.approx(10)


def test_decide_flush_on_age() -> None:
    pending = [_file("a", records=10, age_s=61), _file("b", records=None, age_s=1)]
    decision = decide_flush(pending, now=T0, buffer_count_records=10_000, buffer_flush_seconds=60)
    assert decision.should_flush and decision.reason == "age"
    assert decision.records == 10  # unknown counts count as 0
    assert len(decision.files) == 2


def test_decide_flush_waits_below_both_thresholds_and_on_nothing() -> None:
    waiting = decide_flush([_file("a", records=9_999, age_s=59)], now=T0)
    assert not waiting.should_flush and waiting.reason is None
    assert waiting.oldest_age_s == pytest.approx(59)
    empty = decide_flush([], now=T0)
    assert empty == FlushDecision(False, None, [], 0, 0.0)
    assert empty.run_key is None
    # A naive "now" is taken as UTC.
    assert decide_flush([_file("a", records=1, age_s=61)], now=T0.replace(tzinfo=None)).reason == "age"


def test_run_key_is_stable_and_changes_with_the_batch() -> None:
    a, b = _file("a", records=1, age_s=10), _file("b", records=1, age_s=5)
    key = run_key_for([a, b])
    assert key == run_key_for([b, a])  # order-insensitive
    assert key == decide_flush([b, a], now=T0, buffer_flush_seconds=1).run_key
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    assert run_key_for([a]) != key  # a file fewer
    assert run_key_for([a, b, _file("c", records=1, age_s=1)]) != key  # a file more
    assert run_key_for([a, _file("b", records=1, age_s=5, size=101)]) != key  # b grew
    assert run_key_for([a, _file("b", records=1, age_s=4)]) != key  # b touched
    # The record count is not part of the identity: a recount doesn't relaunch.
    assert run_key_for([a, _file("b", records=None, age_s=5)]) == key


def test_flush_decision_from_a_real_landing_zone(tmp_path: Path) -> None:
    truth = write_order_files(tmp_path, n_files=3, rows_per_file=40, fmt="jsonl")
    zone = LandingZone(str(tmp_path), count_cache=RecordCountCache())
    now = datetime.now(UTC)

    by_count = decide_flush(
        zone.pending_files(), now=now, buffer_count_records=100, buffer_flush_seconds=3600
    )
    assert (by_count.should_flush, by_count.reason, by_count.records) == (True, "count", 120)
    assert [Path(f.path) for f in by_count.files] == sorted(truth.files, key=lambda p: p.stat().st_mtime_ns)
    not_yet = decide_flush(
        zone.pending_files(), now=now, buffer_count_records=1000, buffer_flush_seconds=3600
    )
    assert not not_yet.should_flush
    assert not_yet.run_key == by_count.run_key  # same files, same key


# -- issue #11: fingerprints, ids, long names, gzip, hostile input --------------------------


def test_a_file_replaced_after_the_read_is_not_moved(zone: LandingZone, landing: Path) -> None:
    # Item 2: the run loaded the old content, then moved the NEW file to processed/ unread.
    path = _jsonl(landing / "latest.jsonl", [_order(1)])
    files = zone.pending_files()
    read = zone.read(files)
    tmp = _jsonl(landing / "latest.jsonl.tmp", [_order(2), _order(3)])
    os.replace(tmp, path)
    assert zone.mark_processed(files, expected=read.snapshots) == {}
    assert [f.path for f in zone.pending_files()] == [str(path)]
    again = zone.read(zone.pending_files())
    assert again.frame["order_id"].tolist() == ["O2", "O3"]
    assert zone.mark_processed(zone.pending_files(), expected=again.snapshots) == {
        str(path): str(landing / "processed" / "latest.jsonl")
    }


def test_a_file_that_changes_while_it_is_read_is_left_pending(zone: LandingZone, landing: Path) -> None:
    path = _jsonl(landing / "a.jsonl", [_order(1)])
    original = zone._read_bytes

    def read_then_grow(p: str) -> bytes:
        data = original(p)
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(_order(2)) + "\n")
        return data

    zone._read_bytes = read_then_grow  # type: ignore[method-assign]
    result = zone.read(zone.pending_files())
    assert result.changed == [str(path)] and len(result.frame) == 0 and result.bad_files == {}


def test_json_ids_never_go_through_float(zone: LandingZone, landing: Path) -> None:
    # Item 4: 9007199254740993 and …992 both became 9007199254740992.0, and 5 became "5.0".
    from ingest_platform.orders.validation import validate_orders

    (landing / "a.jsonl").write_text(
        '{"order_id": 9007199254740993, "created_at": "2026-11-27T10:00:00Z", "amount": 1}\n'
        '{"order_id": 9007199254740992, "created_at": "2026-11-27T10:00:00Z", "amount": 1}\n'
        '{"created_at": "2026-11-27T10:00:00Z", "amount": 1}\n'
        '{"order_id": 5, "created_at": "2026-11-27T10:00:00Z", "amount": 1}\n',
        encoding="utf-8",
    )
    result = validate_orders(zone.read(zone.pending_files()).frame, source="o")
    assert result.valid["order_id"].tolist() == ["9007199254740993", "9007199254740992", "5"]
    assert result.counts == {"missing_order_id": 1} and result.superseded == 0


@pytest.mark.parametrize("length", [245, 250, 253, 255])
def test_names_near_the_filesystem_limit_never_raise_errno_36(
    zone: LandingZone, landing: Path, length: int
) -> None:
    # Item 5: `.reason.txt` or the `__1` suffix pushed the name past 255 bytes (Errno 36).
    name = "x" * (length - len(".jsonl")) + ".jsonl"
    targets = []
    for i in range(2):
        _jsonl(landing / name, [_order(i)])
        targets.append(zone.quarantine(str(landing / name), "unreadable: test"))
        _jsonl(landing / name, [_order(i)])
        targets.extend(zone.mark_processed([str(landing / name)]).values())
    assert len(set(targets)) == 4 and all(len(t.rsplit("/", 1)[-1]) <= 255 for t in targets)
    assert all(name in Path(t + ".reason.txt").read_text() for t in targets[0::2])
    assert zone.pending_files() == []


def test_gzip_order_files_are_listed(zone: LandingZone, landing: Path) -> None:
    # Item 11: orders.jsonl.gz and .csv.gz were never listed and stayed pending forever.
    import gzip

    (landing / "a.jsonl.gz").write_bytes(gzip.compress((json.dumps(_order(1)) + "\n").encode()))
    (landing / "b.csv.gz").write_bytes(gzip.compress(b"order_id,amount\nA,1\nB,2\n"))
    (landing / "c.tar.gz").write_bytes(b"not an order file")
    files = {f.name: f.record_count for f in zone.pending_files()}
    assert files == {"a.jsonl.gz": 1, "b.csv.gz": 2}
    read = zone.read(zone.pending_files())
    assert sorted(read.frame["order_id"]) == ["A", "B", "O1"] and read.bad_files == {}


# Fragments a hostile producer sends; lines are built from them by hypothesis.
_HOSTILE = [
    b'{"order_id": "A", "created_at": "2026-11-27T10:00:00Z", "amount": 1}',
    b'{"order_id": 9007199254740993, "created_at": 1795773600, "amount": 1e400}',
    b'{"order_id": 1' + b"0" * 5000 + b', "amount": 1}',
    b'{"order_id": 5.5, "items": 1e20, "amount": 1e-320}',
    b'{"order_id": "H", "created_at": "2026-11-27T10:00:00Z", "amount": 1' + b"0" * 400 + b', "items": 1'
    + b"0" * 30 + b"}",
    b"[" * 3000 + b"]" * 3000,
    b'{"a": ' * 2000 + b"1" + b"}" * 2000,
    b"\xff\xfe\x00garbage\x00",
    b"\xef\xbb\xbf{\"order_id\": \"B\"}",
    b'{"order_id": "\xe2\x80\xa8sep\xc2\x85"}',
    b"not json at all",
    b"",
    b"   ",
    b'{"order_id": null}',
    b"true",
]


def test_hostile_jsonl_never_raises_and_every_line_is_accounted_for(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from ingest_platform.orders.validation import validate_orders

    scale = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1
    counter = iter(range(10**9))

    @settings(
        max_examples=40 * scale, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        lines=st.lists(st.sampled_from(_HOSTILE), min_size=1, max_size=12),
        big=st.booleans(),
        suffix=st.sampled_from([".jsonl", ".csv", ".jsonl.gz"]),
    )
    def check(lines: list[bytes], big: bool, suffix: str) -> None:
        import gzip

        root = tmp_path / f"z{next(counter)}"
        root.mkdir()
        body = list(lines)
        if big:
            body.append(b'{"order_id": "' + b"x" * (2 << 20) + b'"}')  # a 2 MB line
        data = b"\n".join(body)
        if suffix == ".csv":
            data = b"order_id,amount\n" + data
        path = root / f"f{suffix}"
        path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
        zone = LandingZone(str(root), count_cache=RecordCountCache())
        result = zone.read(zone.pending_files())
        validated = validate_orders(result.frame, source="o")
        accounted = (
            len(validated.valid) + validated.superseded + len(validated.rejects) + len(result.rejects)
        )
        if result.bad_files:
            assert set(result.bad_files) == {str(path)}
            assert result.bad_file_records[str(path)] >= 0 and accounted == 0
        else:
            [snapshot] = result.snapshots.values()
            assert snapshot.lines == accounted
            # every non-blank line is a record, a rejected line, or (CSV) a parsed row
            if suffix != ".csv":
                assert accounted == sum(1 for line in data.split(b"\n") if line.strip())

    check()


def test_parquet_decimal_and_unsigned_ids_are_exact_text(zone: LandingZone, landing: Path) -> None:
    from decimal import Decimal

    from ingest_platform.orders.validation import validate_orders

    created = ["2026-11-27T10:00:00Z"] * 3
    decimals = pa.array([Decimal("5.00"), Decimal("6.50"), None], pa.decimal128(10, 2))
    table = pa.table({"order_id": decimals, "created_at": created, "amount": [1.0, 2.0, 3.0]})
    pq.write_table(table, landing / "a.parquet")
    unsigned = pa.array([2**64 - 1, 7], pa.uint64())
    table = pa.table({"order_id": unsigned, "created_at": created[:2], "amount": [1.0, 2.0]})
    pq.write_table(table, landing / "b.parquet")
    result = validate_orders(zone.read(zone.pending_files()).frame, source="o")
    assert sorted(result.valid["order_id"]) == ["18446744073709551615", "5", "7"]
    assert result.counts == {"missing_order_id": 1, "invalid_order_id": 1}


def test_a_crash_while_writing_the_reason_never_leaves_a_quarantined_file_without_it(
    zone: LandingZone, landing: Path
) -> None:
    # The reason is written before the rename: killed while writing it, the file is still pending.
    (landing / "bad.jsonl").write_text("garbage\n", encoding="utf-8")
    real_fs = zone.fs

    class DiesWritingTheReason:
        def __getattr__(self, name: str) -> object:
            return getattr(real_fs, name)

        def open_output_stream(self, path: str, *args: object, **kwargs: object) -> object:
            raise KeyboardInterrupt("killed while writing the reason")

    zone.fs = DiesWritingTheReason()  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        zone.quarantine(str(landing / "bad.jsonl"), "unreadable: garbage")
    zone.fs = real_fs
    assert [f.name for f in zone.pending_files()] == ["bad.jsonl"]  # still pending, retried
    target = zone.quarantine(str(landing / "bad.jsonl"), "unreadable: garbage")
    assert target is not None
    quarantined = [p for p in (landing / "quarantine").iterdir() if not p.name.endswith(".txt")]
    assert all(Path(f"{p}.reason.txt").exists() for p in quarantined) and len(quarantined) == 1


def test_a_csv_line_that_is_not_utf8_is_one_reject_not_a_quarantined_file(
    zone: LandingZone, landing: Path
) -> None:
    (landing / "a.csv").write_bytes(b"order_id,amount\nA,1\nB\xff\xfe,2\nC,3\n\x00\xc3,4\nD,5\n")
    read = zone.read(zone.pending_files())
    assert read.bad_files == {}
    assert read.frame["order_id"].tolist() == ["A", "C", "D"]
    assert read.frame["_source_line"].tolist() == [2, 4, 6]
    assert [(r.source_line, r.reason) for r in read.rejects] == [
        (3, "malformed_csv_row"),
        (5, "malformed_csv_row"),
    ]
    assert "invalid UTF-8" in read.rejects[0].payload and "B" in json.loads(read.rejects[0].payload)["raw"]
    [snapshot] = read.snapshots.values()
    assert snapshot.lines == 5
