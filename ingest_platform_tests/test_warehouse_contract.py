"""One contract suite for every ``Warehouse``: DuckDB (temp file) and Snowflake (fakesnow patch).

The same assertions run on both engines: idempotent partition replacement, MERGE upserts,
null-safe append de-duplication, UTC timestamps, list columns, schema evolution, crash safety
of the staged load, the load ledger and statement/batch counts on a large frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ingest_platform.warehouse import DuckDBWarehouse, SnowflakeWarehouse, Warehouse
from ingest_platform.warehouse.base import STAGE_PREFIX
from ingest_platform.warehouse.snowflake_warehouse import FAKESNOW_EXTRA_TARGETS, FAKESNOW_NOP_REGEXES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # fakesnow's arrow-copy notice


@pytest.fixture(params=["duckdb", "snowflake"])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        warehouse: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        try:
            yield warehouse
        finally:
            warehouse.close()
        return
    import fakesnow  # the test extra: missing means failing, not skipping
    import snowflake.connector

    with fakesnow.patch(extra_targets=list(FAKESNOW_EXTRA_TARGETS), nop_regexes=list(FAKESNOW_NOP_REGEXES)):
        warehouse = SnowflakeWarehouse(
            # resolved at call time, so it is fakesnow's connect inside the patch
            lambda: snowflake.connector.connect(database="TEST_DB", schema="PUBLIC"),
            warehouse_name="LOAD_WH",
        )
        yield warehouse


def posts(day: str, ids: list[str], *, likes: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "post_id": ids,
            "day": day,
            "like_count": [likes] * len(ids),
            "created_at": pd.Timestamp(f"{day}T12:00:00", tz="UTC"),
        }
    )


def sorted_frame(wh: Warehouse, sql: str) -> pd.DataFrame:
    return wh.read_sql(sql).reset_index(drop=True)


# ---- replace_partition ---------------------------------------------------------------------


def test_replace_partition_twice_never_duplicates_and_spares_other_partitions(wh: Warehouse) -> None:
    wh.replace_partition(
        "hashed_posts",
        posts("2024-05-01", ["a", "b", "c"]),
        partition_column="day",
        partition_value="2024-05-01",
        query_tag="t",
    )
    wh.replace_partition(
        "hashed_posts",
        posts("2024-05-02", ["d", "e"]),
        partition_column="day",
        partition_value="2024-05-02",
        query_tag="t",
    )
    for _ in range(2):
        wh.replace_partition(
            "hashed_posts",
            posts("2024-05-01", ["a", "b"], likes=9),
            partition_column="day",
            partition_value="2024-05-01",
            query_tag="t",
        )

    got = sorted_frame(wh, "SELECT post_id, day, like_count FROM hashed_posts ORDER BY post_id")
    assert got["post_id"].tolist() == ["a", "b", "d", "e"]
    assert got.set_index("post_id")["like_count"].to_dict() == {"a": 9, "b": 9, "d": 1, "e": 1}
    assert wh.table_row_counts()["hashed_posts"] == 4


def test_replace_partition_fills_missing_partition_column_and_rejects_foreign_rows(wh: Warehouse) -> None:
    frame = posts("2024-05-01", ["a"]).drop(columns="day")
    wh.replace_partition(
        "hashed_posts", frame, partition_column="day", partition_value="2024-05-01", query_tag="t"
    )
    assert wh.read_sql("SELECT day FROM hashed_posts")["day"].tolist() == ["2024-05-01"]

    mixed = pd.concat([posts("2024-05-01", ["a"]), posts("2024-05-02", ["b"])])
    with pytest.raises(ValueError, match="do not belong"):
        wh.replace_partition(
            "hashed_posts", mixed, partition_column="day", partition_value="2024-05-01", query_tag="t"
        )


def test_empty_frame_empties_the_partition(wh: Warehouse) -> None:
    wh.replace_partition(
        "hashed_posts",
        posts("2024-05-01", ["a", "b"]),
        partition_column="day",
        partition_value="2024-05-01",
        query_tag="t",
    )
    result = wh.replace_partition(
        "hashed_posts",
        posts("2024-05-01", []),
        partition_column="day",
        partition_value="2024-05-01",
        query_tag="t",
    )
    assert result.rows == 0
    assert wh.table_row_counts()["hashed_posts"] == 0


# ---- merge / append_dedup ------------------------------------------------------------------


def test_merge_updates_inserts_and_last_duplicate_wins(wh: Warehouse) -> None:
    first = pd.DataFrame({"order_id": ["o1", "o2"], "amount": [10.0, 20.0], "currency": ["USD", "USD"]})
    wh.merge("ORDERS", first, key_columns=["order_id"], query_tag="orders")

    second = pd.DataFrame(
        {"order_id": ["o2", "o3", "o3"], "amount": [21.0, 30.0, 31.0], "currency": ["EUR", "USD", "GBP"]}
    )
    result = wh.merge("ORDERS", second, key_columns=["order_id"], query_tag="orders")
    assert result.rows == 2  # o3 de-duplicated before staging

    got = sorted_frame(wh, "SELECT order_id, amount, currency FROM orders ORDER BY order_id")
    assert got.to_dict("records") == [
        {"order_id": "o1", "amount": 10.0, "currency": "USD"},
        {"order_id": "o2", "amount": 21.0, "currency": "EUR"},
        {"order_id": "o3", "amount": 31.0, "currency": "GBP"},
    ]
    # merging the same frame again changes nothing
    wh.merge("ORDERS", second, key_columns=["order_id"], query_tag="orders")
    assert wh.table_row_counts()["ORDERS"] == 3


def test_merge_keeps_columns_the_frame_does_not_carry(wh: Warehouse) -> None:
    wh.merge(
        "ORDERS",
        pd.DataFrame({"order_id": ["o1"], "amount": [1.0], "note": ["keep me"]}),
        key_columns=["order_id"],
        query_tag="t",
    )
    wh.merge(
        "ORDERS", pd.DataFrame({"order_id": ["o1"], "amount": [2.0]}), key_columns=["order_id"], query_tag="t"
    )
    assert wh.read_sql("SELECT amount, note FROM orders").to_dict("records") == [
        {"amount": 2.0, "note": "keep me"}
    ]


def test_merge_rejects_null_keys(wh: Warehouse) -> None:
    with pytest.raises(ValueError, match="must not be null"):
        wh.merge(
            "ORDERS",
            pd.DataFrame({"order_id": ["o1", None], "amount": [1.0, 2.0]}),
            key_columns=["order_id"],
            query_tag="t",
        )


def test_append_dedup_is_null_safe_and_idempotent(wh: Warehouse) -> None:
    keys = ["source", "payload_sha256", "partition_key"]
    letters = pd.DataFrame(
        {
            "source": ["orders", "orders", "tiktok"],
            "payload_sha256": ["h1", "h1", "h2"],
            "partition_key": [None, None, "2024-05-01"],
            "reason": ["bad amount", "bad amount again", "blocked"],
        }
    )
    first = wh.append_dedup("dead_letters", letters, key_columns=keys, query_tag="dlq")
    assert (first.rows, first.rows_affected) == (2, 2)
    again = wh.append_dedup("dead_letters", letters, key_columns=keys, query_tag="dlq")
    assert again.rows_affected == 0

    more = pd.DataFrame(
        {"source": ["orders"], "payload_sha256": ["h3"], "partition_key": [None], "reason": ["x"]}
    )
    assert wh.append_dedup("dead_letters", more, key_columns=keys, query_tag="dlq").rows_affected == 1
    got = sorted_frame(wh, "SELECT payload_sha256, reason FROM dead_letters ORDER BY payload_sha256")
    assert got.to_dict("records") == [
        {"payload_sha256": "h1", "reason": "bad amount"},  # first occurrence wins
        {"payload_sha256": "h2", "reason": "blocked"},
        {"payload_sha256": "h3", "reason": "x"},
    ]


# ---- types ---------------------------------------------------------------------------------


def test_tz_aware_timestamps_round_trip_as_utc(wh: Warehouse) -> None:
    # mixed offsets (an object column of aware datetimes) and a non-UTC tz-aware dtype
    created = [
        datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
    ]
    shipped = pd.Series(pd.to_datetime(["2024-05-03 09:00", "2024-05-04 09:00"])).dt.tz_localize(
        "Europe/Berlin"
    )
    frame = pd.DataFrame({"order_id": ["o1", "o2"], "created_at": created, "shipped_at": shipped})
    wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="t")

    got = wh.read_sql("SELECT order_id, created_at, shipped_at FROM orders ORDER BY order_id")
    assert str(got["created_at"].dt.tz) == str(got["shipped_at"].dt.tz) == "UTC"
    assert got["created_at"].tolist() == [
        pd.Timestamp("2024-05-01T08:00:00", tz="UTC"),
        pd.Timestamp("2024-05-02T04:30:00", tz="UTC"),
    ]
    assert got["shipped_at"].tolist() == [
        pd.Timestamp("2024-05-03T07:00:00", tz="UTC"),
        pd.Timestamp("2024-05-04T07:00:00", tz="UTC"),
    ]
    # and filtering by a UTC instant works on the stored values
    hit = wh.read_sql("SELECT order_id FROM orders WHERE created_at >= ?", ["2024-05-02T00:00:00+00:00"])
    assert hit["order_id"].tolist() == ["o2"]


def _floats(value: object) -> list[float]:
    """Embeddings come back as FLOAT[] (DuckDB) or JSON text (Snowflake): compare as floats."""
    items = json.loads(value) if isinstance(value, str) else list(value)  # type: ignore[arg-type]
    return [round(float(v), 5) for v in items]


def test_list_dict_and_embedding_columns_round_trip(wh: Warehouse) -> None:
    frame = pd.DataFrame(
        {
            "post_id": ["a", "b", "c"],
            "hashtags": [["fyp", "café"], [], None],
            "stats": [{"plays": 3}, None, {"plays": 1, "likes": 2}],
            "embedding": [np.array([0.25, -1.5], dtype=np.float32), [0.5, 0.125], None],
        }
    )
    wh.merge("enriched_posts", frame, key_columns=["post_id"], query_tag="t")
    got = wh.read_sql("SELECT * FROM enriched_posts ORDER BY post_id")

    assert [json.loads(v) if v is not None else None for v in got["hashtags"]] == [["fyp", "café"], [], None]
    assert [json.loads(v) if v is not None else None for v in got["stats"]] == [
        {"plays": 3},
        None,
        {"likes": 2, "plays": 1},
    ]
    assert _floats(got["embedding"][0]) == [0.25, -1.5]
    assert _floats(got["embedding"][1]) == [0.5, 0.125]
    assert got["embedding"].isna().tolist()[2]


def test_schema_evolution_adds_columns(wh: Warehouse) -> None:
    v1 = pd.DataFrame({"order_id": ["o1"], "amount": [1.0]})
    wh.merge("ORDERS", v1, key_columns=["order_id"], query_tag="t")
    v2 = pd.DataFrame({"order_id": ["o2"], "amount": [2.0], "items": [3], "Channel": ["web"]})
    wh.merge("ORDERS", v2, key_columns=["order_id"], query_tag="t")
    wh.merge(
        "ORDERS", pd.DataFrame({"order_id": ["o3"], "amount": [3.0]}), key_columns=["order_id"], query_tag="t"
    )  # older shape still loads

    got = wh.read_sql("SELECT order_id, amount, items, channel FROM orders ORDER BY order_id")
    assert list(got.columns) == ["order_id", "amount", "items", "channel"]
    assert got["channel"].tolist() == [None, "web", None]
    assert got["items"].fillna(-1).astype(int).tolist() == [-1, 3, -1]


def test_names_are_case_insensitive(wh: Warehouse) -> None:
    wh.merge("ORDERS", pd.DataFrame({"order_id": ["o1"]}), key_columns=["order_id"], query_tag="t")
    wh.merge("orders", pd.DataFrame({"ORDER_ID": ["o2"]}), key_columns=["Order_Id"], query_tag="t")
    counts = wh.table_row_counts()
    assert counts["ORDERS"] == counts["orders"] == 2
    assert "orders" in wh.list_tables()
    assert wh.read_sql("SELECT COUNT(*) AS n FROM Orders")["n"].tolist() == [2]


def test_read_sql_placeholders_work_on_both_engines(wh: Warehouse) -> None:
    wh.merge(
        "ORDERS",
        pd.DataFrame({"order_id": ["o1", "x2"], "note": ["50% off", "none"]}),
        key_columns=["order_id"],
        query_tag="t",
    )
    named = wh.read_sql("SELECT order_id FROM orders WHERE note LIKE '%off' AND order_id = :id", {"id": "o1"})
    positional = wh.read_sql("SELECT order_id FROM orders WHERE order_id LIKE ? ORDER BY 1", ["%"])
    assert named["order_id"].tolist() == ["o1"]
    assert positional["order_id"].tolist() == ["o1", "x2"]


def test_bad_identifiers_are_rejected(wh: Warehouse) -> None:
    with pytest.raises(ValueError, match="identifier"):
        wh.merge("orders; DROP TABLE x", pd.DataFrame({"a": [1]}), key_columns=["a"], query_tag="t")
    with pytest.raises(ValueError, match="identifier"):
        wh.merge("orders", pd.DataFrame({"a b": [1]}), key_columns=["a b"], query_tag="t")


# ---- crash safety --------------------------------------------------------------------------


def _no_stages_left(wh: Warehouse) -> bool:
    return not any(t.startswith(STAGE_PREFIX) for t in wh.list_tables())


def test_crash_between_delete_and_insert_leaves_target_unchanged(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh.replace_partition(
        "hashed_posts",
        posts("2024-05-01", ["a", "b", "c"]),
        partition_column="day",
        partition_value="2024-05-01",
        query_tag="t",
    )
    before = sorted_frame(wh, "SELECT * FROM hashed_posts ORDER BY post_id")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed after DELETE, before INSERT")

    # the DELETE has already run inside the transaction when this fires
    monkeypatch.setattr(type(wh), "_insert_from_stage", boom)
    with pytest.raises(RuntimeError, match="killed"):
        wh.replace_partition(
            "hashed_posts",
            posts("2024-05-01", ["x", "y"], likes=5),
            partition_column="day",
            partition_value="2024-05-01",
            query_tag="t",
        )
    pd.testing.assert_frame_equal(sorted_frame(wh, "SELECT * FROM hashed_posts ORDER BY post_id"), before)
    assert _no_stages_left(wh)

    monkeypatch.undo()
    for _ in range(2):
        wh.replace_partition(
            "hashed_posts",
            posts("2024-05-01", ["x", "y"], likes=5),
            partition_column="day",
            partition_value="2024-05-01",
            query_tag="t",
        )
    assert sorted_frame(wh, "SELECT post_id FROM hashed_posts ORDER BY post_id")["post_id"].tolist() == [
        "x",
        "y",
    ]


def test_crash_during_stage_load_leaves_target_unchanged(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = type(wh)._bulk_stage
    wh.merge(
        "ORDERS", pd.DataFrame({"order_id": ["o1"], "amount": [1.0]}), key_columns=["order_id"], query_tag="t"
    )

    def half_then_die(self: Warehouse, session: Any, stage: str, prepared: Any) -> tuple[int, int]:
        original(self, session, stage, prepared)  # the stage is full…
        raise ConnectionError("network dropped mid-load")  # …and then the process dies

    monkeypatch.setattr(type(wh), "_bulk_stage", half_then_die)
    frame = pd.DataFrame({"order_id": ["o1", "o2"], "amount": [9.0, 2.0], "extra": ["new", "col"]})
    with pytest.raises(ConnectionError):
        wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="t")
    with pytest.raises(ConnectionError):
        wh.merge("brand_new", frame, key_columns=["order_id"], query_tag="t")
    assert wh.read_sql("SELECT * FROM orders").to_dict("records") == [{"order_id": "o1", "amount": 1.0}]
    assert "brand_new" not in wh.list_tables()
    assert _no_stages_left(wh)

    monkeypatch.undo()
    wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="t")
    wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="t")
    got = sorted_frame(wh, "SELECT order_id, amount FROM orders ORDER BY order_id")
    assert got.to_dict("records") == [{"order_id": "o1", "amount": 9.0}, {"order_id": "o2", "amount": 2.0}]


def test_failed_merge_statement_leaves_target_unchanged(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh.merge(
        "ORDERS", pd.DataFrame({"order_id": ["o1"], "amount": [1.0]}), key_columns=["order_id"], query_tag="t"
    )

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("MERGE failed")

    monkeypatch.setattr(type(wh), "_merge_from_stage", boom)
    with pytest.raises(RuntimeError):
        wh.merge(
            "ORDERS",
            pd.DataFrame({"order_id": ["o1", "o2"], "amount": [5.0, 6.0]}),
            key_columns=["order_id"],
            query_tag="t",
        )
    assert wh.read_sql("SELECT order_id, amount FROM orders").to_dict("records") == [
        {"order_id": "o1", "amount": 1.0}
    ]


# DuckDB only: its merge is an UPDATE then an INSERT (Snowflake's is one MERGE statement).
@pytest.mark.parametrize("wh", ["duckdb"], indirect=True)
def test_duckdb_merge_is_atomic_between_update_and_insert(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest_platform.warehouse.duckdb_warehouse import DuckDBSession

    wh.merge(
        "ORDERS", pd.DataFrame({"order_id": ["o1"], "amount": [1.0]}), key_columns=["order_id"], query_tag="t"
    )
    original = DuckDBSession.execute

    def fail_insert(self: DuckDBSession, sql: str, params: Any = None) -> list[tuple]:
        if sql.startswith('INSERT INTO "orders"'):  # the UPDATE of o1 has already run
            raise RuntimeError("killed between UPDATE and INSERT")
        return original(self, sql, params)

    monkeypatch.setattr(DuckDBSession, "execute", fail_insert)
    with pytest.raises(RuntimeError, match="killed"):
        wh.merge(
            "ORDERS",
            pd.DataFrame({"order_id": ["o1", "o2"], "amount": [5.0, 6.0]}),
            key_columns=["order_id"],
            query_tag="t",
        )
    monkeypatch.undo()
    assert wh.read_sql("SELECT order_id, amount FROM orders").to_dict("records") == [
        {"order_id": "o1", "amount": 1.0}
    ]


# ---- ledger and batching -------------------------------------------------------------------


def test_every_load_writes_a_ledger_row(wh: Warehouse) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    wh.chunk_size = 2
    results = [
        wh.replace_partition(
            "hashed_posts",
            posts("2024-05-01", list("abcde")),
            partition_column="day",
            partition_value="2024-05-01",
            query_tag="posts",
            run_id="run-1",
        ),
        wh.merge(
            "ORDERS",
            pd.DataFrame({"order_id": ["o1", "o2"]}),
            key_columns=["order_id"],
            query_tag="orders",
            run_id="run-2",
        ),
        wh.append_dedup(
            "dead_letters",
            pd.DataFrame({"source": ["s"], "payload_sha256": ["h"]}),
            key_columns=["source", "payload_sha256"],
            query_tag="dlq",
        ),
    ]
    assert [r.batches for r in results] == [3, 1, 1]
    metadata = results[0].as_metadata()
    assert (metadata["rows_loaded"], metadata["batches"], metadata["engine"]) == (5, 3, wh.engine)
    assert all(r.statements >= r.batches for r in results)

    rows = wh.ledger_rows(since)
    assert len(rows) == 3
    assert rows["table_name"].tolist() == ["hashed_posts", "orders", "dead_letters"]
    assert rows["operation"].tolist() == ["replace_partition", "merge", "append_dedup"]
    assert rows["rows_loaded"].tolist() == [r.rows for r in results] == [5, 2, 1]
    assert rows["batches"].tolist() == [3, 1, 1]
    assert rows["statements"].tolist() == [r.statements for r in results]
    assert rows["query_tag"].tolist() == ["posts", "orders", "dlq"]
    assert rows["run_id"].tolist()[:2] == ["run-1", "run-2"]
    assert rows["engine"].unique().tolist() == [wh.engine]
    assert (rows["loaded_at"] >= rows["started_at"]).all()
    assert str(rows["loaded_at"].dt.tz) == "UTC"
    assert wh.ledger_rows(datetime.now(UTC) + timedelta(hours=1)).empty
    # only the warehouse writes the ledger
    with pytest.raises(ValueError, match="written by the warehouse"):
        wh.merge("load_ledger", pd.DataFrame({"a": [1]}), key_columns=["a"], query_tag="t")


def test_large_frame_loads_in_a_handful_of_statements(wh: Warehouse) -> None:
    n = 250_000
    frame = pd.DataFrame(
        {
            "order_id": np.char.add("o", np.arange(n).astype(str)),
            "amount": np.arange(n, dtype=np.float64) / 100,
            "created_at": pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
            "currency": "USD",
        }
    )
    result = wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="bulk")
    assert result.rows == n
    assert result.batches == math.ceil(n / wh.chunk_size) == 3
    assert result.statements <= 12, result
    assert result.rows_per_statement >= 20_000
    assert wh.table_row_counts()["orders"] == n


def test_arrow_backed_frames_load_like_numpy_ones(wh: Warehouse) -> None:
    import pyarrow as pa

    table = pa.table(
        {
            "order_id": pa.array(["o1", "o2"]),
            "created_at": pa.array([0, 3_600_000_000], type=pa.timestamp("us", tz="Europe/Berlin")),
            "items": pa.array([1, None], type=pa.int64()),
            "amount": pa.array([1.5, 2.5]),
            "tags": pa.array([["a"], []], type=pa.list_(pa.string())),
            "embedding": pa.array([[0.5, 1.0], None], type=pa.list_(pa.float32())),
        }
    )
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="arrow")
    got = wh.read_sql("SELECT * FROM orders ORDER BY order_id")
    assert got["created_at"].tolist() == [
        pd.Timestamp("1970-01-01T00:00:00", tz="UTC"),
        pd.Timestamp("1970-01-01T01:00:00", tz="UTC"),
    ]
    assert got["items"].tolist()[0] == 1
    assert pd.isna(got["items"].tolist()[1])
    assert [json.loads(v) for v in got["tags"]] == [["a"], []]
    assert _floats(got["embedding"][0]) == [0.5, 1.0]


def test_single_row_and_all_null_array_columns(wh: Warehouse) -> None:
    # one equal-length embedding must not turn into a 2-D array; later frames may carry only
    # nulls or empty lists in an array column the table already has
    frames = [
        pd.DataFrame({"post_id": ["a"], "embedding": [[0.5, 0.25]], "tags": [["x", "y"]]}),
        pd.DataFrame({"post_id": ["b"], "embedding": [None], "tags": [None]}),
        pd.DataFrame({"post_id": ["c"], "embedding": [[]], "tags": [[]]}),
    ]
    for frame in frames:
        wh.merge("enriched_posts", frame, key_columns=["post_id"], query_tag="t")
    got = wh.read_sql("SELECT * FROM enriched_posts ORDER BY post_id")
    assert _floats(got["embedding"][0]) == [0.5, 0.25]
    assert got["embedding"].isna().tolist()[1]
    assert _floats(got["embedding"][2]) == []
    assert [None if v is None else json.loads(v) for v in got["tags"]] == [["x", "y"], None, []]


def test_object_columns_are_typed_by_content(wh: Warehouse) -> None:
    frame = pd.DataFrame(
        {
            "order_id": ["o1", "o2"],
            "items": pd.Series([3, None], dtype=object),  # ints with a gap → integer column
            "ref": pd.Series([12, "A-7"], dtype=object),  # mixed → text
            "birth_date": [date(1990, 1, 2), None],  # dates → DATE
            "flag": pd.Series([True, None], dtype=object),
        }
    )
    wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="t")
    got = wh.read_sql("SELECT * FROM orders ORDER BY order_id")
    assert got["items"].tolist()[0] == 3
    assert pd.isna(got["items"].tolist()[1])
    assert got["ref"].tolist() == ["12", "A-7"]
    assert pd.Timestamp(got["birth_date"][0]).date() == date(1990, 1, 2)
    assert bool(got["flag"].tolist()[0])
    assert pd.isna(got["flag"].tolist()[1])
    sums = wh.read_sql("SELECT SUM(items) AS total FROM orders")
    assert int(sums["total"][0]) == 3


# ---- issue #11: version-ordered MERGE and exact money --------------------------------------


def _versioned(ids: list[str], amounts: list[str], versions: list[str]) -> pd.DataFrame:
    from decimal import Decimal

    import pyarrow as pa

    money = pa.array([Decimal(a) for a in amounts], type=pa.decimal128(18, 2))
    return pd.DataFrame(
        {
            "order_id": ids,
            "amount": pd.Series(pd.arrays.ArrowExtensionArray(money)),
            "version_at": pd.to_datetime(versions, utc=True),
        }
    )


def test_merge_never_replaces_a_newer_version_with_an_older_one(wh: Warehouse) -> None:
    # Item 6: a later batch carrying an OLDER version of o1 must not overwrite it; a newer or
    # equal version (o2: newer, o3: tie → the later load wins) does replace.
    first = _versioned(["o1", "o2", "o3"], ["10.00", "20.00", "30.00"], ["2026-01-05"] * 3)
    wh.merge("ORDERS", first, key_columns=["order_id"], query_tag="t", version_column="version_at")
    versions = ["2026-01-01", "2026-01-09", "2026-01-05"]
    later = _versioned(["o1", "o2", "o3"], ["11.00", "21.00", "31.00"], versions)
    wh.merge("ORDERS", later, key_columns=["order_id"], query_tag="t", version_column="version_at")

    got = sorted_frame(wh, "SELECT order_id, amount FROM orders ORDER BY order_id")
    assert [str(a) for a in got["amount"].map(lambda v: f"{float(v):.2f}")] == ["10.00", "21.00", "31.00"]


def test_merge_inside_one_frame_keeps_the_greatest_version(wh: Warehouse) -> None:
    versions = ["2026-01-03", "2026-01-01", "2026-01-02"]
    frame = _versioned(["o1", "o1", "o1"], ["3.00", "1.00", "2.00"], versions)
    wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="t", version_column="version_at")
    got = sorted_frame(wh, "SELECT amount FROM orders")
    assert [f"{float(v):.2f}" for v in got["amount"]] == ["3.00"]


def test_money_is_an_exact_decimal_on_both_engines(wh: Warehouse) -> None:
    # Item 8: amounts are DECIMAL(18,2) / NUMBER(18,2), not floats, and keep every cent.
    frame = _versioned(["a", "b", "c"], ["0.10", "0.20", "999999999999.99"], ["2026-01-01"] * 3)
    wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="t", version_column="version_at")
    columns = wh.read_sql(
        "SELECT lower(column_name) AS c, numeric_precision AS p, numeric_scale AS s"
        " FROM information_schema.columns WHERE lower(table_name) = 'orders'"
    ).set_index("c")
    assert (int(columns.loc["amount", "p"]), int(columns.loc["amount", "s"])) == (18, 2)
    text = sorted_frame(wh, "SELECT CAST(amount AS VARCHAR) AS s FROM orders ORDER BY order_id")
    assert [str(v) for v in text["s"]] == ["0.10", "0.20", "999999999999.99"]


def test_orders_load_and_dead_letters_behave_the_same_on_both_engines(wh: Warehouse, tmp_path: Path) -> None:
    # The library path behind ORDERS / dead_letters on each engine: exact ids and money, the
    # version rule, the file ledger, and dead letters keyed by (source, letter_id) from a
    # table created empty on a fresh warehouse.
    from ingest_platform.orders.dead_letters import load_dead_letters, replayed_letter_ids
    from ingest_platform.orders.landing import LandingZone, RecordCountCache
    from ingest_platform.orders.load import load_order_batch, reconciliation_problems
    from ingest_platform.privacy.text_scrubber import TextScrubber
    from ingest_platform.privacy.tokens import Pseudonymizer
    from ingest_platform.raw_store import RawStore

    pseudo = Pseudonymizer(b"contract-test-key-0123456789abcd!", "c1")
    scrubber = TextScrubber(pseudo)
    raw = RawStore(str(tmp_path / "raw"))
    assert load_dead_letters(raw, wh, scrubber=scrubber, pseudonymizer=pseudo, query_tag="t").new_rows == 0
    assert replayed_letter_ids(wh) == set()

    landing = tmp_path / "landing"
    landing.mkdir()
    zone = LandingZone(str(landing), count_cache=RecordCountCache())
    created = "2026-11-27T10:00:00Z"
    rows = [
        {"order_id": 9007199254740993, "created_at": created, "amount": 0.1},
        {"order_id": 9007199254740992, "created_at": created, "amount": 0.2},
        {"order_id": "late", "created_at": "2026-11-28T10:00:00Z", "amount": 5},
        {"order_id": "bad", "created_at": created, "amount": -1},
    ]
    (landing / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    first = load_order_batch(
        zone, None, apply_privacy=lambda f: f, warehouse=wh, raw_store=raw, run_id="r1", query_tag="t"
    )
    older = [{"order_id": "late", "created_at": created, "amount": 1}]
    (landing / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in older), encoding="utf-8")
    load_order_batch(
        zone, None, apply_privacy=lambda f: f, warehouse=wh, raw_store=raw, run_id="r2", query_tag="t"
    )

    got = sorted_frame(wh, "SELECT order_id, CAST(amount AS VARCHAR) AS a FROM orders ORDER BY order_id")
    assert got.to_dict("records") == [
        {"order_id": "9007199254740992", "a": "0.20"},
        {"order_id": "9007199254740993", "a": "0.10"},
        {"order_id": "late", "a": "5.00"},
    ]
    assert first.reconciles and reconciliation_problems(wh, "r1") == []
    for _ in range(2):
        report = load_dead_letters(raw, wh, scrubber=scrubber, pseudonymizer=pseudo, query_tag="t")
    assert report.by_source == {"ORDERS": 1} and report.new_rows == 0


def test_duckdb_fails_at_once_on_an_io_error_whose_path_contains_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "blocked.duckdb" is a directory: an IO error, not a lock conflict, so no retry loop.
    import duckdb

    from ingest_platform.warehouse import duckdb_warehouse

    path = tmp_path / "clock" / "blocked.duckdb"
    path.mkdir(parents=True)

    def no_waiting(seconds: float) -> None:
        raise AssertionError(f"retried a non-lock error (sleep {seconds})")

    monkeypatch.setattr(duckdb_warehouse.time, "sleep", no_waiting)
    wh = DuckDBWarehouse(path, lock_timeout_s=30)
    with pytest.raises(duckdb.IOException, match="Is a directory"):
        wh.list_tables()


def test_duckdb_waits_its_turn_on_a_real_lock_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from ingest_platform.warehouse import duckdb_warehouse

    path = tmp_path / "wh.duckdb"
    script = (
        f"import duckdb, sys\nc = duckdb.connect({str(path)!r})\nprint('held', flush=True)\nsys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waits: list[float] = []
        real_sleep = duckdb_warehouse.time.sleep

        def release_on_first_wait(seconds: float) -> None:
            # time.sleep is the module's: subprocess polling calls it too, so only the first
            # call (the warehouse's back-off) releases the lock; later calls really sleep.
            if not waits:
                waits.append(seconds)
                assert holder.stdin is not None
                holder.stdin.close()  # the other process lets go of the file
                holder.wait(timeout=30)
            else:
                real_sleep(seconds)

        monkeypatch.setattr(duckdb_warehouse.time, "sleep", release_on_first_wait)
        assert DuckDBWarehouse(path, lock_timeout_s=60).list_tables() == []
        assert waits == [0.05]  # it waited (a lock conflict), then got the file
    finally:
        holder.kill()
        holder.wait()
