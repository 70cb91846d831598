"""Snowflake-specific behaviour, on fakesnow patch mode (REFERENCE §7).

Lazy imports, the ``write_pandas`` call (patched through the module attribute, no extra
targets), QUERY_TAG / USE WAREHOUSE per load, upper-case identifiers, per-load cost estimates
and the metering-history → ledger-estimate fallback of ``daily_cost``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fakesnow  # the test extra: missing means failing, not skipping
import pandas as pd
import pytest

from ingest_platform.warehouse import SnowflakeWarehouse
from ingest_platform.warehouse.cost import MIN_BILLED_SECONDS
from ingest_platform.warehouse.snowflake_warehouse import (
    FAKESNOW_EXTRA_TARGETS,
    FAKESNOW_NOP_REGEXES,
    SnowflakeSession,
)
from ingest_platform_tests.conftest import modules_loaded_by, rsa_pem

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # fakesnow's arrow-copy notice

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def wh() -> Iterator[SnowflakeWarehouse]:
    import snowflake.connector

    with fakesnow.patch(extra_targets=list(FAKESNOW_EXTRA_TARGETS), nop_regexes=list(FAKESNOW_NOP_REGEXES)):
        yield SnowflakeWarehouse(
            lambda: snowflake.connector.connect(database="TEST_DB", schema="PUBLIC"),
            warehouse_name="load_wh",
            chunk_size=2,
            credit_price_usd=2.0,
            warehouse_size="SMALL",
            auto_suspend_s=60,
        )


@pytest.fixture
def sql_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement a SnowflakeSession sends, as written (before placeholder binding)."""
    sent: list[str] = []
    original = SnowflakeSession._cursor

    def spy(self: SnowflakeSession, sql: str, params: Any) -> Any:
        sent.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(SnowflakeSession, "_cursor", spy)
    return sent


def test_importing_the_module_does_not_import_snowflake_or_duckdb() -> None:
    heavy = ["snowflake.connector", "duckdb", "dagster", "fakesnow"]
    loaded = modules_loaded_by(
        ["ingest_platform.warehouse", "ingest_platform.warehouse.snowflake_warehouse"], heavy
    )
    assert loaded == {name: [] for name in heavy}, loaded


def test_loads_go_through_the_patched_write_pandas(wh: SnowflakeWarehouse) -> None:
    from snowflake.connector import pandas_tools

    frame = pd.DataFrame({"order_id": ["o1", "o2", "o3"], "created_at": pd.Timestamp("2024-05-01", tz="UTC")})
    result = wh.merge("ORDERS", frame, key_columns=["order_id"], query_tag="orders")

    write_pandas = pandas_tools.write_pandas  # fakesnow's MagicMock (standard target)
    assert write_pandas.call_count == 1
    kwargs = write_pandas.call_args.kwargs
    assert kwargs["use_logical_type"] is True
    assert kwargs["quote_identifiers"] is False
    assert kwargs["chunk_size"] == 2
    assert kwargs["auto_create_table"] is False
    staged = write_pandas.call_args.args[1]
    assert list(staged.columns) == ["ORDER_ID", "CREATED_AT"]  # upper-case: unquoted semantics
    assert write_pandas.call_args.args[2].startswith("_STG_ORDERS_")
    # fakesnow ignores chunk_size; the loader counts the batches itself
    assert result.batches == 2


def test_every_load_sets_warehouse_and_query_tag_and_uses_a_temporary_stage(
    wh: SnowflakeWarehouse, sql_log: list[str]
) -> None:
    wh.replace_partition(
        "hashed_posts",
        pd.DataFrame({"post_id": ["a"], "day": ["2024-05-01"]}),
        partition_column="day",
        partition_value="2024-05-01",
        query_tag="posts:2024-05-01",
    )
    assert sql_log[0] == 'USE WAREHOUSE "LOAD_WH"'
    assert sql_log[1].startswith("ALTER SESSION SET QUERY_TAG = ?")
    creates = [s for s in sql_log if s.startswith("CREATE")]
    assert creates[0].startswith('CREATE TEMPORARY TABLE "_STG_HASHED_POSTS_')
    assert any(s.startswith('CREATE TABLE IF NOT EXISTS "HASHED_POSTS"') for s in creates)
    assert "BEGIN TRANSACTION" in sql_log
    assert "COMMIT" in sql_log
    assert any(s.startswith('DROP TABLE IF EXISTS "_STG_HASHED_POSTS_') for s in sql_log)


def test_identifiers_are_stored_upper_case(wh: SnowflakeWarehouse) -> None:
    wh.merge(
        "enriched_posts",
        pd.DataFrame({"post_id": ["a"], "Topic": ["x"]}),
        key_columns=["post_id"],
        query_tag="t",
    )
    tables = wh.read_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() ORDER BY 1"
    )
    assert tables["table_name"].tolist() == ["ENRICHED_POSTS", "LOAD_LEDGER"]
    columns = wh.read_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        ["ENRICHED_POSTS"],
    )
    assert columns["column_name"].tolist() == ["POST_ID", "TOPIC"]
    assert wh.list_tables() == ["enriched_posts", "load_ledger"]


def test_each_load_carries_a_cold_start_cost_estimate(wh: SnowflakeWarehouse) -> None:
    result = wh.merge("ORDERS", pd.DataFrame({"order_id": ["o1"]}), key_columns=["order_id"], query_tag="t")
    # SMALL = 2 credits/h; a sub-second load on a cold warehouse bills 60 s + idle until suspend
    assert result.estimated_credits >= 2 * MIN_BILLED_SECONDS / 3600
    assert result.estimated_credits == pytest.approx(2 * (result.seconds + 60) / 3600, rel=0.05)
    assert result.estimated_cost_usd == pytest.approx(result.estimated_credits * 2.0)
    assert (result.engine, result.warehouse) == ("snowflake", "LOAD_WH")


