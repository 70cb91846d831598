"""The ``Warehouse`` interface and the load logic both engines share.

Every load is a **staged load**:

1. the frame is bulk-loaded into a session-scoped temporary staging table, in
   ``ceil(rows / chunk_size)`` batches (DuckDB: Arrow registration + ``INSERT … SELECT``;
   Snowflake: one ``write_pandas`` = parquet chunks, PUT, one ``COPY INTO``);
2. the target is created from the frame's schema if missing, or gains any new columns
   (``ALTER TABLE … ADD COLUMN``: additive, nullable, harmless if the load then fails);
3. ONE atomic step moves the rows from stage to target: ``BEGIN; DELETE slice; INSERT; COMMIT``
   for ``replace_partition``; for ``merge`` a single ``MERGE`` (Snowflake) or
   ``BEGIN; UPDATE matched; INSERT … ANTI JOIN; COMMIT`` (DuckDB, whose MERGE is slower);
   a single ``INSERT … WHERE NOT EXISTS`` for ``append_dedup``;
4. the stage is dropped and a row is appended to ``load_ledger``.

A failure (or a killed process) before step 3 commits leaves the target's rows exactly as they
were (at most with the new, empty columns of step 2); re-running the same load converges to the
same state, never duplicates. The ledger row is written after the commit, so a failed load has
none, and a process killed between commit and ledger insert leaves an applied load unrecorded
until its (idempotent) rerun.

Type mapping (frame → table), the same on both engines except where noted:

=================================  ==================  ==========================
frame column                       DuckDB              Snowflake
=================================  ==================  ==========================
bool                               BOOLEAN             BOOLEAN
int (incl. nullable Int64)         BIGINT              NUMBER(38,0)
float                              DOUBLE              FLOAT
decimal (Arrow decimal128, money)  DECIMAL(18,2)       NUMBER(18,2)
str                                VARCHAR             VARCHAR
tz-aware datetime (stored UTC)     TIMESTAMPTZ         TIMESTAMP_TZ
naive datetime                     TIMESTAMP           TIMESTAMP_NTZ
date                               DATE                DATE
list / dict (e.g. hashtags)        VARCHAR JSON text   VARCHAR JSON text
list of floats (embeddings)        FLOAT[]             VARCHAR JSON text
=================================  ==================  ==========================

Embeddings are ``FLOAT[]`` on DuckDB so ``list_cosine_similarity`` works in SQL; on Snowflake
they are JSON text because ``write_pandas`` cannot COPY a parquet list into ARRAY/VECTOR
without a per-column transform (``PARSE_JSON(col)::ARRAY`` or ``::VECTOR(FLOAT, n)`` at query
time). Other lists/dicts are JSON text on both (``PARSE_JSON`` / ``json_extract`` to query).

Names: tables and columns are case-insensitive and must be plain identifiers
(``[A-Za-z_][A-Za-z0-9_]*``). DuckDB stores them lower-case, Snowflake upper-case (unquoted
semantics). Results come back with lower-case column names and ``list_tables`` /
``table_row_counts`` use lower-case table names on both engines.

SQL passed to ``read_sql`` may use ``?`` (positional) or ``:name`` (named) placeholders on
both engines; they are rewritten to each driver's own style.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ingest_platform.warehouse import ledger
from ingest_platform.warehouse.cost import CostReport

log = logging.getLogger(__name__)

STAGE_PREFIX = "_stg_"
"""Staging tables are named ``_stg_<table>_<random>``; ``list_tables`` never shows them."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Operation = Literal["replace_partition", "merge", "append_dedup"]


