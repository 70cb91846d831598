"""Monitoring as a person sees it: a failing scrape, its check and its alert, then the recovery.

`dagster dev` runs on loopback against the hostile sandbox (``heavy_blocking``: bans, captchas,
429s, dead proxies). Headless Chromium materializes ``tiktok_scrape_job`` from the UI for
today's partition of the ``default`` target list; the blocking ``scraper_success_rate`` check
fails (and so do the instance's automatic retries of the run), the asset's Checks tab shows
it, and the alert webhook receives exactly one ``check_failed`` alert from the daemon's sensors.
The running sandbox is then switched to a calm site, the job is materialized again from the UI,
the check passes and exactly one ``check_recovered`` message follows. Declarative automation
(``posts_automation_sensor``) never loads the failed scrape into ``hashed_posts``, and loads the
passing one in a run of its own.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ingest_platform_tests.conftest import DagsterDev, WebhookReceiver, make_dagster_home, run_dagster_dev

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from ingest_platform.sandbox.stack import SandboxStack

JOB_PATH = "/locations/ingest_platform/jobs/tiktok_scrape_job"
ASSET = "raw_tiktok_posts"
CHECK = "scraper_success_rate"
POSTS_PER_TARGET = 30  # two capped profiles keep each scrape well under a minute
RUN_TIMEOUT_S = 240
# check_alert_sensor runs every 30 s, and the daemon's sensor loop can add up to ~30 s more.
ALERT_TIMEOUT_S = 150
# After the expected alert: a whole sensor interval plus the loop's slack, so a second (wrong)
# alert from either sensor would have arrived before we count.
SETTLE_S = 40
RUN_ID = re.compile(r"/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _sensor_report(dev: DagsterDev) -> str:
    """What the alert sensors last did, and each distinct exception they raised."""
    ticks = dev.log_tail(r"Sensor .*(check_alert_sensor|run_failure_alert_sensor)", lines=8)
    errors = dict.fromkeys(
        line.strip() for line in dev.log_tail(r"^\w+(Error|Exception): ", 200).splitlines()
    )
    return f"{ticks}\nexceptions in the dev log:\n" + "\n".join(errors)


@pytest.fixture
def hostile_stack() -> Iterator[SandboxStack]:
    from ingest_platform.sandbox.stack import SandboxStack

    with SandboxStack(scenario="heavy_blocking") as stack:
        yield stack


@pytest.fixture
def dagster_dev(
    tmp_path: Path, hostile_stack: SandboxStack, webhook: WebhookReceiver
) -> Iterator[DagsterDev]:
    home = make_dagster_home(tmp_path / "dagster_home")
    profiles = hostile_stack.content.profiles[:2]
    env = {
        **hostile_stack.env(),
        "TIKTOK_TARGETS": ",".join(f"@{p.unique_id}:{POSTS_PER_TARGET}" for p in profiles),
        "ALERT_WEBHOOK_URL": webhook.url,
        "TIKTOK_BACKEND": "browser",
        "SCRAPER_MIN_DELAY_S": "0",
        "SCRAPER_MAX_DELAY_S": "0.1",
        "SCRAPER_LIST_WAIT_S": "5",
        "EMBEDDINGS_PROVIDER": "hashing",  # no model load, no torch
    }
    with run_dagster_dev(home, env, tmp_path / "dagster_dev.log") as dev:
        yield dev


# ---------------------------------------------------------------------------------- the UI ---
def _dismiss_community_dialog(page: Page, ui_url: str) -> None:
    """A fresh instance shows "Join the Dagster community" shortly after the first page load.

    It must go before anything else: it can open late, under another dialog whose backdrop then
    swallows the click on its Skip button. Skipping it is stored in the instance (it never returns).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    page.goto(f"{ui_url}{JOB_PATH}", wait_until="domcontentloaded")
    skip = (
        page.get_by_role("dialog")
        .filter(has_text="Join the Dagster community")
        .get_by_role("button", name="Skip", exact=True)
    )
    try:
        skip.click(timeout=20_000)
    except PlaywrightTimeoutError:  # already dismissed (or this Dagster does not ask): nothing to do
        return
    skip.wait_for(state="hidden", timeout=10_000)


