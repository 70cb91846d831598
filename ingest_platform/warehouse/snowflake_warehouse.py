"""Snowflake implementation of :class:`~ingest_platform.warehouse.base.Warehouse` (prod env).

Importing this module does not import ``snowflake`` (``import snowflake.connector`` alone costs
seconds, REFERENCE §1): the connector is reached only through ``connection_factory`` and the
lazy ``pandas_tools`` import inside :meth:`SnowflakeWarehouse._bulk_stage`.

Bulk load: ``pandas_tools.write_pandas`` (parquet chunks of ``chunk_size`` rows → PUT → one
``COPY INTO``) into a session-scoped TEMPORARY staging table, with ``use_logical_type=True`` so
tz-aware timestamps arrive as the right instants and ``quote_identifiers=False`` so the
upper-cased column names resolve like unquoted identifiers.

``write_pandas`` is looked up as an attribute of ``snowflake.connector.pandas_tools`` at call
time, never imported by name, so ``fakesnow.patch()``'s standard targets cover it and callers
need no extra patch target. fakesnow does not implement ``ALTER SESSION SET QUERY_TAG``: tests
pass :data:`FAKESNOW_NOP_REGEXES` to ``fakesnow.patch(nop_regexes=...)``.

Connections: ``connection_factory`` is called once per operation and the connection closed
afterwards, so a warehouse object can be shared across threads.

Identifiers are upper-case (Snowflake's unquoted spelling); the SQL quotes them, which means
the same and keeps reserved words safe.

Authentication (:func:`snowflake_connect_args`): exactly one of a password or a key pair. The key
is PEM text (``SNOWFLAKE_PRIVATE_KEY``) or a PEM file (``SNOWFLAKE_PRIVATE_KEY_PATH``), optionally
encrypted (``SNOWFLAKE_PRIVATE_KEY_PASSPHRASE``); it is decrypted once and handed to
``snowflake.connector.connect(private_key=<PKCS#8 DER bytes>)``. A key that does not load gives a
one-line ``ConfigError`` naming the setting, never the key or the passphrase.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd

from ingest_platform.warehouse.base import (
    ColumnKind,
    PreparedFrame,
    Session,
    Warehouse,
    batch_count,
    bind_placeholders,
    to_json_text,
)
from ingest_platform.warehouse.cost import (
    CostReport,
    daily_cost_from_ledger,
    estimate_credits,
    normalise_size,
)

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

log = logging.getLogger(__name__)

FAKESNOW_NOP_REGEXES: tuple[str, ...] = (r"^ALTER SESSION SET QUERY_TAG",)
"""What a fakesnow test must pass as ``nop_regexes``: fakesnow 0.12 can't run these."""

FAKESNOW_EXTRA_TARGETS: tuple[str, ...] = ()
"""Extra ``fakesnow.patch`` targets this module needs: none (``write_pandas`` is an attribute lookup)."""

APPLICATION = "ingest_platform"
"""Sent as the connector's ``application``: queries show up under it in Snowflake's history."""


