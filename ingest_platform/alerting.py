"""Alerts for failing checks and runs: when to send, what to say, where to send it (no Dagster here).

The rules: one alert when a check goes from passing (or never seen) to failing, one recovery
message when it passes again, nothing while it stays the same. Changes from the same asset and
run are one message: a blocked scrape fails its success check and, often, its proxy check too,
and that is one problem to page about. Messages name the asset, each check, the measured value
and the threshold, and link to the run; they are passed through ``redact_secrets`` so a
credential that slipped into metadata never reaches a channel.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ingest_platform.scraping.proxy_config import redact_secrets

logger = logging.getLogger(__name__)

AlertKind = Literal["check_failed", "check_recovered", "run_failed"]


@dataclass(frozen=True)
class CheckEvaluation:
    """The latest evaluation of one asset check, as the sensor reads it from the instance."""

    asset: str
    check: str
    record_id: int
    passed: bool
    run_id: str
    severity: str = "ERROR"
    value: float | None = None
    threshold: float | None = None
    partition: str | None = None
    description: str | None = None

    @property
    def key(self) -> str:
        return f"{self.asset}.{self.check}"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    title: str
    text: str
    asset: str | None = None
    check: str | None = None
    checks: list[str] | None = None
    run_id: str | None = None
    run_url: str | None = None
    value: float | None = None
    threshold: float | None = None
    severity: str | None = None

    def payload(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


def _format_number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def run_url(ui_base_url: str, run_id: str) -> str:
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}"


def _check_line(evaluation: CheckEvaluation) -> str:
    return (
        f"{evaluation.check} [{evaluation.severity}] value {_format_number(evaluation.value)}, "
        f"threshold {_format_number(evaluation.threshold)}"
    )


def check_alert(evaluations: Sequence[CheckEvaluation], kind: AlertKind, ui_base_url: str) -> Alert:
    """One message for the checks of one asset and run that changed state the same way."""
    first = max(evaluations, key=lambda e: e.severity == "ERROR")  # the most severe leads
    url = run_url(ui_base_url, first.run_id)
    partition = f" (partition {first.partition})" if first.partition else ""
    names = ", ".join(e.check for e in evaluations)
    if kind == "check_failed":
        title = f"[{first.severity}] {first.asset}: {names} failed{partition}"
    else:
        title = f"[RECOVERED] {first.asset}: {names} passes again{partition}"
    details = "; ".join(_check_line(e) for e in evaluations)
    text = f"{title}: {details}. Run: {url}"
    descriptions = [e.description for e in evaluations if e.description and kind == "check_failed"]
    if descriptions:
        text += " — " + " ".join(descriptions)
    return Alert(
        kind=kind,
        title=redact_secrets(title),
        text=redact_secrets(text),
        asset=first.asset,
        check=first.check,
        checks=[e.check for e in evaluations],
        run_id=first.run_id,
        run_url=url,
        value=first.value,
        threshold=first.threshold,
        severity=first.severity,
    )


def decide_check_alerts(
    evaluations: Iterable[CheckEvaluation], state: Mapping[str, Mapping[str, Any]], ui_base_url: str
) -> tuple[list[Alert], dict[str, dict[str, Any]]]:
    """Alerts for state changes since ``state`` (the sensor's cursor), and the new state.

    ``state`` maps a check key to ``{"record_id": int, "failing": bool}``. A record already seen
    is skipped, so re-evaluating the sensor never sends the same alert twice. Changes of the same
    asset, run and direction are grouped into one alert.
    """
    new_state = {key: dict(value) for key, value in state.items()}
    groups: dict[tuple[str, str, AlertKind], list[CheckEvaluation]] = {}
    for evaluation in evaluations:
        previous = state.get(evaluation.key)
        if previous is not None and previous.get("record_id") == evaluation.record_id:
            continue
        was_failing = bool(previous and previous.get("failing"))
        kind: AlertKind | None = None
        if not evaluation.passed and not was_failing:
            kind = "check_failed"
        elif evaluation.passed and was_failing:
            kind = "check_recovered"
        if kind is not None:
            groups.setdefault((evaluation.asset, evaluation.run_id, kind), []).append(evaluation)
        new_state[evaluation.key] = {"record_id": evaluation.record_id, "failing": not evaluation.passed}
    alerts = [check_alert(group, kind, ui_base_url) for (_, _, kind), group in groups.items()]
    return alerts, new_state


def run_failure_alert(job_name: str, run_id: str, error: str | None, ui_base_url: str) -> Alert:
    url = run_url(ui_base_url, run_id)
    detail = f": {error.strip().splitlines()[0][:300]}" if error and error.strip() else ""
    title = f"[ERROR] run of {job_name} failed"
    return Alert(
        kind="run_failed",
        title=title,
        text=redact_secrets(f"{title}{detail}. Run: {url}"),
        run_id=run_id,
        run_url=url,
        severity="ERROR",
    )


class AlertSender(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class WebhookSender:
    """POSTs ``{"text": …, "alert": {…}}`` as JSON: works for generic receivers and Slack-style hooks."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self._url = url
        self._timeout_s = timeout_s

    def send(self, alert: Alert) -> None:
        body = json.dumps({"text": alert.text, "alert": alert.payload()}).encode()
        request = urllib.request.Request(
            self._url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
            response.read()


class SlackSender:
    """Posts to a Slack channel with dagster-slack's client (slack_sdk, imported when used)."""

    name = "slack"

    def __init__(self, token: str, channel: str) -> None:
        self._token = token
        self._channel = channel

    def send(self, alert: Alert) -> None:
        from slack_sdk import WebClient

        WebClient(token=self._token).chat_postMessage(channel=self._channel, text=alert.text)


def deliver(alerts: Sequence[Alert], senders: Sequence[AlertSender]) -> list[str]:
    """Send every alert through every sender; a failing channel is reported, never raised.

    Returns the problems (already redacted) so the sensor can log them.
    """
    problems: list[str] = []
    for alert in alerts:
        for sender in senders:
            try:
                sender.send(alert)
            except Exception as error:  # one dead channel must not silence the others
                problems.append(redact_secrets(f"{sender.name}: {type(error).__name__}: {error}"))
    return problems
