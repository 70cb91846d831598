"""The browser scraper against the hostile sandbox: one test per anti-bot behaviour, real Chromium.

Every test scrapes a small target set (a profile read over two list pages, a hashtag, videos)
through the sandbox's local proxies and checks that every page still came back complete, that the
block was seen and counted under its own kind, and how it was handled (retry on another session,
quarantine, captcha solving, the page's own JavaScript). Delays are ~0 and quarantines tiny.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest

from ingest_platform.sandbox.anticaptcha_api import AntiCaptchaConfig
from ingest_platform.sandbox.stack import SandboxStack
from ingest_platform.sandbox.tiktok_site import SiteScenario
from ingest_platform.scraping import browser
from ingest_platform.scraping.browser import (
    BrowserScraper,
    BrowserSettings,
    ProxyPoolExhausted,
    ScrapeOutcome,
    scrape_sync,
)
from ingest_platform.scraping.captcha import CaptchaSolver
from ingest_platform.scraping.proxy_config import parse_proxy_list
from ingest_platform.scraping.proxy_pool import PoolSettings, ProxyPool
from ingest_platform.scraping.targets import Target, TargetKind

FAST = {
    "min_delay_s": 0.0,
    "max_delay_s": 0.05,
    "quarantine_base_s": 0.2,
    "quarantine_max_s": 1.0,
    "list_wait_s": 4.0,
    "pool_wait_max_s": 5.0,
}
# The site's anti-bot rolls are a hash of (seed, client IP, user agent, the client's request
# number). With one worker, a seeded scraper rng and quarantines that outlast the test, the scraper
# meets the same identities in the same order every run, so each test is reproducible.
REPRODUCIBLE = {"concurrent_sessions": 1, "quarantine_base_s": 60.0, "quarantine_max_s": 60.0}
PASSWORD = "Pr0xy-S3cret-9f2c"


def _targets(stack: SandboxStack) -> list[Target]:
    content = stack.content
    first, second, third = content.profiles[0], content.profiles[1], content.profiles[2]
    return [
        Target(kind=TargetKind.PROFILE, value=first.unique_id, max_posts=40),  # two list pages
        Target(kind=TargetKind.HASHTAG, value=content.hashtags[0].title, max_posts=20),
        Target(kind=TargetKind.VIDEO, value=second.post_ids[3], handle=second.unique_id),
        Target(kind=TargetKind.VIDEO, value=third.post_ids[5], handle=third.unique_id),
    ]


def _expected(stack: SandboxStack, targets: Sequence[Target]) -> dict[str, set[str]]:
    """Ground truth: the post ids each target page must yield, by page URL."""
    content = stack.content
    expected: dict[str, set[str]] = {}
    for target in targets:
        if target.kind is TargetKind.PROFILE:
            ids = content.profile(target.value).post_ids[: target.max_posts]
        elif target.kind is TargetKind.HASHTAG:
            ids = content.challenge(target.value).post_ids[: target.max_posts]
        else:
            ids = [target.value]
        expected[target.url(stack.base_url)] = set(ids)
    return expected


def _run(
    stack: SandboxStack, *, captcha: CaptchaSolver | None = None, seed: int = 0, **settings: object
) -> tuple[ScrapeOutcome, dict[str, set[str]]]:
    targets = _targets(stack)
    options = FAST | {"base_url": stack.base_url, "concurrent_sessions": 2} | settings
    outcome = scrape_sync(
        targets,
        BrowserSettings(**options),
        parse_proxy_list(stack.proxy_list),
        captcha=captcha,
        rng=random.Random(seed),
    )
    return outcome, _expected(stack, targets)


def _assert_complete(outcome: ScrapeOutcome, expected: dict[str, set[str]]) -> None:
    assert outcome.metrics.success_rate == 1.0, outcome.targets
    got: dict[str, list[str]] = {url: [] for url in expected}
    for post in outcome.posts:
        got[post.source_url].append(post.post_id)
    assert {url: set(ids) for url, ids in got.items()} == expected
    assert all(len(ids) == len(set(ids)) for ids in got.values())  # no duplicates within a page
    assert outcome.metrics.posts_collected == sum(len(ids) for ids in expected.values())


def _solver(stack: SandboxStack) -> CaptchaSolver:
    assert stack.anticaptcha_key and stack.anticaptcha_host
    return CaptchaSolver(
        stack.anticaptcha_key, host=stack.anticaptcha_host, use_ssl=False, poll_interval_s=0.05, max_wait_s=10
    )


def test_rate_limit_429_backs_off_rotates_and_completes() -> None:
    scenario = SiteScenario(seed=1, burst_429_rate=0.25)
    with SandboxStack(scenario=scenario, proxies=5) as stack:
        outcome, expected = _run(stack, **REPRODUCIBLE)
        site = stack.stats()["site"]["totals"]
    _assert_complete(outcome, expected)
    assert outcome.metrics.blocks["http_429"] == site["burst_429"] >= 1
    assert outcome.metrics.proxies_quarantined >= 1  # the 429'd proxy cooled down
    assert outcome.metrics.retries >= 1


@pytest.mark.parametrize(("mode", "kind"), [("http_403", "http_403"), ("status_10204", "status_10204")])
def test_ban_retires_the_session_and_retries_on_another_proxy(mode: str, kind: str) -> None:
    scenario = SiteScenario(seed=1, ban_after_requests=3, ban_mode=mode)  # type: ignore[arg-type]
    with SandboxStack(scenario=scenario, proxies=6) as stack:
        outcome, expected = _run(stack, max_attempts_per_target=5, **REPRODUCIBLE)
    _assert_complete(outcome, expected)
    metrics = outcome.metrics
    assert metrics.blocks[kind] >= 1 and metrics.sessions_retired >= metrics.blocks[kind]
    banned_on = {p.proxy_id for p in outcome.proxies if p.failures_by_kind.get(kind)}
    retried = [t for t in outcome.targets if kind in t.blocks]
    assert retried and all(t.status == "ok" for t in retried)
    # Each page that hit a ban finished on a proxy other than one it was banned on just before.
    assert any(t.proxy_id not in banned_on for t in retried) or len(banned_on) > 1


def test_recaptcha_is_solved_through_the_anticaptcha_stand_in() -> None:
    scenario = SiteScenario(seed=2, captcha_rate=1.0, captcha_kind="recaptcha")
    with SandboxStack(scenario=scenario, proxies=2, anticaptcha=AntiCaptchaConfig(seed=2)) as stack:
        outcome, expected = _run(stack, captcha=_solver(stack))
        stats = stack.stats()
    _assert_complete(outcome, expected)
    metrics = outcome.metrics
    assert metrics.captchas_seen == metrics.captchas_solved == stats["site"]["totals"]["captcha_solved"] >= 1
    assert stats["anticaptcha"]["by_type"] == {"NoCaptchaTaskProxyless": metrics.captcha_tasks}
    assert metrics.captcha_cost_usd == pytest.approx(stats["anticaptcha"]["spent"])
    assert metrics.captcha_solve_rate == 1.0 and metrics.retries == 0


def test_tiktok_slider_is_not_sent_to_the_solver_but_rotated() -> None:
    scenario = SiteScenario(seed=3, captcha_rate=0.5, captcha_slider_fraction=1.0)
    with SandboxStack(scenario=scenario, proxies=6, anticaptcha=AntiCaptchaConfig(seed=3)) as stack:
        outcome, expected = _run(stack, captcha=_solver(stack), max_attempts_per_target=6, **REPRODUCIBLE)
        stats = stack.stats()
    _assert_complete(outcome, expected)
    metrics = outcome.metrics
    assert metrics.captchas_unsolvable >= 1 and metrics.blocks["captcha"] >= 1
    assert metrics.captcha_tasks == 0 and stats["anticaptcha"]["tasks_created"] == 0
    assert metrics.sessions_retired >= metrics.captchas_unsolvable


def test_waf_proof_of_work_is_cleared_by_the_pages_own_javascript_without_proxies() -> None:
    with SandboxStack(scenario=SiteScenario(seed=0, waf_rate=1.0, waf_difficulty=3)) as stack:
        assert stack.proxy_list == ""  # direct: zero proxies works too
        outcome, expected = _run(stack, waf_wait_s=15)
        site = stack.stats()["site"]["totals"]
    _assert_complete(outcome, expected)
    metrics = outcome.metrics
    assert metrics.waf_cleared == site["waf_challenged"] >= 1
    assert metrics.waf_not_cleared == 0 and metrics.retries == 0
    assert site["waf_passed"] >= metrics.page_loads  # every later load carried the cookie
    assert all(p.proxy_id == "direct" for p in outcome.proxies)


def test_login_redirect_rotates_the_session() -> None:
    with SandboxStack(scenario=SiteScenario(seed=6, login_redirect_rate=0.35), proxies=3) as stack:
        outcome, expected = _run(stack, max_attempts_per_target=6, **REPRODUCIBLE)
        site = stack.stats()["site"]["totals"]
    _assert_complete(outcome, expected)
    assert outcome.metrics.blocks["login_redirect"] == site["login_redirect"] >= 1
    assert outcome.metrics.sessions_retired >= site["login_redirect"]


def test_empty_200_lists_count_as_soft_blocks_and_are_retried() -> None:
    with SandboxStack(scenario=SiteScenario(seed=1, empty_list_rate=0.25), proxies=3) as stack:
        outcome, expected = _run(stack, max_attempts_per_target=8, **REPRODUCIBLE)
        site = stack.stats()["site"]["totals"]
    _assert_complete(outcome, expected)
    assert outcome.metrics.blocks["empty_200"] == site["empty_list"] >= 1
    assert outcome.metrics.retries >= 1


def test_headless_and_webdriver_detection_never_see_a_bot() -> None:
    scenario = SiteScenario(seed=9, detect_headless_ua=True, detect_webdriver=True, ban_mode="status_10204")
    with SandboxStack(scenario=scenario, proxies=2) as stack:
        outcome, expected = _run(stack)
        site = stack.stats()["site"]
    _assert_complete(outcome, expected)
    assert outcome.metrics.retries == 0 and sum(outcome.metrics.blocks.values()) == 0
    totals = site["totals"]
    assert totals["headless_blocked"] == totals["webdriver_detected"] == totals["banned_clients"] == 0
    for client in site["clients"]:
        assert "HeadlessChrome" not in client["userAgent"] and "Chrome/" in client["userAgent"]
        assert client["webdriver"] is False  # the page's own beacon read navigator.webdriver


def test_zero_balance_gives_one_message_and_the_run_keeps_rotating(caplog: pytest.LogCaptureFixture) -> None:
    scenario = SiteScenario(seed=12, captcha_rate=0.5, captcha_kind="recaptcha")
    with SandboxStack(scenario=scenario, proxies=6, anticaptcha=AntiCaptchaConfig(balance=0.0)) as stack:
        with caplog.at_level(logging.DEBUG):
            outcome, expected = _run(stack, captcha=_solver(stack), max_attempts_per_target=8, **REPRODUCIBLE)
        key = stack.anticaptcha_key
    _assert_complete(outcome, expected)
    zero_balance = [r for r in caplog.records if "ERROR_ZERO_BALANCE" in r.getMessage()]
    assert len(zero_balance) == 1, [r.getMessage() for r in zero_balance]
    assert "rotating" in zero_balance[0].getMessage()
    assert outcome.captcha_disabled_reason and "ERROR_ZERO_BALANCE" in outcome.captcha_disabled_reason
    assert outcome.metrics.captchas_solved == 0 and outcome.metrics.captchas_unsolvable >= 2
    assert key and key not in caplog.text


def test_dead_and_flaky_proxies_are_quarantined() -> None:
    with SandboxStack(scenario=SiteScenario(seed=13), proxies=5, dead={0, 1}, flaky={2: 0.5}) as stack:
        # A fresh session per page: the pool's least-leased rule walks every proxy, dead ones too.
        outcome, expected = _run(stack, max_pages_per_session=1, max_attempts_per_target=6)
        ports = [url.rsplit(":", 1)[1] for url in stack.proxy_urls]
    _assert_complete(outcome, expected)
    metrics = outcome.metrics
    assert metrics.blocks["connection_error"] == metrics.proxy_failures >= 2
    assert 0 < metrics.proxy_failure_rate < 1
    by_port = {p.redacted_url.rsplit(":", 1)[1]: p for p in outcome.proxies}
    for dead_port in ports[:2]:
        snapshot = by_port[dead_port]
        if snapshot.leases:  # a dead proxy that was tried was quarantined, never succeeded
            assert snapshot.quarantines >= 1 and snapshot.successes == 0
    assert metrics.bytes_via_proxies > 0


def test_pool_exhaustion_is_reported_for_a_fallback_backend() -> None:
    with SandboxStack(scenario=SiteScenario(seed=14), proxies=2, dead={0, 1}) as stack:
        endpoints = parse_proxy_list(stack.proxy_list)
        settings = BrowserSettings(base_url=stack.base_url, **(FAST | {"pool_wait_max_s": 0.0}))
        pool = ProxyPool(endpoints, PoolSettings(quarantine_base_s=60, quarantine_max_s=60))
        targets = _targets(stack)
        outcome = scrape_sync(targets, settings, pool)
        assert outcome.pool_exhausted
        assert {t.text for t in outcome.remaining_targets} == {t.text for t in targets}
        assert outcome.metrics.targets_unfinished == len(targets) and not outcome.posts
        with pytest.raises(ProxyPoolExhausted) as caught:
            scrape_sync(targets, settings, pool, raise_on_exhausted=True)
    assert caught.value.remaining_targets and caught.value.partial is not None
    assert "quarantined" in str(caught.value)


def test_proxy_credentials_never_reach_metrics_rejects_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Frequent 429 bursts and a dead proxy: the error paths, where a credential could slip into a
    # message, must run. A seeded rng keeps the fingerprints (so the site's rolls) the same each run.
    scenario = SiteScenario(seed=15, burst_429_rate=0.5, broken_json_paths={"/tag/*"})
    with SandboxStack(scenario=scenario, proxies=3, dead={0}, proxy_password=PASSWORD) as stack:
        assert PASSWORD in stack.proxy_list
        messages: list[str] = []
        with caplog.at_level(logging.DEBUG):
            targets = _targets(stack)
            outcome = scrape_sync(
                targets,
                BrowserSettings(base_url=stack.base_url, **FAST),
                parse_proxy_list(stack.proxy_list),
                progress=messages.append,
                rng=random.Random(15),
            )
    assert outcome.rejects, "the broken hashtag page is a reject"
    assert outcome.metrics.blocks["connection_error"] >= 1 or outcome.metrics.blocks["http_429"] >= 1
    texts = [
        repr(outcome.metrics),
        repr(outcome.metrics.as_metadata()),
        repr(outcome.targets),
        repr(outcome.proxies),
        repr([(r.source_url, r.reason) for r in outcome.rejects]),
        "\n".join(messages),
        caplog.text,
    ]
    for text in texts:
        assert PASSWORD not in text
    assert any("p-" in m for m in messages)  # proxies are named by their non-secret id


def test_pages_are_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow (large or hostile) page must not stall every session: the event loop keeps running.

    The parse is slowed on purpose (``time.sleep`` stands for a big page); a heartbeat coroutine on
    the scraper's loop counts its ticks while each parse runs. On the loop thread (the old code)
    the heartbeat cannot tick at all during a parse: 0 ticks.
    """
    real_parse = browser.parse_page
    ticks = 0
    parses: list[tuple[int, bool]] = []  # (heartbeat ticks during the parse, ran on the loop thread)

    def slow_parse(html: str, **kwargs: Any) -> Any:
        before = ticks
        try:
            asyncio.get_running_loop()
            on_loop_thread = True
        except RuntimeError:
            on_loop_thread = False
        time.sleep(0.3)
        result = real_parse(html, **kwargs)
        parses.append((ticks - before, on_loop_thread))
        return result

    monkeypatch.setattr(browser, "parse_page", slow_parse)

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    with SandboxStack(scenario=SiteScenario(seed=0), proxies=0) as stack:
        profile = stack.content.profiles[0]
        target = Target(kind=TargetKind.VIDEO, value=profile.post_ids[0], handle=profile.unique_id)
        settings = BrowserSettings(**(FAST | {"base_url": stack.base_url, "concurrent_sessions": 1}))

        async def scrape_with_heartbeat() -> ScrapeOutcome:
            beat = asyncio.create_task(heartbeat())
            try:
                return await BrowserScraper(settings, rng=random.Random(0)).scrape([target])
            finally:
                beat.cancel()

        outcome = asyncio.run(scrape_with_heartbeat())
    assert outcome.metrics.success_rate == 1.0
    assert [post.post_id for post in outcome.posts] == [profile.post_ids[0]]
    assert parses, "the scraper never parsed a page"
    assert all(not on_loop_thread for _, on_loop_thread in parses)
    assert all(during > 0 for during, _ in parses), parses
