"""ApifyFetcher against the Apify stand-in through the real apify-client: results and failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from ingest_platform.sandbox.apify_api import ApifyStandIn
from ingest_platform.scraping.apify_backend import (
    ApifyError,
    ApifyFetcher,
    ApifyRequestRejected,
    ApifyRunFailed,
    ApifySettings,
    ApifyUnavailable,
)
from ingest_platform.scraping.targets import Target, parse_targets
from ingest_platform.scraping.tiktok_page import item_to_post
from ingest_platform_tests.conftest import free_port

TOKEN = "apify_api_S3cr3tT0kenForTests"
BACKEND_FIELDS = {"backend", "source_url", "scraped_at", "proxy_id"}


@pytest.fixture(scope="module")
def stand_in(sandbox_content) -> Iterator[ApifyStandIn]:
    with ApifyStandIn(sandbox_content, token=TOKEN) as server:
        yield server


@pytest.fixture
def api(stand_in: ApifyStandIn) -> Iterator[ApifyStandIn]:
    yield stand_in
    stand_in.reset_config()


def settings_for(api_url: str, **overrides: Any) -> ApifySettings:
    values: dict[str, Any] = {
        "token": SecretStr(TOKEN),
        "api_url": api_url,
        "page_size": 9,  # several dataset pages per run
        "max_retries": 3,
        "min_delay_between_retries_s": 0.005,
        "run_timeout_s": 60,
    }
    values.update(overrides)
    return ApifySettings(**values)


def fetcher(api: ApifyStandIn, **overrides: Any) -> ApifyFetcher:
    return ApifyFetcher(settings_for(api.api_url, **overrides), progress=lambda _: None)


@pytest.fixture(autouse=True)
def _token_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert TOKEN not in caplog.text


def targets_for(content, *entries: str) -> list[Target]:
    return parse_targets(",".join(entries))


# -- happy path ------------------------------------------------------------------------------------


def test_fetch_tiktok_profiles_hashtags_and_videos(api: ApifyStandIn, sandbox_content) -> None:
    first, second = sandbox_content.profiles[0], sandbox_content.profiles[1]
    tag = sandbox_content.hashtags[0]
    video_id = second.post_ids[4]
    targets = targets_for(
        sandbox_content, f"@{first.unique_id}:30", f"#{tag.title}:30", f"@{second.unique_id}/video/{video_id}"
    )
    outcome = fetcher(api).fetch_tiktok(targets)

    assert len(outcome.runs) == 1  # one max_posts group, the video rides along
    run = outcome.runs[0]
    assert run.status == "SUCCEEDED" and run.actor == "clockworks/tiktok-scraper"
    assert run.items_expected == run.items_received == 61
    assert (outcome.items_expected, outcome.items_received, outcome.gap) == (61, 61, 0)
    assert outcome.missing_targets == [] and outcome.rejects == []
    assert outcome.usage_usd == pytest.approx(run.usage_total_usd) and outcome.usage_usd > 0
    assert run.compute_units and run.compute_units > 0 and run.duration_s is not None

    expected_ids = list(dict.fromkeys([*first.post_ids[:30], *tag.post_ids[:30], video_id]))
    assert [p.post_id for p in outcome.posts] == expected_ids  # dataset order, deduplicated
    assert outcome.duplicates == 61 - len(expected_ids)
    assert outcome.target_posts[f"@{first.unique_id}"] == 30
    assert all(p.backend == "apify" and p.proxy_id is None for p in outcome.posts)

    by_id = {p.post_id: p for p in outcome.posts}
    assert by_id[first.post_ids[0]].source_url == f"https://www.tiktok.com/@{first.unique_id}"
    assert by_id[video_id].source_url == f"https://www.tiktok.com/@{second.unique_id}/video/{video_id}"
    tag_only = next(i for i in tag.post_ids[:30] if i not in first.post_ids)
    assert by_id[tag_only].source_url == f"https://www.tiktok.com/tag/{tag.title}"

    # Paging really happened (page_size 9 over 61 items).
    item_requests = [r for r in api.requests if r.path.endswith("/items")]
    assert len(item_requests) >= 7


def test_apify_rows_equal_browser_rows_for_every_post_of_a_profile(
    api: ApifyStandIn, sandbox_content
) -> None:
    profile = sandbox_content.profiles[2]
    outcome = fetcher(api).fetch_tiktok(parse_targets(f"@{profile.unique_id}:500"))
    assert [p.post_id for p in outcome.posts] == list(profile.post_ids)
    scraped_at = datetime.now(UTC)
    for apify_post in outcome.posts:
        browser_post = item_to_post(
            sandbox_content.item_struct(apify_post.post_id),
            source_url=f"http://127.0.0.1:1/@{profile.unique_id}",
            scraped_at=scraped_at,
            proxy_id="p1",
        )
        assert apify_post.model_dump(exclude=BACKEND_FIELDS) == browser_post.model_dump(
            exclude=BACKEND_FIELDS
        )


def test_targets_are_grouped_by_max_posts_and_capped(api: ApifyStandIn, sandbox_content) -> None:
    a, b = sandbox_content.profiles[0], sandbox_content.profiles[1]
    outcome = fetcher(api).fetch_tiktok(parse_targets(f"@{a.unique_id}:5, @{b.unique_id}:12"))
    assert len(outcome.runs) == 2
    assert outcome.target_posts == {f"@{a.unique_id}": 5, f"@{b.unique_id}": 12}
    starts = [r for r in api.requests if r.method == "POST"][-2:]
    assert {r.query.get("maxItems") for r in starts} == {"5", "12"}


def test_unknown_profile_is_reported_missing(api: ApifyStandIn, sandbox_content) -> None:
    known = sandbox_content.profiles[0].unique_id
    outcome = fetcher(api).fetch_tiktok(parse_targets(f"@{known}:3, @no.such.account.anywhere:3"))
    assert [t.text for t in outcome.missing_targets] == ["@no.such.account.anywhere"]
    assert len(outcome.posts) == 3


def test_empty_target_list_makes_no_request(api: ApifyStandIn) -> None:
    before = len(api.requests)
    assert fetcher(api).fetch_tiktok([]).posts == []
    assert len(api.requests) == before


def test_fetch_facebook_pages(api: ApifyStandIn) -> None:
    pages = ["https://www.facebook.com/CityBakery", "https://www.facebook.com/riverside.runners"]
    outcome = fetcher(api).fetch_facebook(pages, results_limit=12)
    assert len(outcome.posts) == 24 and outcome.missing_pages == []
    assert outcome.target_posts == dict.fromkeys(pages, 12)
    assert {p.platform for p in outcome.posts} == {"facebook"}
    assert {p.source_url for p in outcome.posts} == set(pages)
    assert outcome.usage_usd == pytest.approx(24 * 5.0 / 1000)


def test_facebook_error_items_become_rejects(api: ApifyStandIn) -> None:
    outcome = fetcher(api).fetch_facebook(
        ["https://www.facebook.com/CityBakery", "https://example.org/not-a-page"], results_limit=3
    )
    assert len(outcome.posts) == 3
    assert [r.reason for r in outcome.rejects] == [
        "apify facebook item is an actor error report: Invalid Facebook URL"
    ]
    assert outcome.rejects[0].source_url == "https://example.org/not-a-page"


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["FAILED", "TIMED-OUT", "ABORTED"])
def test_failed_runs_raise_naming_actor_run_and_status(api: ApifyStandIn, sandbox_content, status) -> None:
    api.config.final_status = status
    targets = parse_targets(f"@{sandbox_content.profiles[0].unique_id}:10")
    with pytest.raises(ApifyRunFailed) as caught:
        fetcher(api).fetch_tiktok(targets)
    error = caught.value
    run_id = api.runs()[-1]["id"]
    assert (error.actor, error.run_id, error.status) == ("clockworks/tiktok-scraper", run_id, status)
    assert run_id in str(error) and status in str(error) and "clockworks/tiktok-scraper" in str(error)
    assert error.outcome is not None and error.outcome.missing_targets == targets


def test_one_failed_run_keeps_the_other_runs_posts(api: ApifyStandIn, sandbox_content) -> None:
    api.config.next_run_statuses = ["SUCCEEDED", "FAILED"]
    a, b = sandbox_content.profiles[0], sandbox_content.profiles[1]
    with pytest.raises(ApifyRunFailed) as caught:
        fetcher(api).fetch_tiktok(parse_targets(f"@{a.unique_id}:4, @{b.unique_id}:6"))
    partial = caught.value.outcome
    assert partial is not None
    assert [p.post_id for p in partial.posts] == list(a.post_ids[:4])
    assert [t.text for t in partial.missing_targets] == [f"@{b.unique_id}"]


def test_run_timeout_ends_timed_out(api: ApifyStandIn, sandbox_content) -> None:
    api.config.run_duration_s = 5.0
    with pytest.raises(ApifyRunFailed) as caught:
        fetcher(api, run_timeout_s=1).fetch_tiktok(parse_targets(f"@{sandbox_content.profiles[0].unique_id}"))
    assert caught.value.status == "TIMED-OUT"


def test_rate_limits_and_server_errors_are_retried_transparently(api: ApifyStandIn, sandbox_content) -> None:
    api.config.throttle_requests = 2
    api.config.server_error_requests = 2
    before = len(api.requests)
    outcome = fetcher(api, max_retries=5).fetch_tiktok(
        parse_targets(f"@{sandbox_content.profiles[0].unique_id}:10")
    )
    assert len(outcome.posts) == 10
    assert [r.status for r in api.requests[before : before + 5]] == [429, 429, 503, 503, 201]


@pytest.mark.parametrize("fault_path", ["/v2/actors/*", "/v2/datasets/*/items"])
def test_persistent_server_errors_raise_unavailable(api: ApifyStandIn, sandbox_content, fault_path) -> None:
    api.config.fault_path = fault_path
    api.config.server_error_requests = 100
    with pytest.raises(ApifyUnavailable, match="HTTP 503"):
        fetcher(api, max_retries=2).fetch_tiktok(parse_targets(f"@{sandbox_content.profiles[0].unique_id}"))


def test_persistent_rate_limit_raises_unavailable(api: ApifyStandIn, sandbox_content) -> None:
    api.config.throttle_requests = 100
    with pytest.raises(ApifyUnavailable, match="HTTP 429"):
        fetcher(api, max_retries=1).fetch_tiktok(parse_targets(f"@{sandbox_content.profiles[0].unique_id}"))


def test_unreachable_api_raises_unavailable(sandbox_content) -> None:
    settings = settings_for(f"http://127.0.0.1:{free_port()}", max_retries=1)
    with pytest.raises(ApifyUnavailable) as caught:
        ApifyFetcher(settings).fetch_tiktok(parse_targets(f"@{sandbox_content.profiles[0].unique_id}"))
    assert "\n" not in str(caught.value) and TOKEN not in str(caught.value)


def test_bad_token_is_rejected_without_leaking_it(api: ApifyStandIn, sandbox_content) -> None:
    wrong = "apify_api_WrongTokenValue999"
    with pytest.raises(ApifyRequestRejected) as caught:
        fetcher(api, token=SecretStr(wrong)).fetch_tiktok(
            parse_targets(f"@{sandbox_content.profiles[0].unique_id}")
        )
    assert caught.value.status_code == 401
    text = str(caught.value) + repr(caught.value) + repr(settings_for(api.api_url, token=SecretStr(wrong)))
    assert wrong not in text and TOKEN not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unknown_actor_is_rejected(api: ApifyStandIn, sandbox_content) -> None:
    with pytest.raises(ApifyRequestRejected) as caught:
        fetcher(api, tiktok_actor="someone/nothing").fetch_tiktok(parse_targets("@x"))
    assert caught.value.status_code == 404


def test_partial_dataset_keeps_items_and_reports_the_gap(api: ApifyStandIn, sandbox_content) -> None:
    api.config.dataset_shortfall = 4
    a, tag = sandbox_content.profiles[0], sandbox_content.hashtags[1]
    targets = parse_targets(f"@{a.unique_id}:10, #{tag.title}:10")
    outcome = fetcher(api).fetch_tiktok(targets)
    assert (outcome.items_expected, outcome.items_received, outcome.gap) == (20, 16, 4)
    assert len(outcome.posts) + outcome.duplicates == 16  # everything served was kept
    # The dataset lost its tail, i.e. the hashtag's last items: that target is flagged for retry.
    assert [t.text for t in outcome.missing_targets] == [f"#{tag.title}"]
    assert outcome.as_metadata()["apify_items_gap"] == 4


def test_malformed_items_are_rejected_with_reasons(api: ApifyStandIn, sandbox_content) -> None:
    api.config.corrupt_every = 5
    outcome = fetcher(api).fetch_tiktok(parse_targets(f"@{sandbox_content.profiles[0].unique_id}:20"))
    assert len(outcome.posts) == 16 and len(outcome.rejects) == 4
    reject = outcome.rejects[0]
    assert "diggCount='lots' is not a count" in reject.reason
    assert reject.source_url == f"https://www.tiktok.com/@{sandbox_content.profiles[0].unique_id}"
    assert reject.run_id == outcome.runs[0].run_id and reject.backend == "apify"
    assert '"diggCount": "lots"' in reject.payload


def test_run_still_running_after_waiting_is_aborted() -> None:
    """The client gave up waiting (its wait_duration passed): the run is aborted, not left charging."""
    aborted: list[str] = []
    run = SimpleNamespace(
        id="RunStillGoing0001",
        status="RUNNING",
        default_dataset_id="ds",
        started_at=datetime.now(UTC),
        finished_at=None,
        status_message="Crawling",
        usage_total_usd=None,
        stats=SimpleNamespace(compute_units=0.01),
        pricing_info=None,
    )
    client = SimpleNamespace(
        actor=lambda _name: SimpleNamespace(call=lambda **_kw: run),
        run=lambda run_id: SimpleNamespace(abort=lambda: aborted.append(run_id)),
    )
    settings = settings_for("http://127.0.0.1:1")
    with pytest.raises(ApifyRunFailed) as caught:
        ApifyFetcher(settings, client=client).fetch_tiktok(parse_targets("@someone"))  # type: ignore[arg-type]
    assert caught.value.status == "RUNNING" and "aborted" in str(caught.value)
    assert aborted == ["RunStillGoing0001"]


def test_run_that_cannot_be_read_back() -> None:
    client = SimpleNamespace(actor=lambda _name: SimpleNamespace(call=lambda **_kw: None))
    with pytest.raises(ApifyError, match="could not be read back"):
        ApifyFetcher(settings_for("http://127.0.0.1:1"), client=client).fetch_tiktok(  # type: ignore[arg-type]
            parse_targets("@someone")
        )


def test_settings_hide_the_token() -> None:
    settings = settings_for("http://127.0.0.1:1")
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert TOKEN not in settings.model_dump_json()
