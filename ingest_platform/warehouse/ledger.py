"""The load ledger: one row per warehouse load, in the warehouse itself.

Every ``replace_partition`` / ``merge`` / ``append_dedup`` call appends a row to ``load_ledger``
in the same session that ran the load. The ledger is what the cost model reads
(:func:`ingest_platform.warehouse.cost.daily_cost_from_ledger`) and what asset checks use to
see how many statements and batches a load took.

Column names avoid ``rows``/``bytes`` because ``ROWS`` is reserved in Snowflake: a user writing
an unquoted ``SELECT rows FROM load_ledger`` would otherwise get a syntax error.

This module knows only the ledger's shape; the engines create and write it
(``Warehouse._write_ledger``). It imports neither Dagster nor any database driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ingest_platform.warehouse.base import LoadResult

LEDGER_TABLE = "load_ledger"

# (column, kind) in table order; kinds are ``ColumnKind`` values so each engine maps them to
# its own DDL type. Kept as plain strings so this module does not import base (base imports us).
LEDGER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("table_name", "string"),
    ("operation", "string"),
    ("rows_loaded", "integer"),
    ("rows_affected", "integer"),
    ("batches", "integer"),
    ("statements", "integer"),
    ("bytes_loaded", "integer"),
    ("seconds", "float"),
    ("warehouse", "string"),
    ("query_tag", "string"),
    ("estimated_credits", "float"),
    ("estimated_cost_usd", "float"),
    ("engine", "string"),
    ("started_at", "timestamp_tz"),
    ("loaded_at", "timestamp_tz"),
    ("run_id", "string"),
)
LEDGER_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in LEDGER_COLUMNS)


def ledger_record(result: LoadResult) -> dict[str, Any]:
    """The ledger row for one load, keyed by ledger column name (lower-case)."""
    return {
        "table_name": result.table,
        "operation": result.operation,
        "rows_loaded": result.rows,
        "rows_affected": result.rows_affected,
        "batches": result.batches,
        "statements": result.statements,
        "bytes_loaded": result.bytes,
        "seconds": result.seconds,
        "warehouse": result.warehouse,
        "query_tag": result.query_tag,
        "estimated_credits": result.estimated_credits,
        "estimated_cost_usd": result.estimated_cost_usd,
        "engine": result.engine,
        # ISO strings bind the same way on both engines (DuckDB and Snowflake both cast
        # '...+00:00' to a UTC timestamp); datetime objects go through driver-specific paths.
        "started_at": result.started_at.isoformat(),
        "loaded_at": result.loaded_at.isoformat(),
        "run_id": result.run_id,
    }


def empty_ledger_frame() -> pd.DataFrame:
    """A zero-row ledger with the right columns, for when no load has happened yet."""
    frame = pd.DataFrame({name: pd.Series(dtype=_empty_dtype(kind)) for name, kind in LEDGER_COLUMNS})
    return frame


def normalise_ledger_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Lower-case names, UTC timestamps and plain numeric dtypes whichever engine produced it.

    Snowflake hands back NUMBER columns as int8/int16/… or Decimal depending on the values;
    the cost model and checks should not care.
    """
    frame = frame.rename(columns=str.lower)
    for name, kind in LEDGER_COLUMNS:
        if name not in frame.columns:
            frame[name] = pd.Series(dtype=_empty_dtype(kind), index=frame.index)
        elif kind == "timestamp_tz":
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif kind == "integer":
            frame[name] = pd.to_numeric(frame[name]).astype("Int64")
        elif kind == "float":
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
    return frame[list(LEDGER_COLUMN_NAMES)]


def _empty_dtype(kind: str) -> str:
    return {
        "integer": "Int64",
        "float": "float64",
        "timestamp_tz": "datetime64[us, UTC]",
    }.get(kind, "object")


# -- the ORDERS per-file reconciliation ledger -------------------------------------------------
# One row per landing file per load attempt, written by ``orders.load.record_file_ledger``
# (via ``append_dedup`` keyed by run_id, path, fingerprint) and read by the
# ``orders_reconciliation`` check: rows_read = loaded + superseded + dead_lettered +
# quarantined_records for every row.
FILE_LEDGER_TABLE = "orders_file_ledger"
FILE_LEDGER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"),
    ("path", "string"),
    ("fingerprint", "string"),
    ("size_bytes", "integer"),
    ("mtime_ns", "integer"),
    ("status", "string"),
    ("rows_read", "integer"),
    ("loaded", "integer"),
    ("superseded", "integer"),
    ("dead_lettered", "integer"),
    ("quarantined_records", "integer"),
    ("quarantine_reason", "string"),
    ("recorded_at", "timestamp_tz"),
)
FILE_LEDGER_KEY: tuple[str, ...] = ("run_id", "path", "fingerprint")