class ColumnKind(StrEnum):
    """Engine-neutral column type inferred from a frame; each engine maps it to DDL."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    STRING = "string"
    TIMESTAMP_TZ = "timestamp_tz"
    TIMESTAMP = "timestamp"
    DATE = "date"
    JSON = "json"
    FLOAT_ARRAY = "float_array"


class LoadResult(BaseModel):
    """What one load did and cost. The same fields are written to ``load_ledger``.

    ``rows`` is the number of rows staged (after in-frame de-duplication for ``merge`` /
    ``append_dedup``); ``rows_affected`` is what the engine reported for the final step
    (for ``append_dedup``: rows actually new). ``statements`` counts every SQL statement the
    loader sent for this load (connection set-up and the ledger insert excluded; Snowflake's
    ``USE WAREHOUSE`` and ``ALTER SESSION`` included); on Snowflake one ``write_pandas``
    counts as one (its ``COPY INTO``: the stage creation and PUTs it does internally run in
    cloud services, not on the warehouse). ``batches`` is ``ceil(rows / chunk_size)``.
    ``estimated_credits`` assumes the load woke a cold warehouse (upper bound); the daily
    figure in :class:`CostReport` merges loads that share a resume.
    """

    table: str
    operation: Operation
    rows: int
    rows_affected: int | None = None
    batches: int
    statements: int
    bytes: int
    seconds: float
    warehouse: str
    query_tag: str
    estimated_credits: float = 0.0
    estimated_cost_usd: float = 0.0
    engine: Literal["duckdb", "snowflake"]
    started_at: datetime
    loaded_at: datetime
    run_id: str | None = None

    @property
    def rows_per_statement(self) -> float:
        return self.rows / self.statements if self.statements else 0.0

    def as_metadata(self) -> dict[str, int | float | str]:
        """Flat load figures for run metadata (numbers are plotted over time in Dagster's UI)."""
        figures: dict[str, int | float | str] = {
            "rows_loaded": self.rows,
            "batches": self.batches,
            "statements": self.statements,
            "rows_per_statement": round(self.rows_per_statement, 1),
            "bytes_loaded": self.bytes,
            "load_seconds": round(self.seconds, 3),
            "estimated_credits": round(self.estimated_credits, 6),
            "estimated_cost_usd": round(self.estimated_cost_usd, 4),
            "engine": self.engine,
            "query_tag": self.query_tag,
        }
        if self.rows_affected is not None:
            figures["rows_affected"] = self.rows_affected
        return figures


class TableCounts(dict[str, int]):
    """Row counts keyed by lower-case table name; lookups ignore case (``counts["ORDERS"]``)."""

    def __getitem__(self, key: str) -> int:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


# --------------------------------------------------------------------------------------------
# Frame preparation: infer one ColumnKind per column and normalise values, vectorised where
# pandas allows; per-value Python only for JSON/array columns (small tables: posts, dead letters).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready for staging: canonical column names, normalised values, inferred kinds."""

    frame: pd.DataFrame
    kinds: dict[str, ColumnKind]


def check_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*): "
            "names must work unquoted on every engine"
        )
    return name


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return value is pd.NaT or value is pd.NA


def _is_number(value: Any) -> bool:
    numeric = isinstance(value, int | float | np.integer | np.floating)
    return numeric and not isinstance(value, bool | np.bool_)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


def to_json_text(value: Any) -> str | None:
    """JSON text for a list/dict cell (``None`` stays NULL); stable key order for diffs."""
    if _is_null(value):
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)


def _sequence_kind(values: pd.Series) -> ColumnKind:
    """Kind of an object column holding lists/dicts: float arrays vs generic JSON."""
    seen_numeric_list = False
    for value in values.head(1000):
        if _is_null(value):
            continue
        if isinstance(value, dict):
            return ColumnKind.JSON
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            seen_numeric_list = True
            continue
        if isinstance(value, list | tuple | np.ndarray):
            if len(value) == 0:
                continue
            # floats (or ints mixed with floats) make an embedding; pure ints stay JSON ids
            if all(_is_number(v) for v in value) and any(isinstance(v, float | np.floating) for v in value):
                seen_numeric_list = True
                continue
            return ColumnKind.JSON
        # a scalar mixed in with lists: keep everything as text rather than guess
        return ColumnKind.JSON
    return ColumnKind.FLOAT_ARRAY if seen_numeric_list else ColumnKind.JSON


def _arrow_kind(arrow_type: Any) -> ColumnKind | None:
    """Kind of an Arrow-backed column (``pd.ArrowDtype``), read from its type without a scan."""
    import pyarrow as pa

    types = pa.types
    if types.is_string(arrow_type) or types.is_large_string(arrow_type) or types.is_string_view(arrow_type):
        return ColumnKind.STRING
    if types.is_boolean(arrow_type):
        return ColumnKind.BOOLEAN
    if types.is_integer(arrow_type):
        return ColumnKind.INTEGER
    if types.is_decimal(arrow_type):
        # Money: exact on both engines. Scales other than 2 would need their own DDL.
        money = arrow_type.scale == 2 and arrow_type.precision <= 18
        return ColumnKind.DECIMAL if money else ColumnKind.FLOAT
    if types.is_floating(arrow_type):
        return ColumnKind.FLOAT
    if types.is_timestamp(arrow_type):
        return ColumnKind.TIMESTAMP_TZ if arrow_type.tz is not None else ColumnKind.TIMESTAMP
    if types.is_date(arrow_type):
        return ColumnKind.DATE
    if types.is_list(arrow_type) or types.is_large_list(arrow_type) or types.is_fixed_size_list(arrow_type):
        return ColumnKind.FLOAT_ARRAY if types.is_floating(arrow_type.value_type) else ColumnKind.JSON
    if types.is_struct(arrow_type) or types.is_map(arrow_type):
        return ColumnKind.JSON
    return None


