"""Alert sensors: failing/recovered asset checks and failed runs, to Slack and/or a JSON webhook.

Dagster OSS sends nothing when a check fails, so a cursor sensor reads each check's latest
evaluation and alerts on state changes (``ingest_platform.alerting`` holds the rules).

The webhook URL (its path or query is the token) and the Slack token are secrets: they reach
``AlertsResource`` as ``EnvVar`` only, and every delivery problem is passed through
``AlertsResource.redact`` before it is logged, since the sensor log is stored in the event log.
"""

import json
from urllib.parse import quote, urlsplit

from dagster import (
    AssetCheckKey,
    ConfigurableResource,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from pydantic import Field

from ingest_platform.alerting import (
    AlertSender,
    CheckEvaluation,
    SlackSender,
    WebhookSender,
    decide_check_alerts,
    deliver,
    run_failure_alert,
)
from ingest_platform.scraping.proxy_config import redact_secrets


class AlertsResource(ConfigurableResource):
    """Where alerts go. Both channels optional; with neither, alerts only appear in the sensor log."""

    webhook_url: str | None = Field(default=None, description="ALERT_WEBHOOK_URL: generic JSON webhook.")
    slack_token: str | None = Field(default=None, description="ALERT_SLACK_TOKEN (secret).")
    slack_channel: str | None = Field(default=None, description="ALERT_SLACK_CHANNEL, e.g. #data-alerts.")
    ui_base_url: str = Field(default="http://127.0.0.1:3000", description="DAGSTER_UI_URL, for run links.")

    def redact(self, text: str) -> str:
        """``text`` without the webhook URL's secret parts or the Slack token (in any spelling).

        An HTTP client's error may quote the whole URL (``unknown url type: '…'``) or a response
        may echo the token; the sensor log would then keep it in the event log for good.
        """
        secrets: list[str] = []
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            secrets += [self.webhook_url, parts.query, parts.path if len(parts.path) > 1 else ""]
        if self.slack_token:
            secrets.append(self.slack_token)
        secrets += [quote(secret, safe="") for secret in secrets if secret]
        return redact_secrets(text, secrets=[secret for secret in secrets if len(secret) >= 4])

    def senders(self) -> list[AlertSender]:
        senders: list[AlertSender] = []
        if self.webhook_url:
            senders.append(WebhookSender(self.webhook_url))
        if self.slack_token and self.slack_channel:
            senders.append(SlackSender(self.slack_token, self.slack_channel))
        return senders


def _number(metadata: dict, key: str) -> float | None:
    entry = metadata.get(key)
    value = getattr(entry, "value", entry)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def latest_check_evaluations(instance, check_keys: list[AssetCheckKey]) -> list[CheckEvaluation]:
    evaluations = []
    for key in check_keys:
        record = instance.get_latest_asset_check_evaluation_record(key)
        # A planned check (its run failed or skipped before evaluating it) is not a verdict:
        # keep the last known state rather than read an evaluation that does not exist.
        if record is None or record.status.value not in ("SUCCEEDED", "FAILED"):
            continue
        evaluation = record.evaluation
        if evaluation is None or not hasattr(evaluation, "passed"):
            continue
        metadata = dict(evaluation.metadata or {})
        evaluations.append(
            CheckEvaluation(
                asset=key.asset_key.to_user_string(),
                check=key.name,
                record_id=record.id,
                passed=evaluation.passed,
                run_id=record.run_id,
                severity=evaluation.severity.value if evaluation.severity else "ERROR",
                value=_number(metadata, "value"),
                threshold=_number(metadata, "threshold"),
                partition=record.partition,
                description=evaluation.description,
            )
        )
    return evaluations


def from_finished_runs(instance, evaluations: list[CheckEvaluation]) -> list[CheckEvaluation]:
    """Only evaluations whose run is over: a run's checks are decided together, so a sensor tick
    that falls between two evaluations of one run does not split one problem into two messages.
    The held-back evaluations stay unseen in the cursor and are picked up on a later tick."""
    finished: dict[str | None, bool] = {}
    kept = []
    for evaluation in evaluations:
        if evaluation.run_id not in finished:
            run = instance.get_run_by_id(evaluation.run_id) if evaluation.run_id else None
            finished[evaluation.run_id] = run is None or run.is_finished
        if finished[evaluation.run_id]:
            kept.append(evaluation)
    return kept


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def check_alert_sensor(context: SensorEvaluationContext, alerts: AlertsResource):
    """One alert when a check starts failing, one recovery message when it passes again."""
    state = json.loads(context.cursor) if context.cursor else {}
    check_keys = sorted(context.repository_def.asset_graph.asset_check_keys, key=str)
    evaluations = from_finished_runs(context.instance, latest_check_evaluations(context.instance, check_keys))
    to_send, new_state = decide_check_alerts(evaluations, state, alerts.ui_base_url)
    problems = deliver(to_send, alerts.senders())
    for alert in to_send:
        context.log.info(alert.text)
    for problem in problems:
        context.log.warning(f"alert delivery failed: {alerts.redact(problem)}")
    context.update_cursor(json.dumps(new_state, sort_keys=True))
    if not to_send:
        return SkipReason(f"no check changed state ({len(evaluations)} checks watched)")
    return None


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def run_failure_alert_sensor(context: RunFailureSensorContext, alerts: AlertsResource) -> None:
    """One alert per failed run, with its first error line and a link.

    A run that failed only because a blocking check failed was already alerted by
    ``check_alert_sensor``: one problem, one message.
    """
    step_failures = context.get_step_failure_events()
    error_classes = {
        event.step_failure_data.error.cls_name
        for event in step_failures
        if event.step_failure_data and event.step_failure_data.error
    }
    if step_failures and error_classes == {"DagsterAssetCheckFailedError"}:
        context.log.info("run failed on a blocking check: alerted by check_alert_sensor")
        return
    error = context.failure_event.message if context.failure_event else None
    alert = run_failure_alert(
        context.dagster_run.job_name, context.dagster_run.run_id, error, alerts.ui_base_url
    )
    for problem in deliver([alert], alerts.senders()):
        context.log.warning(f"alert delivery failed: {alerts.redact(problem)}")
