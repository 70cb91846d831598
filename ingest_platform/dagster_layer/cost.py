"""Warehouse cost (the seed's cost monitor): what a UTC day of loading cost, and whether that is OK.

``warehouse_cost`` is one partition per UTC day. On Snowflake it reads the bill
(``WAREHOUSE_METERING_HISTORY`` of the loading warehouse, through ``Warehouse.daily_cost``) and
falls back to a ledger estimate while metering is unreadable or not in yet (up to 3 h late).
On DuckDB nothing is billed, so the same ``load_ledger`` is priced with the Snowflake cost model
(REFERENCE §6) at the configured size and price: local runs show what the same loading pattern
would cost in production. ``source`` in the metadata says which figure it is.

Two checks sit beside it:

* ``daily_cost_under_limit`` (ERROR): the day's dollars against ``daily_cost_max_usd``;
* ``average_batch_size`` (WARN): rows per load batch against ``avg_batch_min_records``. Small
  batches are the leading indicator of the expensive pattern: a trickle of tiny statements keeps
  the warehouse from ever suspending, long before the daily bill says so.

Both are non-blocking: nothing is downstream of a cost report, and failing the run would make
a correct measurement look like a broken one. Alerting on them is a sensor over check evaluations
(REFERENCE §8: OSS has no built-in alert on check failure).

A schedule runs yesterday's partition at 04:00 UTC, after metering's 3 h latency has passed.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from ingest_platform.dagster_layer.common import daily_partitions
from ingest_platform.dagster_layer.resources import ThresholdsResource, WarehouseResource

WAREHOUSE_COST_KEY = AssetKey("warehouse_cost")

# Columns of the per-table markdown table, in order: (header, ledger column or derived name).
_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("table", "table_name"),
    ("loads", "loads"),
    ("rows", "rows_loaded"),
    ("batches", "batches"),
    ("statements", "statements"),
    ("avg rows/batch", "avg_batch_rows"),
    ("load s", "seconds"),
)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day ``[start, end)``: partitions are UTC days, like the cost model."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def day_ledger(ledger: pd.DataFrame, day: date) -> pd.DataFrame:
    """The ledger rows of loads that *started* on ``day`` (the rule ``daily_cost_from_ledger`` uses)."""
    if ledger.empty:
        return ledger
    start, end = day_bounds(day)
    started = pd.to_datetime(ledger["started_at"], utc=True)
    return ledger[(started >= start) & (started < end)]


def loads_by_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per table: loads, rows, batches, statements, rows per batch, seconds (busiest first)."""
    if ledger.empty:
        return pd.DataFrame(columns=[column for _, column in _TABLE_COLUMNS])
    numbers = ledger.assign(
        **{
            column: pd.to_numeric(ledger[column]).fillna(0)
            for column in ("rows_loaded", "batches", "statements", "seconds")
        }
    )
    grouped = numbers.groupby("table_name", sort=False).agg(
        loads=("table_name", "size"),
        rows_loaded=("rows_loaded", "sum"),
        batches=("batches", "sum"),
        statements=("statements", "sum"),
        seconds=("seconds", "sum"),
    )
    grouped["avg_batch_rows"] = (
        grouped["rows_loaded"] / grouped["batches"].where(grouped["batches"] > 0)
    ).fillna(0.0)
    grouped = grouped.reset_index().sort_values(["loads", "table_name"], ascending=[False, True])
    return grouped[[column for _, column in _TABLE_COLUMNS]].reset_index(drop=True)