def _materialize_from_ui(page: Page, ui_url: str, partition: str) -> str:
    """Materialize tiktok_scrape_job for one day as a person would; returns the run id.

    The job is partitioned by (date x target list); with one list configured, the dialog's list
    dimension holds only ``default`` and the day is the one thing to type.
    """
    from playwright.sync_api import expect

    page.goto(f"{ui_url}{JOB_PATH}", wait_until="domcontentloaded")
    # One asset in the job: the button reads "Materialize…" (it opens the partition dialog).
    page.get_by_role("button", name=re.compile(r"Materialize")).first.click(timeout=60_000)
    # The UI may first ask whether to go ahead when an upstream was never materialized.
    launch = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    confirm = (
        page.get_by_role("dialog").filter(has_text="Are you sure?").get_by_role("button", name="Confirm")
    )
    expect(launch.or_(confirm)).to_be_visible(timeout=30_000)
    if confirm.is_visible():
        confirm.click()
    expect(launch).to_be_visible(timeout=30_000)
    # One field per dimension. The date field takes the same text a person types: the date,
    # then Enter; the target list's "All" picks the one list there is.
    partitions = launch.get_by_role("textbox").first
    partitions.fill(partition)
    partitions.press("Enter")
    launch.get_by_role("button", name="All", exact=True).nth(1).click()
    launch_button = launch.get_by_role("button", name="Launch 1 run")
    expect(launch_button).to_be_enabled(timeout=15_000)
    launch_button.click()
    # The toast names the run ("Launched run 1a2b3c4d"); its View link opens the run page.
    toast = page.get_by_role("listitem").filter(has_text=re.compile(r"Launched run [0-9a-f]{8}"))
    view = toast.get_by_role("link", name="View", exact=True)
    href = view.get_attribute("href", timeout=30_000) or ""
    match = RUN_ID.search(href)
    assert match, f"the launch toast links to {href!r}, not a run"
    view.click()
    page.wait_for_url(RUN_ID, timeout=30_000)
    return match.group(1)


