"""The ``warehouse_cost`` asset and its two checks, on DuckDB and on Snowflake (fakesnow).

Loads go through the real ``Warehouse`` so the ledger is genuine; a day-long trickle, which a
test cannot wait for, is written straight into ``load_ledger`` with the shape the loader writes.
Each check is shown passing and failing for real: many tiny batches fail ``average_batch_size``,
a low limit or a day-long trickle fails ``daily_cost_under_limit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    DagsterInstance,
    ExecuteInProcessResult,
    FloatMetadataValue,
    IntMetadataValue,
    MarkdownMetadataValue,
    RunRequest,
    TextMetadataValue,
    build_schedule_context,
    materialize,
)

from ingest_platform.dagster_layer.cost import warehouse_cost, warehouse_cost_schedule
from ingest_platform.dagster_layer.resources import ThresholdsResource, WarehouseResource
from ingest_platform.warehouse.ledger import LEDGER_COLUMN_NAMES
from ingest_platform_tests.conftest import fakesnow_warehouse_resource

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # fakesnow's arrow-copy notice

NUMERIC_METADATA = {
    "credits": FloatMetadataValue,
    "cost_usd": FloatMetadataValue,
    "avg_batch_rows": FloatMetadataValue,
    "credit_price_usd": FloatMetadataValue,
    "statements": IntMetadataValue,
    "rows": IntMetadataValue,
    "loads": IntMetadataValue,
    "batches": IntMetadataValue,
}
XSMALL_MIN_CREDITS = 60 / 3600  # one resume of an XSMALL warehouse: 60 s at 1 credit/hour


# ---- helpers -------------------------------------------------------------------------------


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def run_cost(
    warehouse: WarehouseResource, day: str, thresholds: ThresholdsResource | None = None
) -> ExecuteInProcessResult:
    return materialize(
        [warehouse_cost],
        resources={"warehouse": warehouse, "thresholds": thresholds or ThresholdsResource()},
        partition_key=day,
        instance=DagsterInstance.ephemeral(),
    )


def checks(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = result.get_asset_materialization_events()
    return dict(event.materialization.metadata)


def value(entry: Any) -> Any:
    return entry.value


def load_orders(warehouse: WarehouseResource, *, loads: int, rows_per_load: int) -> None:
    """``loads`` separate MERGEs into ORDERS, each one batch of ``rows_per_load`` rows."""
    with warehouse.open() as wh:
        for i in range(loads):
            ids = [f"o{i}-{j}" for j in range(rows_per_load)]
            wh.merge(
                "ORDERS",
                pd.DataFrame({"order_id": ids, "amount": 1.0}),
                key_columns=["order_id"],
                query_tag="t",
            )


@pytest.fixture
def duckdb_warehouse(tmp_path: Path) -> WarehouseResource:
    return WarehouseResource(engine="duckdb", duckdb_path=str(tmp_path / "warehouse.duckdb"))


def write_trickle_ledger(warehouse: WarehouseResource, day: date, *, every_s: int) -> int:
    """Ledger rows for single-row loads every ``every_s`` seconds over a whole UTC day.

    That is the row-by-row pattern the cost model warns about: the gaps are shorter than the
    60 s auto-suspend, so the warehouse never suspends and the whole day is billed.
    """
    import duckdb

    load_orders(warehouse, loads=1, rows_per_load=1)  # creates load_ledger with the real schema
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    started = [start + timedelta(seconds=s) for s in range(0, 86_400, every_s)]
    frame = pd.DataFrame(
        {
            "table_name": "orders",
            "operation": "merge",
            "rows_loaded": 1,
            "rows_affected": 1,
            "batches": 1,
            "statements": 7,
            "bytes_loaded": 200,
            "seconds": 0.5,
            "warehouse": "duckdb:warehouse.duckdb",
            "query_tag": "trickle",
            "estimated_credits": 0.0,
            "estimated_cost_usd": 0.0,
            "engine": "duckdb",
            "started_at": pd.to_datetime(started, utc=True),
            "loaded_at": pd.to_datetime(started, utc=True) + pd.Timedelta(seconds=0.5),
            "run_id": "trickle",
        }
    )[list(LEDGER_COLUMN_NAMES)]
    with duckdb.connect(warehouse.duckdb_path) as conn:
        conn.register("trickle", frame)
        conn.execute("INSERT INTO load_ledger SELECT * FROM trickle").fetchall()
    return len(frame)


# ---- DuckDB: Snowflake-equivalent estimate from the ledger --------------------------------


def test_bulk_loads_pass_both_checks_and_report_numbers(duckdb_warehouse: WarehouseResource) -> None:
    load_orders(duckdb_warehouse, loads=1, rows_per_load=6_000)

    result = run_cost(duckdb_warehouse, today())

    meta = metadata(result)
    for key, kind in NUMERIC_METADATA.items():
        assert isinstance(meta[key], kind), key  # typed numbers: the UI plots them over time
    assert isinstance(meta["source"], TextMetadataValue) and value(meta["source"]) == "ledger_estimate"
    assert value(meta["warehouse_size"]) == "XSMALL"
    assert value(meta["engine"]) == "duckdb"
    assert value(meta["partial_day"]) is True
    assert (value(meta["rows"]), value(meta["loads"]), value(meta["batches"])) == (6_000, 1, 1)
    assert value(meta["avg_batch_rows"]) == 6_000.0
    assert value(meta["statements"]) > 0
    # DuckDB bills nothing: priced as one resume of the configured XSMALL warehouse
    credits = value(meta["credits"])
    assert XSMALL_MIN_CREDITS <= credits < 2 * XSMALL_MIN_CREDITS
    assert value(meta["cost_usd"]) == pytest.approx(credits * value(meta["credit_price_usd"]), abs=1e-4)
    assert "Snowflake-equivalent" in value(meta["note"])
    table = meta["loads_by_table"]
    assert isinstance(table, MarkdownMetadataValue)
    assert "| table | loads | rows | batches |" in value(table)
    assert "| orders | 1 | 6,000 | 1 |" in value(table)

    evaluations = checks(result)
    cost, batch = evaluations["daily_cost_under_limit"], evaluations["average_batch_size"]
    assert cost.passed and cost.severity == AssetCheckSeverity.ERROR
    assert value(cost.metadata["value"]) == value(meta["cost_usd"])
    assert value(cost.metadata["threshold"]) == 15.0
    assert batch.passed and batch.severity == AssetCheckSeverity.WARN
    assert (value(batch.metadata["value"]), value(batch.metadata["threshold"])) == (6_000.0, 5_000.0)
    assert all(
        isinstance(e.metadata[k], FloatMetadataValue) for e in (cost, batch) for k in ("value", "threshold")
    )
    assert {value(e.metadata["day"]) for e in evaluations.values()} == {today()}  # alerts name the day


def test_many_tiny_batches_fail_the_average_batch_size_check(duckdb_warehouse: WarehouseResource) -> None:
    load_orders(duckdb_warehouse, loads=25, rows_per_load=2)

    result = run_cost(duckdb_warehouse, today())

    batch = checks(result)["average_batch_size"]
    assert not batch.passed
    assert batch.severity == AssetCheckSeverity.WARN
    assert value(batch.metadata["value"]) == 2.0
    assert value(batch.metadata["threshold"]) == 5_000.0
    assert value(batch.metadata["batches"]) == 25
    assert result.success  # a WARN verdict on a report: the run itself succeeded
    meta = metadata(result)
    assert (value(meta["loads"]), value(meta["rows"])) == (25, 50)
    assert "| orders | 25 | 50 | 25 |" in value(meta["loads_by_table"])
    # 25 loads seconds apart share one warehouse session: still cheap, so the cost check passes
    assert checks(result)["daily_cost_under_limit"].passed


def test_a_low_cost_limit_fails_the_daily_cost_check(duckdb_warehouse: WarehouseResource) -> None:
    load_orders(duckdb_warehouse, loads=1, rows_per_load=10)

    result = run_cost(duckdb_warehouse, today(), ThresholdsResource(daily_cost_max_usd=0.01))

    cost = checks(result)["daily_cost_under_limit"]
    assert not cost.passed
    assert cost.severity == AssetCheckSeverity.ERROR
    assert value(cost.metadata["threshold"]) == 0.01
    assert value(cost.metadata["value"]) > 0.01
    assert value(cost.metadata["value"]) == value(metadata(result)["cost_usd"])


def test_a_day_long_trickle_fails_both_checks_at_the_default_thresholds(
    duckdb_warehouse: WarehouseResource,
) -> None:
    day = date(2026, 3, 2)
    loads = write_trickle_ledger(duckdb_warehouse, day, every_s=30)

    result = run_cost(duckdb_warehouse, day.isoformat())

    meta = metadata(result)
    assert value(meta["loads"]) == loads == 2_880
    assert value(meta["partial_day"]) is False
    # never suspends: 24 h of an XSMALL warehouse = 24 credits = $72 at $3/credit
    assert value(meta["credits"]) == pytest.approx(24.0, rel=0.01)
    assert value(meta["cost_usd"]) == pytest.approx(72.0, rel=0.01)
    evaluations = checks(result)
    assert not evaluations["daily_cost_under_limit"].passed
    assert value(evaluations["daily_cost_under_limit"].metadata["value"]) > 15.0
    assert not evaluations["average_batch_size"].passed
    assert value(evaluations["average_batch_size"].metadata["value"]) == 1.0
    # the real load made today does not leak into the trickle day, nor the trickle into today
    assert value(metadata(run_cost(duckdb_warehouse, today()))["loads"]) == 1


def test_a_day_without_loads_passes_with_zeros(duckdb_warehouse: WarehouseResource) -> None:
    result = run_cost(duckdb_warehouse, "2026-02-01")  # no ledger table at all yet

    meta = metadata(result)
    assert (value(meta["credits"]), value(meta["cost_usd"]), value(meta["loads"])) == (0.0, 0.0, 0)
    assert value(meta["loads_by_table"]) == "_No loads recorded for this day._"
    assert all(evaluation.passed for evaluation in checks(result).values())


def test_schedule_prices_yesterday_after_metering_latency() -> None:
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 3, 3, 4, 0, tzinfo=UTC))
    request = warehouse_cost_schedule(context)
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-03-02"
    assert request.run_key == "warehouse_cost:2026-03-02"


# ---- Snowflake (fakesnow): metering history, or the ledger estimate when it is unreadable ---


@pytest.fixture
def snowflake_warehouse() -> Iterator[WarehouseResource]:
    with fakesnow_warehouse_resource(warehouse_size="SMALL", credit_price_usd=2.0) as warehouse:
        yield warehouse


def test_snowflake_without_metering_access_uses_the_ledger_estimate(
    snowflake_warehouse: WarehouseResource,
) -> None:
    load_orders(snowflake_warehouse, loads=2, rows_per_load=3)

    result = run_cost(snowflake_warehouse, today())

    meta = metadata(result)
    assert value(meta["source"]) == "ledger_estimate"
    assert "WAREHOUSE_METERING_HISTORY unavailable" in value(meta["note"])
    assert (value(meta["engine"]), value(meta["warehouse_size"])) == ("snowflake", "SMALL")
    assert (value(meta["loads"]), value(meta["rows"])) == (2, 6)
    # SMALL = 2 credits/h, the two loads share one resume
    assert 2 * XSMALL_MIN_CREDITS <= value(meta["credits"]) < 4 * XSMALL_MIN_CREDITS
    assert value(meta["cost_usd"]) == pytest.approx(value(meta["credits"]) * 2.0, abs=1e-4)
    assert checks(result)["daily_cost_under_limit"].passed
    assert not checks(result)["average_batch_size"].passed  # 3 rows per batch


def test_snowflake_metered_credits_over_the_limit_fail_the_cost_check(
    snowflake_warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest_platform.warehouse.snowflake_warehouse import SnowflakeWarehouse

    load_orders(snowflake_warehouse, loads=1, rows_per_load=6_000)
    original = SnowflakeWarehouse.read_sql
    seen: list[Any] = []

    def metered(self: SnowflakeWarehouse, sql: str, params: Any = None) -> pd.DataFrame:
        # fakesnow has no ACCOUNT_USAGE: answer the metering query as Snowflake would
        if "WAREHOUSE_METERING_HISTORY" in sql:
            seen.append(params)
            return pd.DataFrame({"credits": [9.5], "hours": [12]})
        return original(self, sql, params)

    monkeypatch.setattr(SnowflakeWarehouse, "read_sql", metered)
    result = run_cost(snowflake_warehouse, today())

    assert seen and seen[0]["warehouse"] == "LOAD_WH"
    meta = metadata(result)
    assert value(meta["source"]) == "metering_history"
    assert (value(meta["credits"]), value(meta["cost_usd"])) == (9.5, 19.0)
    assert value(meta["rows"]) == 6_000  # volumes still come from the ledger
    cost = checks(result)["daily_cost_under_limit"]
    assert not cost.passed
    assert (value(cost.metadata["value"]), value(cost.metadata["threshold"])) == (19.0, 15.0)
    assert value(cost.metadata["source"]) == "metering_history"
    assert checks(result)["average_batch_size"].passed
