"""The alert sensors against real check evaluations stored in a Dagster instance."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    Config,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
    build_sensor_context,
    materialize,
)

from ingest_platform.dagster_layer.alerts import AlertsResource, check_alert_sensor


class Measured(Config):
    success_rate: float


def _success_rate_check(check_name: str, success_rate: float) -> AssetCheckResult:
    """An ERROR-severity check with the value/threshold metadata the alert sensor reads."""
    return AssetCheckResult(
        check_name=check_name,
        passed=success_rate >= 0.95,
        severity=AssetCheckSeverity.ERROR,
        metadata={"value": MetadataValue.float(success_rate), "threshold": MetadataValue.float(0.95)},
    )


@asset(check_specs=[AssetCheckSpec("scraper_success_rate", asset="scraped")])
def scraped(config: Measured) -> MaterializeResult:
    return MaterializeResult(check_results=[_success_rate_check("scraper_success_rate", config.success_rate)])


def _run(instance: DagsterInstance, rate: float) -> None:
    result = materialize(
        [scraped], instance=instance, run_config={"ops": {"scraped": {"config": {"success_rate": rate}}}}
    )
    assert result.success


def test_check_alert_sensor_sends_one_alert_then_one_recovery(webhook) -> None:
    instance = DagsterInstance.ephemeral()
    defs = Definitions(assets=[scraped], sensors=[check_alert_sensor])
    alerts = AlertsResource(webhook_url=webhook.url, ui_base_url="http://127.0.0.1:3999")
    cursor = None

    def tick() -> None:
        nonlocal cursor
        context = build_sensor_context(
            instance=instance, definitions=defs, cursor=cursor, resources={"alerts": alerts}
        )
        check_alert_sensor(context)
        cursor = context.cursor

    _run(instance, 0.99)
    tick()
    assert webhook.received == []
    _run(instance, 0.41)
    tick()
    tick()  # evaluating again without a new result sends nothing
    _run(instance, 0.38)
    tick()  # still failing: no second alert
    assert len(webhook.received) == 1
    alert = webhook.received[0]["alert"]
    assert alert["kind"] == "check_failed" and alert["asset"] == "scraped"
    assert alert["value"] == 0.41 and alert["threshold"] == 0.95
    assert alert["run_url"].startswith("http://127.0.0.1:3999/runs/")
    _run(instance, 0.97)
    tick()
    assert [m["alert"]["kind"] for m in webhook.received] == ["check_failed", "check_recovered"]


@asset(check_specs=[AssetCheckSpec("gate", asset="upstream", blocking=True)])
def upstream(config: Measured) -> MaterializeResult:
    return MaterializeResult(check_results=[_success_rate_check("gate", config.success_rate)])


@asset(deps=[upstream], check_specs=[AssetCheckSpec("downstream_check", asset="downstream")])
def downstream() -> MaterializeResult:
    return MaterializeResult(check_results=[AssetCheckResult(check_name="downstream_check", passed=True)])


def test_a_blocked_run_leaves_planned_checks_and_the_sensor_still_alerts(webhook) -> None:
    # The blocking check fails, so downstream never runs and its check stays "planned" forever.
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [upstream, downstream],
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"upstream": {"config": {"success_rate": 0.2}}}},
    )
    assert not result.success
    defs = Definitions(assets=[upstream, downstream], sensors=[check_alert_sensor])
    context = build_sensor_context(
        instance=instance, definitions=defs, resources={"alerts": AlertsResource(webhook_url=webhook.url)}
    )
    check_alert_sensor(context)
    assert [m["alert"]["checks"] for m in webhook.received] == [["gate"]]


def test_a_tick_during_a_run_waits_for_the_run_so_its_failures_are_one_message(webhook) -> None:
    """A sensor tick between two check evaluations of one run must not split them."""
    instance = DagsterInstance.ephemeral()
    alerts = AlertsResource(webhook_url=webhook.url)
    cursors: list[str | None] = [None]

    @asset(check_specs=[AssetCheckSpec("first", asset="slow"), AssetCheckSpec("second", asset="slow")])
    def slow():
        yield MaterializeResult()
        yield AssetCheckResult(check_name="first", passed=False, metadata={"value": 0.1, "threshold": 0.9})
        tick()  # the daemon's sensor runs while this run is still going
        yield AssetCheckResult(check_name="second", passed=False, metadata={"value": 0.2, "threshold": 0.1})

    defs = Definitions(assets=[slow], sensors=[check_alert_sensor])

    def tick() -> None:
        context = build_sensor_context(
            instance=instance, definitions=defs, cursor=cursors[-1], resources={"alerts": alerts}
        )
        check_alert_sensor(context)
        cursors.append(context.cursor)

    assert materialize([slow], instance=instance).success  # non-blocking checks: the run succeeds
    assert webhook.received == []  # the tick inside the run held both back
    tick()
    assert len(webhook.received) == 1
    alert = webhook.received[0]["alert"]
    assert alert["kind"] == "check_failed" and alert["checks"] == ["first", "second"]
