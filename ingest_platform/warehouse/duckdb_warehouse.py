"""DuckDB implementation of :class:`~ingest_platform.warehouse.base.Warehouse` (local env).

Bulk loads go through Arrow: each chunk of the frame becomes a ``pyarrow.Table``, is registered
on the connection and copied into the staging table with one ``INSERT … SELECT``; nothing is
inserted row by row.

Connections: a file-backed warehouse opens a fresh connection per operation and closes it
afterwards, so several processes (Dagster's multiprocess executor) can take turns on the file;
DuckDB allows one writing process at a time, so opening retries while another process holds the
lock. ``":memory:"`` keeps one connection (the data would vanish otherwise) and hands out a
fresh cursor per operation. Within a process, operations are serialised by a lock.

DuckDB 2.0 (REFERENCE §9): results are always consumed with ``fetchall()``/``df()``; a result
left unconsumed blocks the connection's next statement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd

from ingest_platform.warehouse.base import (
    ColumnKind,
    PreparedFrame,
    Session,
    Warehouse,
    batch_count,
    bind_placeholders,
    iter_chunks,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_DDL_TYPES: dict[ColumnKind, str] = {
    ColumnKind.BOOLEAN: "BOOLEAN",
    ColumnKind.INTEGER: "BIGINT",
    ColumnKind.FLOAT: "DOUBLE",
    ColumnKind.DECIMAL: "DECIMAL(18,2)",
    ColumnKind.STRING: "VARCHAR",
    ColumnKind.TIMESTAMP_TZ: "TIMESTAMPTZ",
    ColumnKind.TIMESTAMP: "TIMESTAMP",
    ColumnKind.DATE: "DATE",
    ColumnKind.JSON: "VARCHAR",
    ColumnKind.FLOAT_ARRAY: "FLOAT[]",
}


def _arrow_type(kind: ColumnKind) -> pa.DataType:
    import pyarrow as pa

    return {
        ColumnKind.BOOLEAN: pa.bool_(),
        ColumnKind.INTEGER: pa.int64(),
        ColumnKind.FLOAT: pa.float64(),
        ColumnKind.DECIMAL: pa.decimal128(18, 2),
        ColumnKind.STRING: pa.string(),
        ColumnKind.TIMESTAMP_TZ: pa.timestamp("us", tz="UTC"),
        ColumnKind.TIMESTAMP: pa.timestamp("us"),
        ColumnKind.DATE: pa.date32(),
        ColumnKind.JSON: pa.string(),
        ColumnKind.FLOAT_ARRAY: pa.list_(pa.float32()),
    }[kind]


# DuckDB's own words for "another process holds the write lock". Matching a bare "lock" would
# also match the file's path (".../blocked.duckdb", "/srv/clock/"), and every IO error there
# would wait the whole lock timeout before failing.
_LOCK_CONFLICT_MARKERS: tuple[str, ...] = ("could not set lock on file", "conflicting lock")


def _is_lock_conflict(exc: BaseException) -> bool:
    message = str(exc).lower()
    return any(marker in message for marker in _LOCK_CONFLICT_MARKERS)


class DuckDBSession(Session):
    """One DuckDB connection (or cursor) for one operation."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        super().__init__()
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple]:
        return self._run(sql, params).fetchall()

    def query_df(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self._run(sql, params).df()

    def _run(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> duckdb.DuckDBPyConnection:
        self.statements += 1
        if params is None:
            return self.conn.execute(sql)
        bound = bind_placeholders(sql, params, "duckdb")
        return self.conn.execute(bound, dict(params) if isinstance(params, Mapping) else list(params))


class DuckDBWarehouse(Warehouse):
    """A DuckDB file (or ``":memory:"``) as the warehouse.

    ``chunk_size`` bounds how many rows are converted to Arrow and copied per statement; it is
    what ``LoadResult.batches`` counts. ``lock_timeout_s`` is how long to wait for another
    process holding the file's write lock.
    """

    engine: ClassVar[Literal["duckdb", "snowflake"]] = "duckdb"

    def __init__(self, path: str | Path, *, chunk_size: int = 100_000, lock_timeout_s: float = 30.0) -> None:
        super().__init__(chunk_size=chunk_size)
        self.path = str(path)
        self.lock_timeout_s = lock_timeout_s
        self._lock = threading.RLock()
        self._memory_conn: duckdb.DuckDBPyConnection | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    @property
    def warehouse_label(self) -> str:
        return f"duckdb:{Path(self.path).name if self.path != ':memory:' else ':memory:'}"

    def canonical(self, name: str) -> str:
        # DuckDB matches identifiers case-insensitively but keeps the spelling it was given;
        # storing lower-case makes information_schema lookups and listings predictable.
        return name.lower()

    def _column_type(self, kind: ColumnKind) -> str:
        return _DDL_TYPES[kind]

    # ---- connections -------------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(self.path)
                break
            except duckdb.IOException as exc:
                # another process holds the write lock: wait our turn rather than fail the run
                if not _is_lock_conflict(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        # TIMESTAMPTZ values come back in the session time zone: make that UTC everywhere
        conn.execute("SET TimeZone = 'UTC'").fetchall()
        return conn

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._lock:
            if self.path == ":memory:":
                if self._memory_conn is None:
                    self._memory_conn = self._connect()
                cursor = self._memory_conn.cursor()
                cursor.execute("SET TimeZone = 'UTC'").fetchall()
                try:
                    yield DuckDBSession(cursor)
                finally:
                    cursor.close()
                return
            conn = self._connect()
            try:
                yield DuckDBSession(conn)
            finally:
                conn.close()

    def close(self) -> None:
        with self._lock:
            if self._memory_conn is not None:
                self._memory_conn.close()
                self._memory_conn = None

    # ---- engine hooks ------------------------------------------------------------------------

    def _bulk_stage(self, session: Session, stage: str, prepared: PreparedFrame) -> tuple[int, int]:
        import pyarrow as pa

        assert isinstance(session, DuckDBSession)
        schema = pa.schema([(name, _arrow_type(kind)) for name, kind in prepared.kinds.items()])
        view = f"_arrow_{stage}"
        nbytes = 0
        batches = 0
        for chunk in iter_chunks(prepared.frame, self.chunk_size):
            # Arrow conversion is columnar C code, and DuckDB scans the Arrow table in parallel
            table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
            nbytes += table.nbytes
            session.conn.register(view, table)
            try:
                session.execute(f"INSERT INTO {self.quote(stage)} BY NAME SELECT * FROM {self.quote(view)}")
            finally:
                session.conn.unregister(view)
            batches += 1
        assert batches == batch_count(len(prepared.frame), self.chunk_size)
        return batches, nbytes

    def _merge_from_stage(
        self,
        session: Session,
        target: str,
        stage: str,
        columns: list[str],
        keys: list[str],
        version: str | None = None,
    ) -> int | None:
        """UPDATE the matched keys, INSERT the rest (anti-join), in one transaction.

        The same outcome as the base class's single MERGE, which DuckDB also runs; but DuckDB
        2.0's MERGE inserts new rows about 3x slower than an anti-join INSERT (1M new orders:
        2.6 s vs 0.8 s on the benchmark machine), and the transaction keeps the pair atomic.
        """
        missing = [k for k in keys if k not in columns]
        if missing:
            raise ValueError(f"key columns {missing} are not in the frame")
        t, s = self.quote(target), self.quote(stage)
        on = " AND ".join(f"t.{self.quote(k)} = s.{self.quote(k)}" for k in keys)
        updates = ", ".join(f"{self.quote(c)} = s.{self.quote(c)}" for c in columns if c not in keys)
        guard = self._version_guard(version)
        session.execute("BEGIN TRANSACTION")
        try:
            updated = (
                self._affected(
                    session.execute(
                        f"UPDATE {t} AS t SET {updates} FROM {s} AS s WHERE {on}{guard}"
                    )
                )
                if updates
                else 0
            )
            inserted = self._affected(
                session.execute(
                    f"INSERT INTO {t} ({self._columns_sql(columns)})"
                    f" SELECT {self._columns_sql(columns, 's')} FROM {s} AS s ANTI JOIN {t} AS t ON {on}"
                )
            )
            session.execute("COMMIT")
        except BaseException:
            self._rollback(session)
            raise
        return (updated or 0) + (inserted or 0)

    def _target_columns(self, session: Session, table: str) -> dict[str, str] | None:
        rows = session.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_catalog = current_database()"
            " AND lower(table_name) = ? ORDER BY ordinal_position",
            [table.lower()],
        )
        return {str(name).lower(): str(dtype) for name, dtype in rows} or None

    def _list_tables(self, session: Session) -> list[str]:
        rows = session.execute(
            "SELECT table_name FROM duckdb_tables()"
            " WHERE NOT temporary AND schema_name = current_schema() AND database_name = current_database()"
        )
        return [str(name) for (name,) in rows]
