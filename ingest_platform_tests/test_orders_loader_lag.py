"""ORDERS loader_lag: evaluated by a sensor without a run (issue #14) and blind to nothing (issue #11).

Old behaviour this guards against: a 5-minute schedule added 288 runs a day, the check counted
only records (above 10,000), so a file stuck after failed loads, a gzip file and a file of an
unknown format never made it fail.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest_platform_tests.orders_harness import OrdersWorld

pytestmark = pytest.mark.filterwarnings("ignore")

RECORD = {"order_id": "L-1", "created_at": "2026-11-27T10:00:00Z", "amount": 5.0}


@pytest.fixture
def world() -> Iterator[OrdersWorld]:
    root = Path(tempfile.mkdtemp(prefix="loader_lag_"))
    world = OrdersWorld(root)
    try:
        yield world
    finally:
        world.close()
        shutil.rmtree(root, ignore_errors=True)


def evaluate_lag(world: OrdersWorld):
    """One tick of the loader-lag sensor; returns (tick data, the latest loader_lag evaluation)."""
    from dagster import AssetCheckKey, AssetKey, build_sensor_context

    sensor = world.defs.get_sensor_def("orders_loader_lag_sensor")
    context = build_sensor_context(instance=world.instance, resources=dict(world.defs.resources))
    data = sensor.evaluate_tick(context)
    record = world.instance.get_latest_asset_check_evaluation_record(
        AssetCheckKey(AssetKey("ORDERS"), "loader_lag")
    )
    assert record is not None, "the sensor recorded no loader_lag evaluation"
    return data, record.evaluation


def numbers(evaluation) -> dict[str, float]:
    return {key: value.value for key, value in evaluation.metadata.items()}


def test_the_sensor_records_the_check_without_a_run_and_counts_gzip_files(world: OrdersWorld) -> None:
    now = datetime.now(UTC)
    world.write_file("orders.jsonl.gz", gzip.compress((json.dumps(RECORD) + "\n").encode()), mtime=now)
    csv = b"order_id,created_at,amount\nL-2,2026-11-27,1.5\n"
    world.write_file("orders.csv.gz", gzip.compress(csv), mtime=now)
    runs_before = world.instance.get_runs_count()

    data, evaluation = evaluate_lag(world)

    assert not data.run_requests, "loader_lag must not launch a run"
    assert world.instance.get_runs_count() == runs_before
    assert numbers(evaluation)["pending_files"] == 2
    assert numbers(evaluation)["value"] == 2  # one record in each gzip file
    assert evaluation.passed  # landed a moment ago: no lag yet


def test_a_file_failing_to_load_is_counted_and_fails_the_check_with_error_severity(
    world: OrdersWorld,
) -> None:
    from dagster import AssetCheckSeverity

    world.write_file("stuck.jsonl", (json.dumps(RECORD) + "\n").encode())
    world.break_warehouse()
    for _ in range(4):  # backoff 0 in the harness: each tick is a new attempt, and each fails
        world.tick()
    assert [outcome.success for outcome in world.runs] and not any(o.success for o in world.runs)

    _, evaluation = evaluate_lag(world)

    figures = numbers(evaluation)
    assert figures["waiting_for_retry"] == 1
    assert figures["failed_loads_max"] >= 3
    assert figures["value"] == 1  # 1 record: far below 10,000, and still a failure
    assert not evaluation.passed
    assert evaluation.severity == AssetCheckSeverity.ERROR
    assert "failed" in (evaluation.description or "")


def test_an_old_pending_file_and_an_unknown_format_fail_the_check(world: OrdersWorld) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=1)
    world.write_file("forgotten.jsonl", (json.dumps(RECORD) + "\n").encode(), mtime=long_ago)
    world.write_file("orders.xlsx", b"PK\x03\x04 not an order format")

    _, evaluation = evaluate_lag(world)

    figures = numbers(evaluation)
    assert figures["unrecognised_files"] == 1
    assert figures["pending_files"] == 2
    assert figures["oldest_pending_age_s"] > figures["max_pending_age_s"]
    assert not evaluation.passed
    assert "unknown format" in evaluation.description and "waited" in evaluation.description


def test_a_healthy_landing_zone_passes(world: OrdersWorld) -> None:
    _, evaluation = evaluate_lag(world)
    assert evaluation.passed
    assert numbers(evaluation)["pending_files"] == 0
    assert os.listdir(world.landing) == []


def test_check_alert_sensor_alerts_on_the_runless_evaluation(world: OrdersWorld, webhook) -> None:
    """The evaluation has no run, and the alert sensor still sees it and sends one message."""
    from dagster import build_sensor_context

    from ingest_platform.dagster_layer.alerts import AlertsResource

    long_ago = datetime.now(UTC) - timedelta(days=1)
    world.write_file("forgotten.jsonl", (json.dumps(RECORD) + "\n").encode(), mtime=long_ago)
    _, evaluation = evaluate_lag(world)
    assert not evaluation.passed

    alert_sensor = world.defs.get_sensor_def("check_alert_sensor")
    resources = {**world.defs.resources, "alerts": AlertsResource(webhook_url=webhook.url)}
    context = build_sensor_context(instance=world.instance, resources=resources, definitions=world.defs)
    alert_sensor.evaluate_tick(context)

    texts = [json.dumps(body) for body in webhook.received]
    assert len(texts) == 1 and "loader_lag" in texts[0], texts