def test_daily_cost_falls_back_to_the_ledger_without_metering_history(wh: SnowflakeWarehouse) -> None:
    for _ in range(2):
        wh.merge(
            "ORDERS", pd.DataFrame({"order_id": ["o1", "o2", "o3"]}), key_columns=["order_id"], query_tag="t"
        )
    report = wh.daily_cost(datetime.now(UTC).date())
    assert report.source == "ledger_estimate"
    assert "WAREHOUSE_METERING_HISTORY unavailable" in report.note
    assert (report.loads, report.rows) == (2, 6)
    # two loads seconds apart share one resume: cheaper than the two cold-start estimates
    ledger = wh.ledger_rows(datetime(2000, 1, 1, tzinfo=UTC))
    assert 2 * 60 / 3600 <= report.credits < ledger["estimated_credits"].sum()
    assert report.cost_usd == pytest.approx(report.credits * 2.0)


def test_daily_cost_prefers_metering_history_when_readable(
    wh: SnowflakeWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh.merge("ORDERS", pd.DataFrame({"order_id": ["o1"]}), key_columns=["order_id"], query_tag="t")
    seen: dict[str, Any] = {}

    def metering(sql: str, params: Any = None) -> pd.DataFrame:
        seen.update(sql=sql, params=params)
        return pd.DataFrame({"credits": [0.75], "hours": [1]})

    monkeypatch.setattr(wh, "read_sql", metering)
    report = wh.daily_cost(datetime.now(UTC).date())
    assert "WAREHOUSE_METERING_HISTORY" in seen["sql"]
    assert seen["params"]["warehouse"] == "LOAD_WH"
    assert (report.source, report.credits, report.cost_usd) == ("metering_history", 0.75, 1.5)
    assert report.rows == 1  # volumes still come from the ledger

    monkeypatch.setattr(
        wh, "read_sql", lambda sql, params=None: pd.DataFrame({"credits": [None], "hours": [0]})
    )
    late = wh.daily_cost(datetime.now(UTC).date())
    assert late.source == "ledger_estimate"
    assert "latency" in late.note


# ---- authentication: password or key pair, exactly one --------------------------------------------


@pytest.fixture
def connect_calls() -> Iterator[list[dict[str, Any]]]:
    """The kwargs of every ``snowflake.connector.connect`` call, each answered by fakesnow."""
    import snowflake.connector

    calls: list[dict[str, Any]] = []
    with fakesnow.patch(extra_targets=list(FAKESNOW_EXTRA_TARGETS), nop_regexes=list(FAKESNOW_NOP_REGEXES)):
        fake_connect = snowflake.connector.connect

        def recording_connect(**kwargs: Any) -> Any:
            calls.append(kwargs)
            return fake_connect(database=kwargs["database"], schema=kwargs["schema"])

        # restored before fakesnow unpatches, so fakesnow puts the real connect back
        snowflake.connector.connect = recording_connect
        try:
            yield calls
        finally:
            snowflake.connector.connect = fake_connect


def _snowflake_resource(**auth: str | None) -> Any:
    from ingest_platform.dagster_layer.resources import WarehouseResource

    return WarehouseResource(
        engine="snowflake",
        snowflake_account="myorg-myaccount",
        snowflake_user="INGEST_LOADER_SVC",
        snowflake_role="INGEST_LOADER",
        snowflake_database="TEST_DB",
        snowflake_schema="PUBLIC",
        snowflake_warehouse="LOAD_WH",
        **auth,
    )


def test_an_encrypted_private_key_reaches_connect_as_der_bytes(connect_calls: list[dict[str, Any]]) -> None:
    pem, der = rsa_pem("a passphrase")
    warehouse = _snowflake_resource(
        snowflake_private_key=pem, snowflake_private_key_passphrase="a passphrase"
    ).open()
    assert warehouse.read_sql("SELECT 1 AS one")["one"].tolist() == [1]
    assert connect_calls, "connect was never called"
    kwargs = connect_calls[0]
    assert kwargs["private_key"] == der
    assert "password" not in kwargs and "private_key_file_pwd" not in kwargs
    assert (kwargs["account"], kwargs["user"], kwargs["warehouse"]) == (
        "myorg-myaccount",
        "INGEST_LOADER_SVC",
        "LOAD_WH",
    )


def test_a_key_file_and_a_password_each_authenticate(
    connect_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    pem, der = rsa_pem(None)
    path = tmp_path / "rsa_key.p8"
    path.write_text(pem)
    _snowflake_resource(snowflake_private_key_path=str(path)).open().read_sql("SELECT 1 AS one")
    _snowflake_resource(snowflake_password="a-password").open().read_sql("SELECT 1 AS one")
    assert connect_calls[0]["private_key"] == der and "password" not in connect_calls[0]
    assert connect_calls[1]["password"] == "a-password" and "private_key" not in connect_calls[1]


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ({"snowflake_private_key_passphrase": "WrongPassphrase1"}, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        ({"snowflake_private_key_passphrase": None}, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        ({"snowflake_password": "AlsoAPassword1"}, "exactly one"),
    ],
)
def test_a_key_that_does_not_load_is_a_one_line_failure_naming_the_setting(
    connect_calls: list[dict[str, Any]], auth: dict[str, str | None], named: str
) -> None:
    from dagster import Failure

    pem, _ = rsa_pem("the right passphrase")
    with pytest.raises(Failure) as raised:
        _snowflake_resource(snowflake_private_key=pem, **auth).open()
    message = raised.value.description or ""
    assert named in message and "\n" not in message
    assert "WrongPassphrase1" not in message and "AlsoAPassword1" not in message and "BEGIN" not in message
    assert connect_calls == []