_ARROW_PASSTHROUGH = frozenset(
    {
        ColumnKind.STRING,
        ColumnKind.BOOLEAN,
        ColumnKind.INTEGER,
        ColumnKind.FLOAT,
        ColumnKind.DECIMAL,
        ColumnKind.DATE,
        ColumnKind.TIMESTAMP,
    }
)


def infer_kind(series: pd.Series) -> ColumnKind:
    """The engine-neutral type for a frame column (see the mapping in the module docstring)."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        kind = _arrow_kind(dtype.pyarrow_dtype)
        return kind if kind is not None else infer_kind(series.astype(object))
    if isinstance(dtype, pd.CategoricalDtype):
        return infer_kind(series.astype(dtype.categories.dtype))
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnKind.BOOLEAN
    if pd.api.types.is_integer_dtype(dtype):
        return ColumnKind.INTEGER
    if pd.api.types.is_float_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return ColumnKind.FLOAT
    if isinstance(dtype, pd.DatetimeTZDtype):
        return ColumnKind.TIMESTAMP_TZ
    if pd.api.types.is_datetime64_dtype(dtype):
        return ColumnKind.TIMESTAMP
    if isinstance(dtype, pd.StringDtype):
        return ColumnKind.STRING
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("string", "empty"):
        return ColumnKind.STRING
    if inferred == "boolean":
        return ColumnKind.BOOLEAN
    if inferred == "integer":
        return ColumnKind.INTEGER
    if inferred in ("floating", "mixed-integer-float", "decimal"):
        return ColumnKind.FLOAT
    if inferred in ("datetime", "datetime64"):
        aware = any(getattr(v, "tzinfo", None) is not None for v in series.dropna().head(1000))
        return ColumnKind.TIMESTAMP_TZ if aware else ColumnKind.TIMESTAMP
    if inferred == "date":
        return ColumnKind.DATE
    if inferred in ("mixed", "unknown-array"):
        first = next((v for v in series.head(1000) if not _is_null(v)), None)
        if isinstance(first, list | tuple | dict | np.ndarray):
            return _sequence_kind(series)
    return ColumnKind.STRING


def _object_array(values: list[Any]) -> np.ndarray:
    """A 1-D object array; ``np.array(list_of_equal_length_arrays)`` would build a 2-D one."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def _infer(series: pd.Series) -> str:
    return pd.api.types.infer_dtype(series, skipna=True)


