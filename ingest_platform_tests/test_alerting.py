"""Alert rules and delivery, without Dagster."""

from __future__ import annotations

from ingest_platform.alerting import (
    Alert,
    CheckEvaluation,
    WebhookSender,
    decide_check_alerts,
    deliver,
    run_failure_alert,
)

UI = "http://127.0.0.1:3000"


def _evaluation(record_id: int, passed: bool, **extra) -> CheckEvaluation:
    return CheckEvaluation(
        asset="raw_tiktok_posts", check="scraper_success_rate", record_id=record_id, passed=passed,
        run_id=f"run-{record_id}", value=0.62, threshold=0.95, **extra,
    )  # fmt: skip


def test_one_alert_per_failure_then_one_recovery() -> None:
    alerts, state = decide_check_alerts([_evaluation(1, passed=True)], {}, UI)
    assert alerts == []  # a check that has always passed says nothing
    alerts, state = decide_check_alerts([_evaluation(2, passed=False)], state, UI)
    assert [a.kind for a in alerts] == ["check_failed"]
    alerts, state = decide_check_alerts([_evaluation(2, passed=False)], state, UI)
    assert alerts == []  # same record seen again: no repeat
    alerts, state = decide_check_alerts([_evaluation(3, passed=False)], state, UI)
    assert alerts == []  # still failing: no second alert
    alerts, state = decide_check_alerts([_evaluation(4, passed=True)], state, UI)
    assert [a.kind for a in alerts] == ["check_recovered"]
    alerts, _ = decide_check_alerts([_evaluation(5, passed=True)], state, UI)
    assert alerts == []


def test_first_ever_evaluation_failing_alerts() -> None:
    alerts, state = decide_check_alerts([_evaluation(7, passed=False)], {}, UI)
    assert len(alerts) == 1 and state["raw_tiktok_posts.scraper_success_rate"] == {
        "record_id": 7,
        "failing": True,
    }


def test_alert_names_asset_check_value_threshold_and_run_link() -> None:
    (alert,), _ = decide_check_alerts([_evaluation(9, passed=False, partition="2026-11-28")], {}, UI)
    assert "raw_tiktok_posts: scraper_success_rate failed" in alert.text
    assert "value 0.62" in alert.text and "threshold 0.95" in alert.text
    assert alert.run_url == "http://127.0.0.1:3000/runs/run-9" and alert.run_url in alert.text
    assert "2026-11-28" in alert.text


def test_secrets_never_reach_an_alert() -> None:
    evaluation = _evaluation(
        3, passed=False, description="proxy http://bob:s3cr3tpass@gw.example.net:7000 died"
    )
    (alert,), _ = decide_check_alerts([evaluation], {}, UI)
    assert "s3cr3tpass" not in alert.text and "s3cr3tpass" not in str(alert.payload())
    failed = run_failure_alert(
        "tiktok_posts_job", "r1", "connect to http://u:topsecret@10.0.0.1:80 failed", UI
    )
    assert "topsecret" not in failed.text


def test_webhook_delivery_and_a_dead_channel_is_reported_not_raised(webhook) -> None:
    alert = Alert(kind="check_failed", title="t", text="hello", asset="ORDERS")
    dead = WebhookSender("http://127.0.0.1:9/nothing-listens-here", timeout_s=2)
    problems = deliver([alert], [dead, WebhookSender(webhook.url)])
    assert len(problems) == 1 and problems[0].startswith("webhook:")
    expected_alert = {"kind": "check_failed", "title": "t", "text": "hello", "asset": "ORDERS"}
    assert webhook.received == [{"text": "hello", "alert": expected_alert}]


def test_checks_failing_in_the_same_run_are_one_alert_and_recover_separately() -> None:
    success = _evaluation(1, passed=False)
    proxy = CheckEvaluation(
        asset="raw_tiktok_posts", check="proxy_failure_rate", record_id=2, passed=False,
        run_id="run-1", severity="WARN", value=0.4, threshold=0.1,
    )  # fmt: skip
    success = CheckEvaluation(**{**success.__dict__, "run_id": "run-1"})
    alerts, state = decide_check_alerts([success, proxy], {}, UI)
    assert len(alerts) == 1
    assert alerts[0].checks == ["scraper_success_rate", "proxy_failure_rate"]
    assert alerts[0].title.startswith("[ERROR]")  # the most severe check leads
    assert "value 0.4, threshold 0.1" in alerts[0].text and "value 0.62, threshold 0.95" in alerts[0].text
    healthy = CheckEvaluation(**{**success.__dict__, "record_id": 3, "run_id": "run-2", "passed": True})
    still_bad = CheckEvaluation(**{**proxy.__dict__, "record_id": 4, "run_id": "run-2"})
    alerts, _ = decide_check_alerts([healthy, still_bad], state, UI)
    assert [(a.kind, a.checks) for a in alerts] == [("check_recovered", ["scraper_success_rate"])]
