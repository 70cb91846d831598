"""Backend choice: browser, Apify, or browser with an Apify fallback (fakes, plus the real stand-in)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from ingest_platform.models import Post
from ingest_platform.sandbox.apify_api import ApifyStandIn, tiktok_dataset_item
from ingest_platform.scraping.apify_backend import (
    ApifyFetcher,
    ApifyOutcome,
    ApifyRunFailed,
    ApifySettings,
    ApifyUnavailable,
)
from ingest_platform.scraping.apify_normalizers import tiktok_item_to_post
from ingest_platform.scraping.backend_choice import fetch_posts, is_proxy_pool_exhausted
from ingest_platform.scraping.browser import ScrapeOutcome, TargetOutcome
from ingest_platform.scraping.targets import Target, parse_targets
from ingest_platform.scraping.tiktok_page import item_to_post

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SANDBOX_BASE = "http://127.0.0.1:8123"


class ProxyPoolExhausted(RuntimeError):
    """Stands in for ``proxy_pool.ProxyPoolExhausted``: recognised by its name."""


def post_ids_for(content, target: Target) -> list[str]:
    return content.post_ids_for(target.kind, target.value, target.max_posts)


class FakeBrowser:
    """Returns a real ``ScrapeOutcome``; targets listed in ``statuses`` end with that status."""

    def __init__(self, content, statuses: dict[str, str] | None = None, error: Exception | None = None):
        self.content = content
        self.statuses = statuses or {}
        self.error = error
        self.calls: list[list[str]] = []

    def __call__(self, targets: list[Target]) -> ScrapeOutcome:
        self.calls.append([t.text for t in targets])
        if self.error is not None:
            raise self.error
        outcome = ScrapeOutcome()
        for target in targets:
            status = self.statuses.get(target.text, "ok")
            outcome.metrics.pages_attempted += 1
            posts: list[Post] = []
            if status in ("ok", "private_account", "user_not_found"):
                outcome.metrics.pages_succeeded += 1
            if status == "ok":
                posts = [
                    item_to_post(
                        self.content.item_struct(post_id),
                        source_url=target.url(SANDBOX_BASE),
                        scraped_at=NOW,
                        proxy_id="proxy-a",
                    )
                    for post_id in post_ids_for(self.content, target)
                ]
            outcome.posts.extend(posts)
            outcome.targets.append(
                TargetOutcome(target.text, target.url(SANDBOX_BASE), status, len(posts), "proxy-a")
            )
        return outcome


class FakeApify:
    def __init__(self, content, *, like_bonus: int = 0, error: Exception | None = None):
        self.content = content
        self.like_bonus = like_bonus  # makes Apify rows distinguishable from browser rows
        self.error = error
        self.calls: list[list[str]] = []

    def __call__(self, targets: list[Target]) -> ApifyOutcome:
        self.calls.append([t.text for t in targets])
        if self.error is not None:
            raise self.error
        outcome = ApifyOutcome()
        seen: set[str] = set()
        for target in targets:
            ids = post_ids_for(self.content, target)
            if not ids:
                outcome.missing_targets.append(target)
            for post_id in ids:
                if post_id in seen:
                    continue
                seen.add(post_id)
                item = tiktok_dataset_item(self.content, post_id)
                item["diggCount"] += self.like_bonus
                outcome.posts.append(
                    tiktok_item_to_post(item, scraped_at=NOW, source_url=target.url("https://www.tiktok.com"))
                )
        outcome.items_expected = outcome.items_received = len(outcome.posts)
        return outcome


def four_targets(content) -> list[Target]:
    p = content.profiles
    return parse_targets(
        f"@{p[0].unique_id}:10, @{p[1].unique_id}:10, #{content.hashtags[0].title}:15, "
        f"@{p[2].unique_id}/video/{p[2].post_ids[0]}"
    )


def expected_ids(content, targets: list[Target]) -> set[str]:
    return {i for t in targets for i in post_ids_for(content, t)}


# -- single-backend modes ----------------------------------------------------------------------------


def test_browser_mode_reports_failures_without_apify(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    browser = FakeBrowser(sandbox_content, {targets[1].text: "ip_blocked"})
    apify = FakeApify(sandbox_content)
    combined = fetch_posts(targets, mode="browser", browser_fetch=browser, apify_fetch=apify)
    assert apify.calls == [] and not combined.switched
    assert combined.failed_targets == [targets[1].text]
    assert combined.targets_by_backend == {"browser": [targets[0].text, targets[2].text, targets[3].text]}
    assert {p.backend for p in combined.posts} == {"browser"}


def test_apify_mode(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    apify = FakeApify(sandbox_content)
    combined = fetch_posts(targets, mode="apify", apify_fetch=apify)
    assert apify.calls == [[t.text for t in targets]]
    assert {p.post_id for p in combined.posts} == expected_ids(sandbox_content, targets)
    assert combined.targets_by_backend == {"apify": [t.text for t in targets]}
    assert combined.per_backend["apify"].targets_ok == 4


# -- auto ------------------------------------------------------------------------------------------


def test_auto_stays_on_the_browser_above_the_threshold(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    browser = FakeBrowser(sandbox_content, {targets[3].text: "http_429"})
    apify = FakeApify(sandbox_content)
    combined = fetch_posts(
        targets, mode="auto", browser_fetch=browser, apify_fetch=apify, success_threshold=0.7
    )
    assert not combined.switched and combined.switch_reason is None
    assert apify.calls == []
    assert combined.failed_targets == [targets[3].text]  # reported, not silently dropped


def test_auto_switches_failed_targets_to_apify_below_the_threshold(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    browser = FakeBrowser(sandbox_content, {targets[1].text: "ip_blocked", targets[2].text: "empty_shell"})
    apify = FakeApify(sandbox_content, like_bonus=1_000_000)
    combined = fetch_posts(targets, mode="auto", browser_fetch=browser, apify_fetch=apify)

    assert combined.switched
    assert combined.switch_reason == "browser success rate 50.0% below threshold 95.0%"
    assert apify.calls == [[targets[1].text, targets[2].text]]  # only what the browser did not finish
    assert combined.targets_by_backend == {
        "browser": [targets[0].text, targets[3].text],
        "apify": [targets[1].text, targets[2].text],
    }
    assert combined.failed_targets == []
    # No gaps, no duplicates.
    ids = [p.post_id for p in combined.posts]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_ids(sandbox_content, targets)
    # A post both backends returned (profile 0's post tagged with the hashtag) keeps the browser row.
    browser_ids = expected_ids(sandbox_content, [targets[0], targets[3]])
    overlap = browser_ids & expected_ids(sandbox_content, [targets[1], targets[2]])
    assert overlap, "content should have a post found by both a browser and an apify target"
    rows = {p.post_id: p for p in combined.posts}
    for post_id in overlap:
        assert rows[post_id].backend == "browser" and rows[post_id].like_count < 1_000_000
    assert combined.duplicates_dropped == len(overlap)
    assert combined.per_backend["browser"].success_rate == 0.5
    metadata = combined.as_metadata()
    assert metadata["backend_switched"] is True and metadata["apify_targets"] == 2


def test_auto_switches_everything_when_the_proxy_pool_is_exhausted(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    browser = FakeBrowser(sandbox_content, error=ProxyPoolExhausted("all 5 proxies quarantined"))
    apify = FakeApify(sandbox_content)
    combined = fetch_posts(targets, mode="auto", browser_fetch=browser, apify_fetch=apify)
    assert combined.switched
    assert combined.switch_reason == "proxy pool exhausted: ProxyPoolExhausted: all 5 proxies quarantined"
    assert apify.calls == [[t.text for t in targets]]
    assert {p.post_id for p in combined.posts} == expected_ids(sandbox_content, targets)


def test_real_pool_exhaustion_with_partial_results_through_an_exception_chain(sandbox_content) -> None:
    from ingest_platform.scraping.proxy_pool import ProxyPoolExhausted as RealExhausted

    targets = four_targets(sandbox_content)
    partial = FakeBrowser(sandbox_content)(targets[:2])  # the browser got through two targets
    exhausted = RealExhausted("no proxy available", retry_after_s=30.0, pool_size=3)
    exhausted.partial = partial
    try:
        try:
            raise exhausted
        except RealExhausted as inner:
            raise RuntimeError("scrape aborted") from inner
    except RuntimeError as outer:
        wrapped = outer
    assert is_proxy_pool_exhausted(wrapped)

    apify = FakeApify(sandbox_content)
    combined = fetch_posts(
        targets, mode="auto", browser_fetch=FakeBrowser(sandbox_content, error=wrapped), apify_fetch=apify
    )
    assert combined.switch_reason is not None and combined.switch_reason.startswith("proxy pool exhausted")
    assert apify.calls == [[targets[2].text, targets[3].text]]
    assert combined.targets_by_backend["browser"] == [targets[0].text, targets[1].text]
    assert {p.post_id for p in combined.posts} == expected_ids(sandbox_content, targets)


def test_pool_exhausted_status_switches_even_with_a_good_rate(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    browser = FakeBrowser(sandbox_content, {targets[3].text: "proxy_pool_exhausted"})
    browser_result_rate = 0.75
    apify = FakeApify(sandbox_content)
    combined = fetch_posts(
        targets, mode="auto", browser_fetch=browser, apify_fetch=apify, success_threshold=browser_result_rate
    )
    assert combined.switched and "proxy pool exhausted" in (combined.switch_reason or "")
    assert apify.calls == [[targets[3].text]]


def test_pool_exhausted_flag_on_the_outcome_switches(sandbox_content) -> None:
    targets = four_targets(sandbox_content)

    def browser(batch: list[Target]) -> ScrapeOutcome:
        outcome = FakeBrowser(sandbox_content)(batch[:3])
        outcome.pool_exhausted = True
        outcome.remaining_targets = batch[3:]  # never attempted: no TargetOutcome at all
        return outcome

    apify = FakeApify(sandbox_content)
    combined = fetch_posts(targets, mode="auto", browser_fetch=browser, apify_fetch=apify)
    assert combined.switch_reason == "proxy pool exhausted: the browser outcome says so"
    assert apify.calls == [[targets[3].text]]
    assert combined.failed_targets == []


def test_custom_pool_exhaustion_predicate(sandbox_content) -> None:
    class OutOfIps(Exception):
        pass

    targets = four_targets(sandbox_content)[:1]
    combined = fetch_posts(
        targets,
        mode="auto",
        browser_fetch=FakeBrowser(sandbox_content, error=OutOfIps("none left")),
        apify_fetch=FakeApify(sandbox_content),
        is_pool_exhausted=lambda exc: isinstance(exc, OutOfIps),
    )
    assert (combined.switch_reason or "").startswith("proxy pool exhausted")


def test_browser_crash_switches_and_redacts_credentials(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    crash = RuntimeError("proxy http://scraper:hunter2@10.0.0.1:8000 refused")
    combined = fetch_posts(
        targets,
        mode="auto",
        browser_fetch=FakeBrowser(sandbox_content, error=crash),
        apify_fetch=FakeApify(sandbox_content),
    )
    assert combined.switched and (combined.switch_reason or "").startswith("browser backend failed")
    assert "hunter2" not in (combined.switch_reason or "")
    assert combined.targets_by_backend == {"apify": [t.text for t in targets]}
    with pytest.raises(RuntimeError):
        fetch_posts(targets, mode="browser", browser_fetch=FakeBrowser(sandbox_content, error=crash))


def test_apify_failure_after_the_switch_keeps_browser_posts(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    browser = FakeBrowser(sandbox_content, {targets[1].text: "http_403", targets[2].text: "http_403"})
    apify = FakeApify(
        sandbox_content, error=ApifyUnavailable("reading dataset: HTTP 503 (after the client's retries)")
    )
    combined = fetch_posts(targets, mode="auto", browser_fetch=browser, apify_fetch=apify)
    assert combined.switched
    assert combined.errors == ["reading dataset: HTTP 503 (after the client's retries)"]
    assert combined.failed_targets == [targets[1].text, targets[2].text]
    assert {p.post_id for p in combined.posts} == expected_ids(sandbox_content, [targets[0], targets[3]])


def test_partial_apify_outcome_of_a_failed_run_is_kept(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    browser = FakeBrowser(sandbox_content, {targets[1].text: "http_403", targets[2].text: "http_403"})
    got = FakeApify(sandbox_content)([targets[1]])
    got.missing_targets = [targets[2]]
    failure = ApifyRunFailed(actor="clockworks/tiktok-scraper", run_id="R1", status="FAILED", outcome=got)
    combined = fetch_posts(
        targets, mode="auto", browser_fetch=browser, apify_fetch=FakeApify(sandbox_content, error=failure)
    )
    assert combined.failed_targets == [targets[2].text]
    assert combined.targets_by_backend["apify"] == [targets[1].text]
    assert "R1" in combined.errors[0] and "FAILED" in combined.errors[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fastest"}, "mode must be"),
        ({"mode": "auto", "apify_fetch": lambda t: ApifyOutcome()}, "needs browser_fetch"),
        ({"mode": "apify"}, "needs apify_fetch"),
        (
            {"mode": "browser", "browser_fetch": lambda t: ScrapeOutcome(), "success_threshold": 1.5},
            "between 0 and 1",
        ),
    ],
)
def test_arguments_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fetch_posts([], **kwargs)


# -- with the real Apify stand-in ------------------------------------------------------------------


def test_auto_fallback_through_the_apify_stand_in(sandbox_content) -> None:
    targets = four_targets(sandbox_content)
    failing = {targets[1].text: "ip_blocked", targets[2].text: "empty_item_list"}
    browser = FakeBrowser(sandbox_content, failing)
    with ApifyStandIn(sandbox_content) as stand_in:
        settings = ApifySettings(
            token=SecretStr("apify_test_token"),
            api_url=stand_in.api_url,
            page_size=8,
            min_delay_between_retries_s=0.005,
        )
        apify: Callable[[list[Target]], ApifyOutcome] = ApifyFetcher(settings, progress=lambda _: None)
        combined = fetch_posts(targets, mode="auto", browser_fetch=browser, apify_fetch=apify)

    assert combined.switched and combined.failed_targets == [] and combined.errors == []
    assert combined.targets_by_backend == {
        "browser": [targets[0].text, targets[3].text],
        "apify": [targets[1].text, targets[2].text],
    }
    ids = [p.post_id for p in combined.posts]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_ids(sandbox_content, targets)
    apify_rows = [p for p in combined.posts if p.backend == "apify"]
    assert apify_rows and all(p.source_url.startswith("https://www.tiktok.com/") for p in apify_rows)
    assert combined.apify_result is not None and combined.apify_result.usage_usd > 0
    assert combined.per_backend["apify"].extra["apify_items_gap"] == 0