def _normalise(series: pd.Series, kind: ColumnKind) -> Any:
    """Values of ``series`` in the canonical form for ``kind`` (an array-like, index dropped)."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) and _arrow_kind(dtype.pyarrow_dtype) is kind:
        # Arrow-backed columns stay Arrow: zero-copy into DuckDB and parquet
        if kind in _ARROW_PASSTHROUGH:
            return series.array
        if kind is ColumnKind.TIMESTAMP_TZ:
            # Arrow stores instants in UTC already: only the zone label changes
            return series.dt.tz_convert("UTC").array
    if isinstance(dtype, pd.ArrowDtype | pd.CategoricalDtype):
        series = series.astype(object)
        dtype = series.dtype
    if kind is ColumnKind.STRING:
        # object columns holding non-strings (ids as ints, Decimals…) become their text
        if pd.api.types.is_object_dtype(dtype) and _infer(series) not in ("string", "empty"):
            return _object_array([None if _is_null(v) else str(v) for v in series])
        return series.array
    if kind is ColumnKind.BOOLEAN:
        return series.array if pd.api.types.is_bool_dtype(dtype) else series.astype("boolean").array
    if kind is ColumnKind.INTEGER:
        return series.array if pd.api.types.is_integer_dtype(dtype) else series.astype("Int64").array
    if kind is ColumnKind.FLOAT:
        if pd.api.types.is_timedelta64_dtype(dtype):
            return series.dt.total_seconds().to_numpy()
        if pd.api.types.is_float_dtype(dtype):
            return series.array
        return pd.to_numeric(series, errors="raise").astype("float64").to_numpy()
    if kind is ColumnKind.TIMESTAMP_TZ:
        # naive values mixed in are taken as UTC, the platform-wide convention (models._as_utc)
        return pd.to_datetime(series, utc=True).array
    if kind is ColumnKind.TIMESTAMP:
        return series.array if pd.api.types.is_datetime64_dtype(dtype) else pd.to_datetime(series).array
    if kind is ColumnKind.DATE:
        return _object_array([None if _is_null(v) else pd.Timestamp(v).date() for v in series])
    if kind is ColumnKind.JSON:
        return _object_array([to_json_text(v) for v in series])
    if kind is ColumnKind.FLOAT_ARRAY:
        # float64 here: DuckDB's Arrow schema narrows to FLOAT[]; Snowflake's JSON keeps the digits given
        return _object_array([None if _is_null(v) else np.asarray(v, dtype=np.float64) for v in series])
    raise AssertionError(kind)


def prepare_frame(df: pd.DataFrame, canonical: Any) -> PreparedFrame:
    """Canonical names (via ``canonical(name)``), inferred kinds and normalised values."""
    columns: dict[str, Any] = {}
    kinds: dict[str, ColumnKind] = {}
    for original in df.columns:
        name = canonical(check_identifier(str(original), "column"))
        if name in columns:
            raise ValueError(f"columns {original!r} and another collide case-insensitively as {name!r}")
        series = df[original]
        kind = infer_kind(series)
        kinds[name] = kind
        columns[name] = _normalise(series, kind)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(df)), copy=False)
    return PreparedFrame(frame=frame, kinds=kinds)


# --------------------------------------------------------------------------------------------
# Placeholders: callers write ``?`` or ``:name``; each engine's driver wants its own style.
# --------------------------------------------------------------------------------------------

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|::|\?|:[A-Za-z_]\w*|%")


def bind_placeholders(sql: str, params: Any, style: Literal["duckdb", "pyformat"]) -> str:
    """Rewrite ``?`` / ``:name`` placeholders outside quotes and comments for a driver.

    ``duckdb`` keeps ``?`` and turns ``:name`` into ``$name``; ``pyformat`` (the Snowflake
    connector's default) turns them into ``%s`` / ``%(name)s`` and escapes literal ``%``,
    which pyformat would otherwise read as a placeholder. ``::`` casts are left alone.
    """
    if params is None:
        return sql

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token[0] in "'\"-" or token == "::":
            return token.replace("%", "%%") if style == "pyformat" else token
        if token == "?":
            return "?" if style == "duckdb" else "%s"
        if token == "%":
            return "%%" if style == "pyformat" else "%"
        name = token[1:]
        return f"${name}" if style == "duckdb" else f"%({name})s"

    return _TOKENS.sub(replace, sql)


# --------------------------------------------------------------------------------------------
# Sessions: one connection for the duration of a load, counting the statements it sends.
# --------------------------------------------------------------------------------------------


class Session(ABC):
    """A connection held for one operation. ``statements`` counts what was sent."""

    def __init__(self) -> None:
        self.statements = 0

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple]:
        """Run one statement and return its rows (DDL/DML: the engine's status rows)."""

    @abstractmethod
    def query_df(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one query and return a frame (column names as the engine returns them)."""


def _utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Lower-case column names; tz-aware columns converted to UTC."""
    frame = frame.rename(columns=lambda c: str(c).lower())
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC")
    return frame


class Warehouse(ABC):
    """A table store with idempotent staged loads, identical in behaviour on every engine.

    Subclasses provide connections, identifier case, DDL types and the bulk stage load;
    everything that decides *what* happens (and so the idempotency guarantees) lives here.
    """

    engine: ClassVar[Literal["duckdb", "snowflake"]]

    def __init__(self, *, chunk_size: int = 100_000) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        self.chunk_size = chunk_size
        self._ledger_ready = False
        self._ledger_lock = threading.Lock()

    # ---- engine hooks ------------------------------------------------------------------------

    @abstractmethod
    def _session(self) -> AbstractContextManager[Session]:
        """A session for one operation (connection opened and closed around it)."""

    @abstractmethod
    def canonical(self, name: str) -> str:
        """The engine's stored spelling of an identifier (lower- or upper-case)."""

    @abstractmethod
    def _column_type(self, kind: ColumnKind) -> str:
        """DDL type for a kind."""

    @abstractmethod
    def _bulk_stage(self, session: Session, stage: str, prepared: PreparedFrame) -> tuple[int, int]:
        """Bulk-load ``prepared`` into the (existing, empty) ``stage``; return (batches, bytes)."""

    @abstractmethod
    def _target_columns(self, session: Session, table: str) -> dict[str, str] | None:
        """Existing columns of ``table`` (canonical name → type), or None if it doesn't exist."""

    @abstractmethod
    def _list_tables(self, session: Session) -> list[str]:
        """Canonical names of the permanent tables in the current schema."""

    @property
    @abstractmethod
    def warehouse_label(self) -> str:
        """What ``LoadResult.warehouse`` says: the Snowflake warehouse or the DuckDB file."""

    def _start_load(self, session: Session, query_tag: str) -> None:  # noqa: B027 - optional hook
        """Per-load session setup (Snowflake: QUERY_TAG). Statements here count."""

    def _estimate_cost(self, started: datetime, finished: datetime) -> tuple[float, float]:
        """(credits, usd) for one load. Engines without a bill return zeros."""
        return 0.0, 0.0

    # ---- small helpers -------------------------------------------------------------------------

    def quote(self, name: str) -> str:
        """A quoted canonical identifier: same meaning as unquoted, safe for reserved words."""
        return '"' + self.canonical(name) + '"'

    def _table(self, table: str) -> str:
        return self.canonical(check_identifier(table, "table"))

    def _columns_sql(self, columns: Sequence[str], alias: str | None = None) -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + self.quote(c) for c in columns)

    def _create_table_sql(self, table: str, kinds: Mapping[str, ColumnKind], *, temporary: bool) -> str:
        cols = ", ".join(f"{self.quote(c)} {self._column_type(k)}" for c, k in kinds.items())
        kind = "TEMPORARY TABLE" if temporary else "TABLE IF NOT EXISTS"
        return f"CREATE {kind} {self.quote(table)} ({cols})"

    @staticmethod
    def _affected(rows: list[tuple]) -> int | None:
        """Row count from a DML status row; both engines put it in the first column."""
        try:
            # Snowflake's MERGE reports (inserted, updated): the sum is what the MERGE touched
            counts = [v for v in rows[0] if isinstance(v, numbers.Number) and not isinstance(v, bool)]
            return int(sum(int(v) for v in counts))
        except (IndexError, TypeError, ValueError):
            return None

    # ---- public API: loads ---------------------------------------------------------------------

    def replace_partition(
        self,
        table: str,
        df: pd.DataFrame,
        *,
        partition_column: str,
        partition_value: Any,
        query_tag: str,
        run_id: str | None = None,
    ) -> LoadResult:
        """Make ``table``'s ``partition_column = partition_value`` slice exactly ``df``.

        Idempotent: rerunning replaces the slice again, never duplicates; other partitions are
        untouched. ``df`` may omit ``partition_column`` (it is filled in); if present every
        row must carry ``partition_value``. An empty ``df`` empties the slice.
        """
        check_identifier(partition_column, "partition_column")
        df = _with_partition(df, partition_column, partition_value)
        column = self.canonical(partition_column)

        def apply(session: Session, target: str, stage: str | None, columns: list[str]) -> int | None:
            session.execute("BEGIN TRANSACTION")
            try:
                deleted = self._delete_partition(session, target, column, partition_value)
                inserted = self._insert_from_stage(session, target, stage, columns) if stage else 0
                session.execute("COMMIT")
            except BaseException:
                self._rollback(session)
                raise
            log.debug("replaced %s %s=%r: -%s +%s rows", target, column, partition_value, deleted, inserted)
            return inserted

        return self._load("replace_partition", table, df, apply, query_tag=query_tag, run_id=run_id)

    def merge(
        self,
        table: str,
        df: pd.DataFrame,
        *,
        key_columns: Sequence[str],
        query_tag: str,
        run_id: str | None = None,
        version_column: str | None = None,
    ) -> LoadResult:
        """Upsert ``df`` into ``table`` by ``key_columns`` in one atomic step (see module doc).

        Rows whose key exists are updated (only the columns ``df`` carries), the rest inserted.
        Duplicate keys within ``df`` resolve to their last occurrence. Keys must not be null.

        With ``version_column``, a stored row is replaced only by a row whose version is
        greater than or equal to its own (a tie: the later load wins); a stored row with a
        NULL version (loaded before versions existed) is always replaced. An older version
        arriving late leaves the stored row as it is. The frame's own duplicates resolve to the
        greatest version (the last on a tie), the same rule.
        """
        keys = self._keys(key_columns)
        version = None
        if version_column:
            version = self.canonical(check_identifier(version_column, "version column"))
        if version_column is not None and len(df):
            lookup = {str(c).lower(): c for c in df.columns}
            if version_column.lower() not in lookup:
                raise ValueError(f"version column {version_column!r} is not in the frame")
            df = df.sort_values(lookup[version_column.lower()], kind="stable", na_position="first")
        df = _dedup(df, key_columns, keep="last", allow_null=False)

        def apply(session: Session, target: str, stage: str | None, columns: list[str]) -> int | None:
            if not stage:
                return 0
            return self._merge_from_stage(session, target, stage, columns, keys, version)

        return self._load("merge", table, df, apply, query_tag=query_tag, run_id=run_id)

    def append_dedup(
        self,
        table: str,
        df: pd.DataFrame,
        *,
        key_columns: Sequence[str],
        query_tag: str,
        run_id: str | None = None,
    ) -> LoadResult:
        """Insert only the rows of ``df`` whose key is not in ``table`` yet (first one wins).

        Keys compare null-safely (``IS NOT DISTINCT FROM``), so a dead letter without a
        ``partition_key`` is still de-duplicated. ``rows_affected`` is the number inserted.
        """
        keys = self._keys(key_columns)
        df = _dedup(df, key_columns, keep="first", allow_null=True)

        def apply(session: Session, target: str, stage: str | None, columns: list[str]) -> int | None:
            return self._insert_new_from_stage(session, target, stage, columns, keys) if stage else 0

        return self._load("append_dedup", table, df, apply, query_tag=query_tag, run_id=run_id)

    # ---- the load template ---------------------------------------------------------------------

    def _keys(self, key_columns: Sequence[str]) -> list[str]:
        if isinstance(key_columns, str) or not key_columns:
            raise ValueError("key_columns must be a non-empty sequence of column names")
        return [self.canonical(check_identifier(k, "key column")) for k in key_columns]

    def _load(
        self,
        operation: Operation,
        table: str,
        df: pd.DataFrame,
        apply: Any,
        *,
        query_tag: str,
        run_id: str | None,
    ) -> LoadResult:
        target = self._table(table)
        if target == self.canonical(ledger.LEDGER_TABLE):
            raise ValueError(f"{ledger.LEDGER_TABLE} is written by the warehouse itself")
        started = datetime.now(UTC)
        clock = time.perf_counter()
        prepared = prepare_frame(df, self.canonical)
        if operation != "replace_partition" and len(prepared.frame) == 0:
            prepared = PreparedFrame(prepared.frame, {})  # nothing to stage, nothing to change
        with self._session() as session:
            self._start_load(session, query_tag)
            existing = self._target_columns(session, target)
            batches = nbytes = 0
            stage: str | None = None
            affected: int | None = 0
            try:
                if len(prepared.frame) > 0:
                    stage = self.canonical(f"{STAGE_PREFIX}{target}_{uuid.uuid4().hex[:12]}")
                    session.execute(self._create_table_sql(stage, prepared.kinds, temporary=True))
                    batches, nbytes = self._bulk_stage(session, stage, prepared)
                    self._evolve_target(session, target, existing, prepared.kinds)
                    existing = existing or dict.fromkeys(prepared.kinds, "")
                if existing is not None:
                    # the one atomic step: until it commits, the target is untouched
                    affected = apply(session, target, stage, list(prepared.kinds))
            finally:
                if stage is not None:
                    self._drop_stage(session, stage)
            statements = session.statements
            finished = datetime.now(UTC)
            credits, usd = self._estimate_cost(started, finished)
            result = LoadResult(
                table=target.lower(),
                operation=operation,
                rows=len(prepared.frame),
                rows_affected=affected,
                batches=batches,
                statements=statements,
                bytes=nbytes,
                seconds=time.perf_counter() - clock,
                warehouse=self.warehouse_label,
                query_tag=query_tag,
                estimated_credits=credits,
                estimated_cost_usd=usd,
                engine=self.engine,
                started_at=started,
                loaded_at=finished,
                run_id=run_id,
            )
            self._write_ledger(session, result)
        return result

    def _evolve_target(
        self, session: Session, target: str, existing: dict[str, str] | None, kinds: Mapping[str, ColumnKind]
    ) -> None:
        """Create the target from the frame's schema, or add the frame's new columns to it."""
        if existing is None:
            session.execute(self._create_table_sql(target, kinds, temporary=False))
            return
        for column, kind in kinds.items():
            if column not in existing:
                # nullable and additive: existing rows read NULL, older frames still load
                add = f"ADD COLUMN {self.quote(column)} {self._column_type(kind)}"
                session.execute(f"ALTER TABLE {self.quote(target)} {add}")

    def _drop_stage(self, session: Session, stage: str) -> None:
        try:
            session.execute(f"DROP TABLE IF EXISTS {self.quote(stage)}")
        except Exception:  # a temp table dies with the session anyway
            log.warning("could not drop staging table %s", stage, exc_info=True)

    def _rollback(self, session: Session) -> None:
        try:
            session.execute("ROLLBACK")
        except Exception:  # the original error is the one worth raising
            log.warning("rollback failed", exc_info=True)

    # The statements of the atomic step are separate methods so tests can make one of them fail
    # and check the target is unchanged.

    def _delete_partition(self, session: Session, target: str, column: str, value: Any) -> int | None:
        sql = f"DELETE FROM {self.quote(target)} WHERE {self.quote(column)} = ?"
        return self._affected(session.execute(sql, [_bindable(value)]))

    def _insert_from_stage(self, session: Session, target: str, stage: str, columns: list[str]) -> int | None:
        cols = self._columns_sql(columns)
        sql = f"INSERT INTO {self.quote(target)} ({cols}) SELECT {cols} FROM {self.quote(stage)}"
        return self._affected(session.execute(sql))

    def _version_guard(self, version: str | None) -> str:
        """SQL condition (aliases t, s) under which a stored row may be replaced."""
        if version is None:
            return ""
        v = self.quote(version)
        return f" AND (t.{v} IS NULL OR s.{v} >= t.{v})"

    def _merge_from_stage(
        self,
        session: Session,
        target: str,
        stage: str,
        columns: list[str],
        keys: list[str],
        version: str | None = None,
    ) -> int | None:
        missing = [k for k in keys if k not in columns]
        if missing:
            raise ValueError(f"key columns {missing} are not in the frame")
        on = " AND ".join(f"t.{self.quote(k)} = s.{self.quote(k)}" for k in keys)
        updates = ", ".join(f"{self.quote(c)} = s.{self.quote(c)}" for c in columns if c not in keys)
        matched = f" WHEN MATCHED{self._version_guard(version)} THEN UPDATE SET {updates}" if updates else ""
        sql = (
            f"MERGE INTO {self.quote(target)} t USING {self.quote(stage)} s ON {on}{matched}"
            f" WHEN NOT MATCHED THEN INSERT ({self._columns_sql(columns)})"
            f" VALUES ({self._columns_sql(columns, 's')})"
        )
        return self._affected(session.execute(sql))

    def _insert_new_from_stage(
        self, session: Session, target: str, stage: str, columns: list[str], keys: list[str]
    ) -> int | None:
        missing = [k for k in keys if k not in columns]
        if missing:
            raise ValueError(f"key columns {missing} are not in the frame")
        match = " AND ".join(f"t.{self.quote(k)} IS NOT DISTINCT FROM s.{self.quote(k)}" for k in keys)
        sql = (
            f"INSERT INTO {self.quote(target)} ({self._columns_sql(columns)})"
            f" SELECT {self._columns_sql(columns, 's')} FROM {self.quote(stage)} s"
            f" WHERE NOT EXISTS (SELECT 1 FROM {self.quote(target)} t WHERE {match})"
        )
        return self._affected(session.execute(sql))

    # ---- ledger --------------------------------------------------------------------------------

    def _write_ledger(self, session: Session, result: LoadResult) -> None:
        table = self.canonical(ledger.LEDGER_TABLE)
        if not self._ledger_ready:
            with self._ledger_lock:
                kinds = {self.canonical(n): ColumnKind(k) for n, k in ledger.LEDGER_COLUMNS}
                session.execute(self._create_table_sql(table, kinds, temporary=False))
                self._ledger_ready = True
        record = ledger.ledger_record(result)
        cols = self._columns_sql(list(record))
        marks = ", ".join("?" for _ in record)
        session.execute(f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({marks})", list(record.values()))

    def ledger_rows(self, since: datetime, until: datetime | None = None) -> pd.DataFrame:
        """Ledger rows with ``loaded_at >= since`` (and ``< until``), oldest first."""
        table = self.canonical(ledger.LEDGER_TABLE)
        with self._session() as session:
            if self._target_columns(session, table) is None:
                return ledger.empty_ledger_frame()
            sql = f"SELECT * FROM {self.quote(table)} WHERE {self.quote('loaded_at')} >= :since"
            params: dict[str, Any] = {"since": _bindable(_aware(since))}
            if until is not None:
                sql += f" AND {self.quote('loaded_at')} < :until"
                params["until"] = _bindable(_aware(until))
            frame = session.query_df(sql + f" ORDER BY {self.quote('loaded_at')}", params)
        return ledger.normalise_ledger_frame(frame)

    def daily_cost(self, day: date) -> CostReport:
        """A UTC day's loading cost. Engines without a bill report zero credits."""
        from ingest_platform.warehouse.cost import daily_cost_from_ledger

        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        report = daily_cost_from_ledger(self.ledger_rows(start, start + timedelta(days=1)), day, 0.0)
        return report.model_copy(
            update={"credits": 0.0, "cost_usd": 0.0, "note": f"{self.engine} bills no warehouse credits"}
        )

    def ensure_table(self, table: str, columns: Mapping[str, ColumnKind]) -> bool:
        """Create ``table`` with ``columns`` if it does not exist; True if it was created.

        For tables readers query before the first row arrives (a fresh warehouse's
        ``dead_letters``): an empty table reads as empty instead of failing the query.
        """
        target = self._table(table)
        kinds = {self.canonical(check_identifier(c, "column")): k for c, k in columns.items()}
        with self._session() as session:
            if self._target_columns(session, target) is not None:
                return False
            session.execute(self._create_table_sql(target, kinds, temporary=False))
        return True

    def table_exists(self, table: str) -> bool:
        with self._session() as session:
            return self._target_columns(session, self._table(table)) is not None

    # ---- public API: reads ---------------------------------------------------------------------

    def read_sql(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a query; ``?`` / ``:name`` placeholders; lower-case columns, UTC timestamps."""
        with self._session() as session:
            return _utc_frame(session.query_df(sql, params))

    def list_tables(self) -> list[str]:
        """Permanent tables in the current schema, lower-case, sorted (stages excluded)."""
        with self._session() as session:
            names = self._list_tables(session)
        return sorted(n.lower() for n in names if not n.lower().startswith(STAGE_PREFIX))

    def table_row_counts(self) -> TableCounts:
        """Exact row count per table (one ``UNION ALL`` query), keyed case-insensitively."""
        with self._session() as session:
            names = [n for n in self._list_tables(session) if not n.lower().startswith(STAGE_PREFIX)]
            if not names:
                return TableCounts()
            sql = " UNION ALL ".join(
                f"SELECT '{n.lower()}' AS table_name, COUNT(*) AS row_count FROM {self.quote(n)}"
                for n in names
            )
            rows = session.execute(sql)
        return TableCounts({str(name): int(count) for name, count in rows})

    def close(self) -> None:  # noqa: B027 - engines holding connections override
        """Release anything held open. Safe to call twice."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bindable(value: Any) -> Any:
    """Parameters both drivers bind identically: timestamps as ISO text, numpy as Python."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return _aware(value).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return bool(pd.Timestamp(a) == pd.Timestamp(b))
    except (TypeError, ValueError):
        return str(a) == str(b)


def _with_partition(df: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    """``df`` with its partition column filled in (or checked) so the slice is exactly ``df``."""
    if _is_null(value):
        raise ValueError("partition_value must not be null")
    present = [c for c in df.columns if str(c).lower() == column.lower()]
    if not present:
        filled = [value] * len(df) if len(df) else pd.Series(dtype=object)
        return df.assign(**{column: filled})
    values = df[present[0]]
    if values.isna().any():
        raise ValueError(f"{column} has nulls: those rows would escape the partition delete")
    distinct = values.drop_duplicates()
    bad = [v for v in distinct if not _same(v, value)]
    if bad:
        raise ValueError(f"rows with {column}={bad[:3]!r} do not belong to partition {value!r}")
    return df


def _dedup(
    df: pd.DataFrame, key_columns: Sequence[str], *, keep: Literal["first", "last"], allow_null: bool
) -> pd.DataFrame:
    """``df`` without rows whose key repeats an earlier (``first``) or later (``last``) row."""
    lookup = {str(c).lower(): c for c in df.columns}
    missing = [k for k in key_columns if k.lower() not in lookup]
    if missing and len(df):
        raise ValueError(f"key columns {missing} are not in the frame")
    if not len(df):
        return df
    keys = [lookup[k.lower()] for k in key_columns]
    if not allow_null and df[keys].isna().to_numpy().any():
        raise ValueError(f"key columns {list(key_columns)} must not be null")
    subset = df[keys]
    # lists/dicts are unhashable: compare their JSON text instead
    unhashable = (ColumnKind.JSON, ColumnKind.FLOAT_ARRAY)
    if any(pd.api.types.is_object_dtype(subset[c]) and infer_kind(subset[c]) in unhashable for c in keys):
        subset = pd.DataFrame({c: [to_json_text(v) for v in subset[c]] for c in keys})
    duplicated = subset.duplicated(keep=keep).to_numpy()
    return df[~duplicated] if duplicated.any() else df


def iter_chunks(frame: pd.DataFrame, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Consecutive row slices of at most ``chunk_size`` (views, no copies)."""
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size]


def batch_count(rows: int, chunk_size: int) -> int:
    return math.ceil(rows / chunk_size) if rows else 0
