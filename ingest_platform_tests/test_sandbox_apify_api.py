"""The Apify API stand-in, driven by the real apify-client 3.4.0 (no fakes on the client side)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from apify_client import ApifyClient
from apify_client.errors import ApifyApiError

from ingest_platform.sandbox.apify_api import (
    DEFAULT_TOKEN,
    FACEBOOK_ACTOR,
    TIKTOK_ACTOR,
    ApifyStandIn,
    ApifyStandInConfig,
    facebook_page_items,
    tiktok_dataset_item,
)

# Fields of a clockworks/tiktok-scraper item as in
# ingest_platform_tests/data/real/apify/tiktok-scraper-profile-items.json.
TIKTOK_ITEM_KEYS = {
    "id",
    "text",
    "textLanguage",
    "createTime",
    "createTimeISO",
    "isAd",
    "authorMeta",
    "musicMeta",
    "webVideoUrl",
    "mediaUrls",
    "videoMeta",
    "diggCount",
    "shareCount",
    "playCount",
    "collectCount",
    "commentCount",
    "mentions",
    "detailedMentions",
    "hashtags",
    "effectStickers",
    "isSlideshow",
    "isPinned",
    "isSponsored",
    "locationCreated",
}
FACEBOOK_ITEM_KEYS = {
    "postId",
    "pageName",
    "facebookUrl",
    "url",
    "time",
    "timestamp",
    "text",
    "likes",
    "comments",
    "shares",
    "topReactionsCount",
    "isVideo",
    "user",
    "textReferences",
    "media",
}


@pytest.fixture(scope="module")
def stand_in(sandbox_content) -> Iterator[ApifyStandIn]:
    with ApifyStandIn(sandbox_content) as server:
        yield server


@pytest.fixture
def api(stand_in: ApifyStandIn) -> Iterator[ApifyStandIn]:
    """The shared stand-in with a default config again after each test."""
    yield stand_in
    stand_in.reset_config()


def client_for(api: ApifyStandIn, token: str = DEFAULT_TOKEN, retries: int = 3) -> ApifyClient:
    return ApifyClient(
        token,
        api_url=api.api_url,
        max_retries=retries,
        min_delay_between_retries=timedelta(milliseconds=5),
    )


def call_tiktok(client: ApifyClient, run_input: dict, **kwargs):
    return client.actor(TIKTOK_ACTOR).call(run_input=run_input, logger=None, **kwargs)


# -- happy paths -------------------------------------------------------------------------------------


def test_tiktok_profile_run_and_paginated_items(api: ApifyStandIn, sandbox_content) -> None:
    profile = sandbox_content.profiles[0]
    client = client_for(api)
    run = call_tiktok(
        client,
        {"profiles": [profile.unique_id], "resultsPerPage": 40},
        max_items=500,
        run_timeout=timedelta(seconds=120),
        memory_mbytes=2048,
    )
    assert run is not None and run.status == "SUCCEEDED"
    assert run.options.memory_mbytes == 2048 and run.options.timeout_secs == 120
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.stats.compute_units and run.stats.compute_units > 0
    assert run.usage_total_usd == pytest.approx(40 * 3.7 / 1000)
    assert run.usage is not None and run.usage.dataset_writes == 40

    dataset = client.dataset(run.default_dataset_id)
    assert dataset.get().item_count == 40
    items = list(dataset.iterate_items(chunk_size=7))  # 6 pages of 7 and one of 5
    assert [item["id"] for item in items] == list(profile.post_ids[:40])
    items_requests = [r for r in api.requests if r.path.endswith("/items")]
    assert len(items_requests) >= 6

    first = items[0]
    assert set(first) >= TIKTOK_ITEM_KEYS
    assert first["authorMeta"]["name"] == profile.unique_id
    assert first["input"] == profile.unique_id and first["fromProfileSection"] == "videos"
    assert first["webVideoUrl"] == f"https://www.tiktok.com/@{profile.unique_id}/video/{first['id']}"
    assert isinstance(first["createTime"], int) and first["createTimeISO"].endswith(".000Z")


def test_items_endpoint_headers_and_query(api: ApifyStandIn, sandbox_content) -> None:
    client = client_for(api)
    tag = sandbox_content.hashtags[0]
    run = call_tiktok(client, {"hashtags": [tag.title], "resultsPerPage": 12})
    page = client.dataset(run.default_dataset_id).list_items(offset=5, limit=4)
    assert (page.offset, page.limit, page.count, page.total, page.desc) == (5, 4, 4, 12, False)
    assert [i["id"] for i in page.items] == list(tag.post_ids[5:9])
    assert all(i["searchHashtag"]["name"] == tag.title for i in page.items)

    reverse = client.dataset(run.default_dataset_id).list_items(desc=True, limit=3)
    assert [i["id"] for i in reverse.items] == list(reversed(tag.post_ids[:12]))[:3]
    picked = client.dataset(run.default_dataset_id).list_items(fields=["id", "diggCount"], limit=2)
    assert all(set(i) == {"id", "diggCount"} for i in picked.items)
    unlimited = client.dataset(run.default_dataset_id).list_items()
    assert unlimited.limit == 999_999_999_999 and len(unlimited.items) == 12


def test_video_urls_and_unknown_inputs(api: ApifyStandIn, sandbox_content) -> None:
    profile = sandbox_content.profiles[1]
    video_id = profile.post_ids[2]
    run = call_tiktok(
        client_for(api),
        {
            "postURLs": [f"https://www.tiktok.com/@{profile.unique_id}/video/{video_id}"],
            "profiles": ["nobody.here.at.all"],
        },
    )
    items = list(client_for(api).dataset(run.default_dataset_id).iterate_items())
    assert [item["id"] for item in items] == [video_id]


def test_tiktok_item_mirrors_the_sandbox_item(sandbox_content) -> None:
    # Every served post converts; the real actor's quirks are kept.
    for post_id, post in list(sandbox_content.posts_by_id.items())[:120]:
        item = tiktok_dataset_item(sandbox_content, post_id)
        struct = sandbox_content.item_struct(post_id)
        assert item["text"] == struct["desc"]
        assert item["diggCount"] == struct["stats"]["diggCount"]
        assert item["collectCount"] == int(struct["stats"]["collectCount"])
        assert item["isSlideshow"] is post.is_slideshow
        assert len(item["hashtags"]) == len(struct["textExtra"])  # a mention shows up as {"name": ""}
        assert [m.lstrip("@") for m in item["mentions"]] == list(post.mentions)


def test_facebook_run_full_schema_and_determinism(api: ApifyStandIn) -> None:
    client = client_for(api)
    pages = ["https://www.facebook.com/CityBakery", "https://www.facebook.com/riverside.runners"]
    run = client.actor(FACEBOOK_ACTOR).call(
        run_input={"startUrls": [{"url": url} for url in pages], "resultsLimit": 15}, logger=None
    )
    assert run.status == "SUCCEEDED"
    items = list(client.dataset(run.default_dataset_id).iterate_items(chunk_size=10))
    assert len(items) == 30
    for item in items:
        assert set(item) >= FACEBOOK_ITEM_KEYS
        assert item["facebookUrl"] in pages
        assert item["isVideo"] == ("viewsCount" in item)
    times = [i["timestamp"] for i in items[:15]]
    assert times == sorted(times, reverse=True)  # newest first
    # Same page, same posts, whoever asks and whenever.
    again = facebook_page_items(pages[0], seed=7, count=15)
    assert [i["postId"] for i in again] == [i["postId"] for i in items[:15]]
    shapes = {
        ("reel" if "/reel/" in i["url"] else "videos" if "/videos/" in i["url"] else "pfbid") for i in items
    }
    assert shapes == {"reel", "videos", "pfbid"}


def test_facebook_invalid_start_url_is_an_error_item(api: ApifyStandIn) -> None:
    client = client_for(api)
    run = client.actor(FACEBOOK_ACTOR).call(
        run_input={"startUrls": [{"url": "https://example.org/not-facebook"}], "resultsLimit": 5}, logger=None
    )
    items = list(client.dataset(run.default_dataset_id).iterate_items())
    assert items == [
        {
            "url": "https://example.org/not-facebook",
            "error": "Invalid Facebook URL",
            "errorDescription": "not facebook.com",
        }
    ]


def test_large_input_arrives_gzip_compressed(api: ApifyStandIn, sandbox_content) -> None:
    # The client gzips bodies over 1 KB; the stand-in must read them.
    handles = [p.unique_id for p in sandbox_content.profiles] * 40
    run = call_tiktok(client_for(api), {"profiles": handles, "resultsPerPage": 1}, max_items=5)
    starts = [r for r in api.requests if r.method == "POST" and r.path.endswith("/runs")]
    assert starts[-1].content_encoding == "gzip"
    assert run.stats.input_body_len > 1024
    assert client_for(api).dataset(run.default_dataset_id).get().item_count == 5  # maxItems honoured


# -- run lifecycle -----------------------------------------------------------------------------------


def test_run_is_running_until_it_finishes(api: ApifyStandIn, sandbox_content) -> None:
    api.config.run_duration_s = 0.6
    client = client_for(api)
    started = client.actor(TIKTOK_ACTOR).start(
        run_input={"profiles": [sandbox_content.profiles[0].unique_id]}
    )
    assert started.status == "RUNNING" and started.finished_at is None
    assert client.run(started.id).get().status == "RUNNING"
    begin = time.monotonic()
    finished = client.run(started.id).wait_for_finish()
    assert finished.status == "SUCCEEDED"
    assert 0.3 < time.monotonic() - begin < 5  # held open by waitForFinish, not polled to death
    gets = [r for r in api.requests if r.path == f"/v2/actor-runs/{started.id}"]
    assert any(r.query.get("waitForFinish") for r in gets)


@pytest.mark.parametrize("status", ["FAILED", "TIMED-OUT", "ABORTED"])
def test_runs_can_end_badly(api: ApifyStandIn, sandbox_content, status: str) -> None:
    api.config.final_status = status
    run = call_tiktok(
        client_for(api), {"profiles": [sandbox_content.profiles[0].unique_id], "resultsPerPage": 10}
    )
    assert run.status == status and run.exit_code == 1
    # A run that stopped early pushed only part of its items.
    assert client_for(api).dataset(run.default_dataset_id).get().item_count == 5


def test_run_timeout_and_abort(api: ApifyStandIn, sandbox_content) -> None:
    api.config.run_duration_s = 5.0
    client = client_for(api)
    handle = sandbox_content.profiles[0].unique_id
    timed_out = call_tiktok(client, {"profiles": [handle]}, run_timeout=timedelta(seconds=1))
    assert timed_out.status == "TIMED-OUT"
    running = client.actor(TIKTOK_ACTOR).start(run_input={"profiles": [handle]})
    aborted = client.run(running.id).abort()
    assert aborted.status == "ABORTED"


def test_per_run_statuses_and_per_actor_statuses(api: ApifyStandIn, sandbox_content) -> None:
    api.config.next_run_statuses = ["FAILED"]
    api.config.final_status_by_actor = {FACEBOOK_ACTOR: "ABORTED"}
    handle = sandbox_content.profiles[0].unique_id
    assert call_tiktok(client_for(api), {"profiles": [handle]}).status == "FAILED"
    assert call_tiktok(client_for(api), {"profiles": [handle]}).status == "SUCCEEDED"
    fb = (
        client_for(api)
        .actor(FACEBOOK_ACTOR)
        .call(run_input={"startUrls": [{"url": "https://www.facebook.com/x"}]}, logger=None)
    )
    assert fb.status == "ABORTED"


# -- errors and faults -------------------------------------------------------------------------------


def test_token_is_required(api: ApifyStandIn) -> None:
    for token in ("wrong-token", None):
        with pytest.raises(ApifyApiError) as caught:
            call_tiktok(client_for(api, token=token, retries=0), {"profiles": ["x"]})
        assert caught.value.status_code == 401
        assert caught.value.type == "token-not-valid"
    assert all(not r.authorized for r in api.requests[-2:])
    assert all("token" not in r.query for r in api.requests)


def test_unknown_actor_bad_input_unknown_run(api: ApifyStandIn) -> None:
    client = client_for(api, retries=0)
    with pytest.raises(ApifyApiError) as missing:
        client.actor("someone/not-an-actor").call(run_input={}, logger=None)
    assert missing.value.status_code == 404
    with pytest.raises(ApifyApiError) as invalid:
        call_tiktok(client, {"resultsPerPage": 5})
    assert invalid.value.status_code == 400 and invalid.value.type == "invalid-input"
    assert client.run("doesNotExist12345").get() is None
    assert client.dataset("doesNotExist12345").get() is None


def test_rate_limits_and_server_errors_are_retried(api: ApifyStandIn, sandbox_content) -> None:
    api.config.throttle_requests = 2
    api.config.server_error_requests = 1
    before = len(api.requests)
    run = call_tiktok(client_for(api), {"profiles": [sandbox_content.profiles[0].unique_id]})
    assert run.status == "SUCCEEDED"
    statuses = [r.status for r in api.requests[before:]]
    assert statuses[:4] == [429, 429, 503, 201]


def test_faults_can_target_one_endpoint(api: ApifyStandIn, sandbox_content) -> None:
    api.config.fault_path = "/v2/datasets/*/items"
    api.config.server_error_requests = 50  # more than the client retries
    client = client_for(api, retries=2)
    run = call_tiktok(client, {"profiles": [sandbox_content.profiles[0].unique_id]})
    assert run.status == "SUCCEEDED"  # runs were not affected
    with pytest.raises(ApifyApiError) as caught:
        client.dataset(run.default_dataset_id).list_items()
    assert caught.value.status_code == 503


def test_partial_dataset_reports_more_than_it_serves(api: ApifyStandIn, sandbox_content) -> None:
    api.config.dataset_shortfall = 3
    client = client_for(api)
    run = call_tiktok(client, {"profiles": [sandbox_content.profiles[0].unique_id], "resultsPerPage": 20})
    dataset = client.dataset(run.default_dataset_id)
    assert dataset.get().item_count == 20
    assert len(list(dataset.iterate_items(chunk_size=6))) == 17
    assert dataset.list_items(offset=15, limit=10).total == 20


def test_corrupt_items_are_served(api: ApifyStandIn, sandbox_content) -> None:
    api.config.corrupt_every = 4
    client = client_for(api)
    run = call_tiktok(client, {"profiles": [sandbox_content.profiles[0].unique_id], "resultsPerPage": 8})
    items = list(client.dataset(run.default_dataset_id).iterate_items())
    assert [i["diggCount"] for i in items].count("lots") == 2


def test_pay_per_usage_pricing(api: ApifyStandIn, sandbox_content) -> None:
    api.config.pricing_model = "PAY_PER_USAGE"
    run = call_tiktok(
        client_for(api), {"profiles": [sandbox_content.profiles[0].unique_id], "resultsPerPage": 10}
    )
    breakdown = run.usage_usd.model_dump(by_alias=True, exclude_none=True)
    assert run.usage_total_usd == pytest.approx(sum(breakdown.values()), abs=1e-6)
    assert breakdown["ACTOR_COMPUTE_UNITS"] == pytest.approx(run.stats.compute_units * 0.4, abs=1e-6)
    assert run.pricing_info is None


def test_config_is_validated() -> None:
    config = ApifyStandInConfig()
    with pytest.raises(ValueError):
        config.final_status = "EXPLODED"  # type: ignore[assignment]
    with pytest.raises(ValueError):
        config.server_error_status = 404
    with pytest.raises(ValueError):
        ApifyStandIn(host="0.0.0.0")