def _wait_for_run(page: Page, ui_url: str, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> str:
    """Watch the run page until the run ends; returns the status it shows (Success, Failure, ...)."""
    from playwright.sync_api import expect

    if run_id not in page.url:
        page.goto(f"{ui_url}/runs/{run_id}", wait_until="domcontentloaded")
    # The header's status tag is the only element whose whole text is a final run status.
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_be_visible(timeout=timeout_s * 1000)
    return status.inner_text().strip()


def _check_detail(page: Page, ui_url: str, run_id: str, expected: str) -> None:
    """The asset's Checks tab lists the check with ``expected`` (Failed/Succeeded) and its detail
    pane shows the latest evaluation, from ``run_id``, with that result."""
    from playwright.sync_api import expect

    page.goto(f"{ui_url}/assets/{ASSET}?view=checks", wait_until="domcontentloaded")
    # The list entry: the check's name (middle-truncated, full name in its title) and its status.
    entry = page.locator(f'[title="{CHECK}"]').first.locator("xpath=..")
    expect(entry).to_contain_text(expected, timeout=60_000)
    entry.click()
    expect(page).to_have_url(re.compile(rf"checkDetail={CHECK}"))
    # The detail pane: "Evaluation result" followed by Failed/Passed, linked to the run.
    result = page.get_by_text("Evaluation result", exact=True).locator("xpath=..")
    expect(result).to_contain_text("Failed" if expected == "Failed" else "Passed", timeout=30_000)
    expect(page.locator(f'a[href^="/runs/{run_id}"]').first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("threshold", exact=True).first).to_be_visible()


# ------------------------------------------------------------------------- run retries ---
RUNS_QUERY = """
query TikTokRuns {
  runsOrError(filter: {pipelineName: "tiktok_scrape_job"}) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""
FINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


def _job_runs(ui_url: str) -> list[dict[str, Any]]:
    """Every tiktok_scrape_job run, from the webserver's GraphQL API (what the Runs page reads)."""
    request = urllib.request.Request(
        f"{ui_url}/graphql",
        data=json.dumps({"query": RUNS_QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)["data"]["runsOrError"]
    assert answer["__typename"] == "Runs", answer
    return [
        {"id": run["runId"], "status": run["status"], "tags": {t["key"]: t["value"] for t in run["tags"]}}
        for run in answer["results"]
    ]


def _retry_chain(ui_url: str, root_run_id: str) -> list[dict[str, Any]]:
    runs = [
        run
        for run in _job_runs(ui_url)
        if run["id"] == root_run_id or run["tags"].get("dagster/root_run_id") == root_run_id
    ]
    return sorted(runs, key=lambda run: int(run["tags"].get("dagster/retry_number", "0")))


def _chain_settled(chain: list[dict[str, Any]]) -> bool:
    ids = {run["id"] for run in chain}
    for run in chain:
        if run["status"] not in FINAL_STATUSES:
            return False
        will_retry = run["tags"].get("dagster/will_retry") == "true"
        if will_retry and run["tags"].get("dagster/auto_retry_run_id") not in ids:
            return False  # its retry is about to be launched
    return True


def _wait_for_retries(ui_url: str, root_run_id: str, timeout_s: float) -> list[dict[str, Any]]:
    """dagster.yaml enables run retries instance-wide (max 2), so a failed scrape is re-run
    automatically. Wait until the run and its retries are all over; returns them, oldest first.

    Settled must hold on two polls in a row: the instance stores a run's failure before it tags
    the run ``dagster/will_retry``.
    """
    deadline = time.monotonic() + timeout_s
    settled_polls = 0
    chain: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        chain = _retry_chain(ui_url, root_run_id)
        settled_polls = settled_polls + 1 if _chain_settled(chain) else 0
        if settled_polls >= 2:
            return chain
        time.sleep(5)
    raise TimeoutError(f"run {root_run_id} and its retries did not finish in {timeout_s}s: {chain}")


def _graphql(ui_url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{ui_url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


LOADS_QUERY = """
query Loads($partition: String!) {
  assetOrError(assetKey: {path: ["hashed_posts"]}) {
    ... on Asset { assetMaterializations(partitions: [$partition]) { runId } }
  }
}
"""
RUN_TAGS_QUERY = """
query RunTags($runId: ID!) { runOrError(runId: $runId) { ... on Run { tags { key value } } } }
"""


def _automated_loads(ui_url: str, partition: str) -> list[dict[str, str]]:
    """Runs that materialized hashed_posts for ``partition``, with their tags."""
    asset = _graphql(ui_url, LOADS_QUERY, {"partition": partition})["assetOrError"]
    run_ids = dict.fromkeys(m["runId"] for m in asset.get("assetMaterializations") or [])
    runs = []
    for run_id in run_ids:
        tags = _graphql(ui_url, RUN_TAGS_QUERY, {"runId": run_id})["runOrError"]["tags"]
        runs.append({"id": run_id, **{tag["key"]: tag["value"] for tag in tags}})
    return runs


def _wait_for_automated_load(ui_url: str, partition: str, timeout_s: float) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        loads = _automated_loads(ui_url, partition)
        if loads:
            return loads
        time.sleep(5)
    return []


# ------------------------------------------------------------------------------ the alerts ---
def _alerts(webhook: WebhookReceiver) -> list[dict[str, Any]]:
    return [message.get("alert", {}) for message in list(webhook.received)]


def _wait_for_alerts(webhook: WebhookReceiver, dev: DagsterDev, count: int) -> list[dict[str, Any]]:
    """Wait (bounded) until ``count`` alerts arrived, then one more sensor interval for strays."""
    deadline = time.monotonic() + ALERT_TIMEOUT_S
    while len(webhook.received) < count and time.monotonic() < deadline:
        time.sleep(2)
    assert len(webhook.received) >= count, (
        f"expected {count} alert(s) within {ALERT_TIMEOUT_S}s, got {_alerts(webhook)}; "
        f"sensors:\n{_sensor_report(dev)}"
    )
    time.sleep(SETTLE_S)
    return _alerts(webhook)


def _assert_check_alert(alert: dict[str, Any], kind: str, dev: DagsterDev, run_ids: set[str]) -> None:
    """``run_ids``: the runs whose evaluation may be the one alerted on (a run and its retries)."""
    assert alert.get("kind") == kind, alert
    assert alert.get("asset") == ASSET, alert
    assert alert.get("check") == CHECK, alert
    assert isinstance(alert.get("value"), int | float), alert
    assert isinstance(alert.get("threshold"), int | float), alert
    assert alert.get("run_id") in run_ids, (alert, run_ids)
    assert alert["run_url"] == f"{dev.url}/runs/{alert['run_id']}", alert
    if kind == "check_failed":
        assert alert["value"] < alert["threshold"], alert
        assert alert.get("severity") == "ERROR", alert
    else:
        assert alert["value"] >= alert["threshold"], alert


def _calm_down(stack: SandboxStack) -> None:
    """Turn the running sandbox calm, keeping every URL and port dagster dev was started with.

    The site reads its ``SiteScenario`` per request, so assigning a calm one's fields on the live
    object is enough; the new seed re-rolls every decision. Bans are for good per (ip, UA), but
    each scraper session brings a fresh fingerprint (UA), hence a fresh identity.

    The network: the flaky proxy is made reliable (each proxy reads its rate per connection). With
    it left resetting 30 % of connections, a calm-site scrape still lost a target in 3 of 10 trials
    (each proxied request is its own connection); with it fixed, 10 of 10 delivered. The two dead
    proxies stay dead: their ports are bound but never listen, and the fleet cannot be restarted on
    the same ports. The scraper quarantines them after one refusal each.
    """
    from ingest_platform.sandbox.tiktok_site import SiteScenario

    calm = SiteScenario(seed=stack.scenario.seed + 1)
    for name in SiteScenario.model_fields:
        setattr(stack.scenario, name, getattr(calm, name))
    assert not stack.scenario.hostile
    assert stack.fleet is not None
    stack.fleet.heal()


# -------------------------------------------------------------------------------- the test ---
@pytest.mark.timeout(900)
def test_failing_scrape_alerts_once_then_recovers(
    dagster_dev: DagsterDev, hostile_stack: SandboxStack, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    from ingest_platform.scraping.browser import CHROMIUM_ARGS, resolve_browser_executable

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    ui = dagster_dev.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=resolve_browser_executable(), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            _dismiss_community_dialog(page, ui)

            # Unhealthy: heavy_blocking defeats the scraper, the blocking check fails the run.
            failing_run = _materialize_from_ui(page, ui, today)
            status = _wait_for_run(page, ui, failing_run)
            page.screenshot(path=str(tmp_path / "failing_run.png"))
            assert status == "Failure", f"run {failing_run} ended {status}"
            # The instance retries failed runs (twice): against the same hostile site they fail too.
            # Only once they are over is the latest evaluation stable, and calming the site down
            # before then would let a retry, not the UI's run, recover the check.
            chain = _wait_for_retries(ui, failing_run, timeout_s=3 * RUN_TIMEOUT_S)
            assert [run["status"] for run in chain] == ["FAILURE"] * len(chain), chain
            _check_detail(page, ui, chain[-1]["id"], "Failed")
            page.screenshot(path=str(tmp_path / "check_failed.png"))

            alerts = _wait_for_alerts(webhook, dagster_dev, 1)
            # One problem, one message: no second check alert, no run_failed for a check failure,
            # nothing more for the retries that failed the same way.
            assert len(alerts) == 1, f"expected exactly one alert, got {alerts}"
            _assert_check_alert(alerts[0], "check_failed", dagster_dev, {run["id"] for run in chain})
            # posts_automation_sensor (every 60 s) has ticked since: a failed scrape is not loaded.
            assert _automated_loads(ui, today) == []

            # Healthy: the same running sandbox, now calm.
            _calm_down(hostile_stack)
            passing_run = _materialize_from_ui(page, ui, today)
            status = _wait_for_run(page, ui, passing_run)
            page.screenshot(path=str(tmp_path / "passing_run.png"))
            assert status == "Success", f"run {passing_run} ended {status}"
            _check_detail(page, ui, passing_run, "Succeeded")
            page.screenshot(path=str(tmp_path / "check_passed.png"))

            alerts = _wait_for_alerts(webhook, dagster_dev, 2)
            assert len(alerts) == 2, f"expected exactly one more alert (the recovery), got {alerts[1:]}"
            _assert_check_alert(alerts[1], "check_recovered", dagster_dev, {passing_run})
            # The passing scrape is loaded by declarative automation, in a run nobody launched.
            loads = _wait_for_automated_load(ui, today, timeout_s=RUN_TIMEOUT_S)
            assert loads, "posts_automation_sensor did not load the passing scrape"
            assert all(load["id"] != passing_run for load in loads)
            assert any("automation" in key or "sensor" in key for load in loads for key in load), loads
        finally:
            browser.close()
