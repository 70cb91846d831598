"""The code location: it validates, holds every asset/check/sensor, and loads without heavy imports."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from ingest_platform_tests.conftest import REPO_ROOT, modules_loaded_by

EXPECTED_ASSETS = {
    "raw_tiktok_posts",
    "raw_facebook_posts",
    "hashed_posts",
    "enriched_posts",
    "ORDERS",
    "dead_letters",
    "warehouse_cost",
    "cost_report",
}
EXPECTED_CHECKS = {
    ("raw_tiktok_posts", "scraper_success_rate"),
    ("raw_tiktok_posts", "dead_letter_rate"),
    ("hashed_posts", "no_raw_identifiers"),
    ("ORDERS", "order_ids_unique"),
    ("ORDERS", "dead_letter_rate"),
    ("ORDERS", "orders_reconciliation"),
    ("raw_tiktok_posts", "proxy_failure_rate"),
    ("raw_tiktok_posts", "captcha_solve_rate"),
    ("raw_tiktok_posts", "schema_drift"),
    ("ORDERS", "loader_lag"),
    ("raw_facebook_posts", "scraper_success_rate"),
    ("raw_facebook_posts", "dead_letter_rate"),
    ("warehouse_cost", "daily_cost_under_limit"),
    ("warehouse_cost", "average_batch_size"),
}


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_dagster_definitions_validate(dagster_home) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "ingest_platform.definitions"],
        cwd=REPO_ROOT,
        env={**os.environ, "INGEST_ENV": "local"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ingest_platform" in result.stdout + result.stderr


def test_every_asset_check_sensor_job_and_schedule_is_present(dagster_home) -> None:
    from ingest_platform.definitions import make_definitions

    defs = make_definitions("local")
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks >= EXPECTED_CHECKS
    assert {sensor.name for sensor in defs.sensors} >= {
        "orders_landing_sensor",
        "check_alert_sensor",
        "run_failure_alert_sensor",
        "freshness_checks_sensor",
        "orders_loader_lag_sensor",
    }
    assert {job.name for job in defs.jobs} >= {
        "tiktok_scrape_job",
        "posts_load_job",
        "facebook_posts_job",
        "orders_job",
        "dead_letter_replay_job",
        "warehouse_cost_job",
    }
    # The landing sensor retries failed loads itself (with a backoff): no instant run retries.
    assert defs.resolve_job_def("orders_job").tags["dagster/max_retries"] == "0"
    schedules = defs.get_repository_def().schedule_defs
    assert {schedule.job_name for schedule in schedules} >= {"tiktok_scrape_job", "warehouse_cost_job"}
    # loader_lag is reported by a sensor without a run (issue #14), not by a 5-minute schedule.
    assert not [job for job in defs.jobs if "loader_lag" in job.name]
    freshness = {asset for asset, name in checks if "freshness" in name}
    assert freshness == {"raw_tiktok_posts", "ORDERS"}
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {"sources", "privacy", "enrichment", "warehouse", "quality"}


def test_importing_definitions_loads_no_heavy_library(dagster_home) -> None:
    # snowflake-snowpark's *-nspkg.pth registers the empty `snowflake` namespace at interpreter start,
    # so the connector, snowpark and core are what must stay out, not the bare namespace.
    heavy = ["snowflake.", "playwright", "torch", "sentence_transformers", "transformers", "duckdb", "numba"]
    loaded = modules_loaded_by(["ingest_platform.definitions"], heavy, {**os.environ, "INGEST_ENV": "local"})
    assert loaded == {name: [] for name in heavy}, loaded


def test_prod_refuses_to_load_without_a_privacy_key(dagster_home) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PRIVACY_HMAC_KEY"}
    result = _python("import ingest_platform.definitions", {**env, "INGEST_ENV": "prod"})
    assert result.returncode != 0
    assert "PRIVACY_HMAC_KEY" in result.stderr


def test_unknown_environment_is_a_clear_error(dagster_home) -> None:
    from ingest_platform.dagster_layer.environments import resources_for

    with pytest.raises(ValueError, match="INGEST_ENV"):
        resources_for("staging")


PROD_SETTINGS = {
    "INGEST_ENV": "prod",
    "SNOWFLAKE_ACCOUNT": "myorg-myaccount",
    "SNOWFLAKE_USER": "INGEST_LOADER_SVC",
    "SNOWFLAKE_PASSWORD": "a-test-password",
    "SNOWFLAKE_DATABASE": "ANALYTICS",
    "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
    "INGEST_RAW_URI": "s3://my-bucket/ingest/raw",
    "ORDERS_LANDING_URI": "s3://my-bucket/ingest/landing/orders",
    "PROXY_LIST": "http://user:pw@gate.example.com:7000",
    "PRIVACY_HMAC_KEY": "hex:" + hashlib.sha256(b"a test key, never a real one").hexdigest(),
}


def _without_settings() -> dict[str, str]:
    prefixes = ("SNOWFLAKE_", "APIFY_", "PROXY_", "PRIVACY_", "INGEST_RAW", "ORDERS_", "TIKTOK_")
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


def test_prod_loads_with_every_setting_and_reads_secrets_through_envvars(dagster_home) -> None:
    code = (
        "import ingest_platform.definitions as d; w = d.defs.resources['warehouse']; "
        "print(w.engine, type(w.snowflake_password).__name__)"
    )
    result = _python(code, {**_without_settings(), **PROD_SETTINGS})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["snowflake", "EnvVar"]


def test_definitions_validate_in_prod_refuses_and_names_every_missing_setting(dagster_home) -> None:
    env = {**_without_settings(), "INGEST_ENV": "prod", "SNOWFLAKE_ACCOUNT": "https://xy12345.snowflakecomputing.com"}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "ingest_platform.definitions"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    lines = [line for line in output.splitlines() if "ConfigError" in line and "SNOWFLAKE_USER" in line]
    assert lines, output[-3000:]
    message = lines[-1]  # one line lists everything
    for name in (
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_USER",
        "SNOWFLAKE_DATABASE",
        "SNOWFLAKE_WAREHOUSE",
        "SNOWFLAKE_PASSWORD",
        "INGEST_RAW_URI",
        "ORDERS_LANDING_URI",
        "PROXY_LIST",
        "PRIVACY_HMAC_KEY",
    ):
        assert name in message, (name, message)
    assert "is a URL" in message


@pytest.mark.parametrize(
    "bad",
    [
        {"TIKTOK_TARGETS": "@@not a handle"},
        {"ORDERS_BUFFER_COUNT_RECORDS": "lots"},
        {"INGEST_ENV": "staging"},
        {"PROXY_LIST": "http://user:pw@:7000"},
    ],
)
def test_a_malformed_local_setting_refuses_to_load_with_one_line(bad: dict[str, str], dagster_home) -> None:
    env = {**_without_settings(), "INGEST_ENV": "local", **bad}
    result = _python("import ingest_platform.definitions", env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ingest_platform.settings.ConfigError: ")
    assert next(iter(bad)) in last


def test_orders_job_runs_the_load_and_its_own_checks_only(dagster_home) -> None:
    # Freshness and loader_lag have their own sensors; inside every load run they were two more
    # step processes that could never fail (a load is always fresh).
    from ingest_platform.definitions import make_definitions

    job = make_definitions("local").resolve_job_def("orders_job")
    # The ORDERS checks live in the ORDERS step (check_specs); the ORDERS_loader_lag and
    # freshness_check steps are gone. test_dagster_layer_warehouse runs orders_job and reads
    # orders_reconciliation from it.
    assert {node.name for node in job.graph.node_defs} == {"ORDERS", "dead_letters"}