def snowflake_connect_args(
    *,
    account: str,
    user: str,
    password: str | None = None,
    private_key: str | None = None,
    private_key_path: str | None = None,
    private_key_passphrase: str | None = None,
    role: str | None = None,
    database: str | None = None,
    schema: str | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.connector.connect``, with exactly one authentication.

    Raises ``ConfigError`` (one line, naming the setting) when no or several methods are given or
    the key does not load. The result holds the secret: pass it to ``connect``, never log it.
    """
    from ingest_platform.settings import ConfigError, snowflake_private_key_der

    given = [
        name
        for name, value in (
            ("SNOWFLAKE_PASSWORD", password),
            ("SNOWFLAKE_PRIVATE_KEY", private_key),
            ("SNOWFLAKE_PRIVATE_KEY_PATH", private_key_path),
        )
        if value
    ]
    if len(given) != 1:
        raise ConfigError(
            "Snowflake needs exactly one authentication (SNOWFLAKE_PRIVATE_KEY_PATH, SNOWFLAKE_PRIVATE_KEY "
            f"or SNOWFLAKE_PASSWORD); {'none is set' if not given else 'set: ' + ', '.join(given)}"
        )
    args: dict[str, Any] = {"account": account, "user": user, "application": APPLICATION}
    if password:
        args["password"] = password
    else:
        args["private_key"] = snowflake_private_key_der(
            pem=private_key, path=private_key_path, passphrase=private_key_passphrase
        )
    optional = {"role": role, "database": database, "schema": schema, "warehouse": warehouse}
    args.update({name: value for name, value in optional.items() if value})
    return args


_DDL_TYPES: dict[ColumnKind, str] = {
    ColumnKind.BOOLEAN: "BOOLEAN",
    ColumnKind.INTEGER: "NUMBER(38,0)",
    ColumnKind.FLOAT: "FLOAT",
    ColumnKind.DECIMAL: "NUMBER(18,2)",
    ColumnKind.STRING: "VARCHAR",
    ColumnKind.TIMESTAMP_TZ: "TIMESTAMP_TZ",
    ColumnKind.TIMESTAMP: "TIMESTAMP_NTZ",
    ColumnKind.DATE: "DATE",
    ColumnKind.JSON: "VARCHAR",
    # JSON text: write_pandas cannot COPY a parquet list into ARRAY/VECTOR without a transform;
    # query with PARSE_JSON(col)::ARRAY or ::VECTOR(FLOAT, n)
    ColumnKind.FLOAT_ARRAY: "VARCHAR",
}

_METERING_SQL = (
    "SELECT SUM(CREDITS_USED_COMPUTE) AS credits, COUNT(*) AS hours"
    " FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY"
    " WHERE WAREHOUSE_NAME = :warehouse AND START_TIME >= :start AND START_TIME < :end"
)


class SnowflakeSession(Session):
    """One Snowflake connection for one operation; every ``cursor.execute`` is counted."""

    def __init__(self, conn: SnowflakeConnection) -> None:
        super().__init__()
        self.conn = conn

    def _cursor(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> Any:
        self.statements += 1
        cursor = self.conn.cursor()
        if params is None:
            return cursor.execute(sql)
        bound = bind_placeholders(sql, params, "pyformat")
        return cursor.execute(bound, dict(params) if isinstance(params, Mapping) else tuple(params))

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple]:
        cursor = self._cursor(sql, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def query_df(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        cursor = self._cursor(sql, params)
        try:
            frame = cursor.fetch_pandas_all()
            if frame.empty and len(frame.columns) == 0 and cursor.description:
                # zero-row results come back without columns on some connector paths
                frame = pd.DataFrame(columns=[d[0] for d in cursor.description])
            return frame
        finally:
            cursor.close()


class SnowflakeWarehouse(Warehouse):
    """Snowflake as the warehouse, loading through ``write_pandas`` on ``warehouse_name``.

    ``credit_price_usd``, ``warehouse_size`` and ``auto_suspend_s`` feed the cost model
    (:mod:`ingest_platform.warehouse.cost`); set them to the account's real values.
    ``use_warehouse`` issues ``USE WAREHOUSE`` at the start of each load so the load runs (and
    is metered) on ``warehouse_name`` whatever the connection defaulted to.
    """

    engine: ClassVar[Literal["duckdb", "snowflake"]] = "snowflake"

    def __init__(
        self,
        connection_factory: Callable[[], SnowflakeConnection],
        *,
        warehouse_name: str,
        chunk_size: int = 100_000,
        credit_price_usd: float = 3.0,
        warehouse_size: str = "XSMALL",
        auto_suspend_s: int = 60,
        use_warehouse: bool = True,
    ) -> None:
        super().__init__(chunk_size=chunk_size)
        self.connection_factory = connection_factory
        self.warehouse_name = warehouse_name.upper()
        self.credit_price_usd = credit_price_usd
        self.warehouse_size = normalise_size(warehouse_size)
        self.auto_suspend_s = auto_suspend_s
        self.use_warehouse = use_warehouse

    @property
    def warehouse_label(self) -> str:
        return self.warehouse_name

    def canonical(self, name: str) -> str:
        return name.upper()

    def _column_type(self, kind: ColumnKind) -> str:
        return _DDL_TYPES[kind]

    @contextmanager
    def _session(self) -> Iterator[Session]:
        conn = self.connection_factory()
        try:
            yield SnowflakeSession(conn)
        finally:
            try:
                conn.close()
            except Exception:  # closing a dead connection must not mask the real error
                log.debug("closing snowflake connection failed", exc_info=True)

    def _start_load(self, session: Session, query_tag: str) -> None:
        if self.use_warehouse:
            session.execute(f"USE WAREHOUSE {self.quote(self.warehouse_name)}")
        # QUERY_TAG attributes the load's queries (and credits) in QUERY_HISTORY; TIMEZONE makes
        # TIMESTAMP_TZ values created in this session carry +00:00 like the rest of the platform.
        session.execute("ALTER SESSION SET QUERY_TAG = ? TIMEZONE = 'UTC'", [query_tag[:2000]])

    def _estimate_cost(self, started: datetime, finished: datetime) -> tuple[float, float]:
        credits = estimate_credits([(started, finished)], self.warehouse_size, self.auto_suspend_s)
        return credits, credits * self.credit_price_usd

    # ---- engine hooks ------------------------------------------------------------------------

    def _bulk_stage(self, session: Session, stage: str, prepared: PreparedFrame) -> tuple[int, int]:
        import pyarrow as pa

        # Attribute lookup at call time (not `from … import write_pandas`): fakesnow.patch()
        # replaces the module attribute, so this picks up the fake without extra targets.
        from snowflake.connector import pandas_tools

        assert isinstance(session, SnowflakeSession)
        frame = prepared.frame
        arrays = [c for c, k in prepared.kinds.items() if k is ColumnKind.FLOAT_ARRAY]
        if arrays:
            frame = frame.assign(**{c: [to_json_text(v) for v in frame[c]] for c in arrays})
        nbytes = pa.Table.from_pandas(frame, preserve_index=False).nbytes
        session.statements += 1  # the COPY INTO; its CREATE STAGE and PUTs run in cloud services
        success, nchunks, nrows, _ = pandas_tools.write_pandas(
            session.conn,
            frame,
            stage,
            chunk_size=self.chunk_size,
            quote_identifiers=False,
            use_logical_type=True,
            auto_create_table=False,
        )
        if not success or nrows != len(frame):
            raise RuntimeError(f"write_pandas into {stage} loaded {nrows}/{len(frame)} rows")
        # real Snowflake reports nchunks == batches; fakesnow ignores chunk_size (always 1)
        batches = batch_count(len(frame), self.chunk_size)
        if nchunks not in (1, batches):
            log.warning("write_pandas reported %s chunks, expected %s", nchunks, batches)
        return batches, nbytes

    def _target_columns(self, session: Session, table: str) -> dict[str, str] | None:
        rows = session.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = CURRENT_SCHEMA() AND table_name = ? ORDER BY ordinal_position",
            [table.upper()],
        )
        return {str(name).upper(): str(dtype) for name, dtype in rows} or None

    def _list_tables(self, session: Session) -> list[str]:
        rows = session.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = CURRENT_SCHEMA() AND table_type = 'BASE TABLE'"
        )
        return [str(name) for (name,) in rows]

    # ---- cost ----------------------------------------------------------------------------------

    def daily_cost(self, day: date) -> CostReport:
        """A UTC day's credits for ``warehouse_name``: metered if available, else the ledger estimate.

        ``WAREHOUSE_METERING_HISTORY`` is the bill (all use of the warehouse, not only loads; up
        to 3 h late). When it is unreadable (no ACCOUNT_USAGE grant, fakesnow) or has no rows
        for the day yet, the ledger-based estimate is returned with ``source="ledger_estimate"``
        and ``note`` saying why. Statement/row figures always come from the ledger.
        """
        from snowflake.connector.errors import Error as SnowflakeError

        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        estimate = daily_cost_from_ledger(
            self.ledger_rows(start, end), day, self.credit_price_usd, self.warehouse_size, self.auto_suspend_s
        )
        try:
            metered = self.read_sql(
                _METERING_SQL,
                {"warehouse": self.warehouse_name, "start": start.isoformat(), "end": end.isoformat()},
            )
        except SnowflakeError as exc:
            reason = str(exc).splitlines()[0][:200]
            return estimate.model_copy(
                update={"note": f"WAREHOUSE_METERING_HISTORY unavailable ({reason}); ledger estimate"}
            )
        credits = metered["credits"].iloc[0] if len(metered) else None
        if credits is None or pd.isna(credits):
            return estimate.model_copy(
                update={"note": "no metering rows for the day yet (up to 3 h latency); ledger estimate"}
            )
        credits = float(credits)
        return estimate.model_copy(
            update={
                "credits": credits,
                "cost_usd": credits * self.credit_price_usd,
                "source": "metering_history",
                "note": f"metered compute credits of {self.warehouse_name}, all queries on it",
            }
        )