def loads_markdown(per_table: pd.DataFrame) -> str:
    """The per-table summary as a markdown table (Dagster renders it on the materialization)."""
    if per_table.empty:
        return "_No loads recorded for this day._"
    header = "| " + " | ".join(name for name, _ in _TABLE_COLUMNS) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(_TABLE_COLUMNS) - 1)) + "|"
    lines = [header, rule]
    for row in per_table.itertuples(index=False):
        values = row._asdict()
        cells = [
            str(values["table_name"]),
            f"{int(values['loads']):,}",
            f"{int(values['rows_loaded']):,}",
            f"{int(values['batches']):,}",
            f"{int(values['statements']):,}",
            f"{float(values['avg_batch_rows']):,.1f}",
            f"{float(values['seconds']):,.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@asset(
    key=WAREHOUSE_COST_KEY,
    group_name="warehouse",
    partitions_def=daily_partitions,
    # On DuckDB a reader takes the same file lock as a loader: queue behind loads, don't wait on them.
    pool="warehouse",
    kinds={"python", "duckdb", "snowflake"},
    tags={"ingest_platform/kind": "warehouse_cost"},
    # The checks are not partitioned (``AssetCheckSpec(partitions_def=...)`` is a preview API in
    # Dagster 1.13): each verdict follows the latest materialization and names its day.
    check_specs=[
        AssetCheckSpec(
            "daily_cost_under_limit",
            asset=WAREHOUSE_COST_KEY,
            description="The day's warehouse cost in USD is at most thresholds.daily_cost_max_usd.",
        ),
        AssetCheckSpec(
            "average_batch_size",
            asset=WAREHOUSE_COST_KEY,
            description=(
                "Rows per load batch are at least thresholds.avg_batch_min_records: small batches keep "
                "the warehouse awake (row-by-row loading is what makes Snowflake expensive)."
            ),
        ),
    ],
)
def warehouse_cost(
    context: AssetExecutionContext, warehouse: WarehouseResource, thresholds: ThresholdsResource
) -> MaterializeResult:
    """Credits, dollars, statements and batch sizes of one UTC day of warehouse loading."""
    from ingest_platform.warehouse.cost import daily_cost_from_ledger

    day = date.fromisoformat(context.partition_key)
    start, end = day_bounds(day)
    with warehouse.open() as wh:
        engine = wh.engine
        report = wh.daily_cost(day)
        ledger = day_ledger(wh.ledger_rows(start, end), day)

    if engine != "snowflake":
        # DuckDB bills nothing (its daily_cost reports 0 credits). Price the same ledger as if it
        # had run on the configured Snowflake warehouse, so the checks mean something locally.
        size, price, suspend_s = (
            warehouse.warehouse_size,
            warehouse.credit_price_usd,
            warehouse.auto_suspend_s,
        )
        note = (
            f"{engine} bills nothing: Snowflake-equivalent estimate for a {size} warehouse"
            f" at ${price}/credit, auto-suspend {suspend_s}s"
        )
        report = daily_cost_from_ledger(ledger, day, price, size, suspend_s).model_copy(update={"note": note})

    per_table = loads_by_table(ledger)
    batches = int(per_table["batches"].sum()) if len(per_table) else 0
    partial_day = datetime.now(UTC) < end
    if report.note:
        context.log.info(f"warehouse_cost {day}: {report.note}")

    cost_limit = float(thresholds.daily_cost_max_usd)
    batch_min = float(thresholds.avg_batch_min_records)
    cost_ok = report.cost_usd <= cost_limit
    # A day without loaded rows has no batch size to judge (an idle day is the cheapest kind).
    batch_ok = report.rows == 0 or report.avg_batch_rows >= batch_min
    metadata: dict[str, Any] = {
        "credits": MetadataValue.float(round(report.credits, 6)),
        "cost_usd": MetadataValue.float(round(report.cost_usd, 4)),
        "statements": MetadataValue.int(report.statements),
        "rows": MetadataValue.int(report.rows),
        "loads": MetadataValue.int(report.loads),
        "batches": MetadataValue.int(batches),
        "avg_batch_rows": MetadataValue.float(round(report.avg_batch_rows, 1)),
        "source": MetadataValue.text(report.source),
        "credit_price_usd": MetadataValue.float(float(warehouse.credit_price_usd)),
        "warehouse_size": MetadataValue.text(warehouse.warehouse_size),
        "auto_suspend_s": MetadataValue.int(warehouse.auto_suspend_s),
        "engine": MetadataValue.text(engine),
        "partial_day": MetadataValue.bool(partial_day),
        "loads_by_table": MetadataValue.md(loads_markdown(per_table)),
    }
    if report.note:
        metadata["note"] = MetadataValue.text(report.note)

    return MaterializeResult(
        metadata=metadata,
        check_results=[
            AssetCheckResult(
                check_name="daily_cost_under_limit",
                passed=cost_ok,
                severity=AssetCheckSeverity.ERROR,
                description=(
                    f"${report.cost_usd:.2f} ({report.credits:.3f} credits, {report.source}) on {day}; "
                    f"limit ${cost_limit:.2f}"
                ),
                metadata={
                    "value": MetadataValue.float(round(report.cost_usd, 4)),
                    "threshold": MetadataValue.float(cost_limit),
                    "day": MetadataValue.text(day.isoformat()),
                    "credits": MetadataValue.float(round(report.credits, 6)),
                    "source": MetadataValue.text(report.source),
                },
            ),
            AssetCheckResult(
                check_name="average_batch_size",
                passed=batch_ok,
                severity=AssetCheckSeverity.WARN,
                description=(
                    f"{report.avg_batch_rows:,.1f} rows per batch over {batches} batch(es) in "
                    f"{report.loads} load(s) on {day}; minimum {batch_min:,.0f}"
                ),
                metadata={
                    "value": MetadataValue.float(round(report.avg_batch_rows, 1)),
                    "threshold": MetadataValue.float(batch_min),
                    "day": MetadataValue.text(day.isoformat()),
                    "batches": MetadataValue.int(batches),
                    "loads": MetadataValue.int(report.loads),
                },
            ),
        ],
    )


warehouse_cost_job = define_asset_job(
    "warehouse_cost_job",
    selection=[WAREHOUSE_COST_KEY],
    partitions_def=daily_partitions,
    description="Price one UTC day of warehouse loading and check it against the thresholds.",
)


@schedule(
    job=warehouse_cost_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def warehouse_cost_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """Yesterday's cost at 04:00 UTC: metering history lags up to 3 h, so the day is complete by then.

    (``build_schedule_from_partitioned_job`` would pick *today's* partition: ``daily_partitions``
    has ``end_offset=1``.)
    """
    now = context.scheduled_execution_time or datetime.now(UTC)
    day = (now.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"warehouse_cost:{day}", partition_key=day)
