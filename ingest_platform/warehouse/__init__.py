"""Warehouse library: one ``Warehouse`` interface, DuckDB and Snowflake implementations.

Staged, idempotent loads (``replace_partition``, ``merge``, ``append_dedup``), the
``load_ledger`` every load writes to, and the Snowflake cost model. Pure: no Dagster imports,
and importing this package imports neither ``duckdb`` nor ``snowflake`` (both are loaded
lazily the first time a warehouse connects).
"""

from ingest_platform.warehouse.base import ColumnKind, LoadResult, TableCounts, Warehouse
from ingest_platform.warehouse.cost import (
    CREDITS_PER_HOUR,
    CostReport,
    TrickleCost,
    billed_seconds,
    daily_cost_from_ledger,
    estimate_credits,
    row_by_row_cost,
)
from ingest_platform.warehouse.duckdb_warehouse import DuckDBWarehouse
from ingest_platform.warehouse.ledger import LEDGER_TABLE
from ingest_platform.warehouse.snowflake_warehouse import (
    FAKESNOW_EXTRA_TARGETS,
    FAKESNOW_NOP_REGEXES,
    SnowflakeWarehouse,
)

__all__ = [
    "CREDITS_PER_HOUR",
    "FAKESNOW_EXTRA_TARGETS",
    "FAKESNOW_NOP_REGEXES",
    "LEDGER_TABLE",
    "ColumnKind",
    "CostReport",
    "DuckDBWarehouse",
    "LoadResult",
    "SnowflakeWarehouse",
    "TableCounts",
    "TrickleCost",
    "Warehouse",
    "billed_seconds",
    "daily_cost_from_ledger",
    "estimate_credits",
    "row_by_row_cost",
]
