"""Apify item normalizers: real actor output (tests/data/real) and parity with the browser path."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest_platform.models import Post
from ingest_platform.sandbox.apify_api import facebook_page_items, tiktok_dataset_item
from ingest_platform.scraping.apify_normalizers import (
    facebook_item_to_post,
    facebook_post_id,
    tiktok_item_to_post,
    tiktok_source_url,
)
from ingest_platform.scraping.tiktok_page import item_to_post
from ingest_platform_tests.conftest import real_fixtures_dir

SCRAPED_AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
#: What legitimately differs between the browser and the Apify row for the same post.
BACKEND_FIELDS = {"backend", "source_url", "scraped_at", "proxy_id"}
APIFY_DIR = real_fixtures_dir() / "apify"


def load(name: str) -> list[dict[str, Any]]:
    path = APIFY_DIR / name
    if not path.exists():
        pytest.fail(
            f"real fixture {path} missing from ingest_platform_tests/data/real"
        )
    return json.loads(path.read_text(encoding="utf-8"))


# -- real TikTok actor output -----------------------------------------------------------------------


def test_every_fixture_tiktok_item_normalizes() -> None:
    items = load("tiktok-scraper-profile-items.json")
    posts = [tiktok_item_to_post(item, scraped_at=SCRAPED_AT) for item in items]
    assert len(posts) == 10
    assert all(p.backend == "apify" and p.platform == "tiktok" and p.proxy_id is None for p in posts)
    assert all(p.author_handle == "meenitech" for p in posts)
    # No source_url given: the item's `input` ("@meenitech") names the profile page it came from.
    assert {p.source_url for p in posts} == {"https://www.tiktok.com/@meenitech"}
    assert len({p.post_id for p in posts}) == 10

    first = posts[0]
    assert first.post_id == "7524354452762037512"
    assert first.created_at == datetime(2025, 7, 7, 14, 58, 13, tzinfo=UTC)
    assert (
        first.like_count,
        first.share_count,
        first.play_count,
        first.collect_count,
        first.comment_count,
    ) == (
        158,
        0,
        2314,
        23,
        12,
    )
    assert first.author_id == "7337708524620203026"
    assert first.author_nickname == "Meeni Tech"
    assert first.author_verified is False
    assert first.author_sec_uid is None  # this export carries no secUid
    assert first.music_id == "7524354495968332561"
    assert first.music_title == "original sound - Meeni Tech"
    assert first.music_original is True
    assert first.duration_seconds == 20.0
    assert first.hashtags[:4] == ["finalroundai", "meenitech", "aiinterviewcoach", "jobsearch2025"]
    assert first.hashtags[-1] == "interview"
    assert first.is_ad is False and first.is_slideshow is False

    ad = posts[4]
    assert ad.is_ad is True
    assert ad.mentions == ["temu"]
    assert "" not in ad.hashtags  # the mention's {"name": ""} entry is skipped
    assert ad.hashtags[0] == "shoptemu"
    # The caption also holds the hashtags: nothing new and no duplicates from reading it.
    assert len(ad.hashtags) == len(set(ad.hashtags)) == 7


def test_fixture_times_agree_between_create_time_and_iso() -> None:
    for item in load("tiktok-scraper-profile-items.json"):
        only_iso = {k: v for k, v in item.items() if k != "createTime"}
        only_int = {k: v for k, v in item.items() if k != "createTimeISO"}
        a = tiktok_item_to_post(only_iso, scraped_at=SCRAPED_AT)
        b = tiktok_item_to_post(only_int, scraped_at=SCRAPED_AT)
        assert a.created_at == b.created_at
        # Neither: the id's top 32 bits (the browser path's rule too). On the real site those are the
        # upload time, a few seconds before createTime.
        neither = {k: v for k, v in item.items() if k not in ("createTime", "createTimeISO")}
        from_id = tiktok_item_to_post(neither, scraped_at=SCRAPED_AT).created_at
        assert 0 <= (a.created_at - from_id).total_seconds() < 60


# -- real Facebook actor output (reduced field-selection exports) -----------------------------------


@pytest.mark.parametrize(
    "name", ["facebook-posts-scraper-items-a.json", "facebook-posts-scraper-items-b.json"]
)
def test_every_fixture_facebook_item_normalizes(name: str) -> None:
    items = load(name)
    posts = [facebook_item_to_post(item, scraped_at=SCRAPED_AT) for item in items]
    assert len(posts) == len(items) == 20
    assert len({p.post_id for p in posts}) == 20
    for item, post in zip(items, posts, strict=True):
        assert post.platform == "facebook" and post.backend == "apify"
        assert post.description == item["text"]
        assert post.like_count == item["likes"]
        assert post.share_count == item["shares"]
        assert post.comment_count == item.get("comments")
        assert post.play_count == item.get("viewsCount")
        assert post.source_url == item["url"]  # reduced export: no facebookUrl, the post URL it is
        assert post.created_at.tzinfo is not None


def test_facebook_fixture_spot_checks() -> None:
    posts = {
        p.post_id: p
        for p in (
            facebook_item_to_post(i, scraped_at=SCRAPED_AT)
            for name in ("facebook-posts-scraper-items-a.json", "facebook-posts-scraper-items-b.json")
            for i in load(name)
        )
    }
    reel = posts["2330959977401189"]  # https://www.facebook.com/reel/2330959977401189/
    assert reel.created_at == datetime(2026, 1, 21, 16, 45, 33, tzinfo=UTC)
    assert (reel.comment_count, reel.like_count, reel.share_count, reel.play_count) == (3, 28, 2, 114)
    assert reel.author_handle is None  # a /reel/ URL does not name the page

    video = posts["2661519974231097"]  # /GuilloAliaga/videos/2661519974231097/, no "comments" field
    assert video.comment_count is None and video.play_count == 1639
    assert video.author_handle == "GuilloAliaga"

    colon = posts["1448888896834852"]  # /GuilloAliaga/posts/1448888896834852:1448888896834852
    assert colon.description == "" and colon.like_count == 41

    # /posts/pfbid… carries no numeric id: the opaque token is the id.
    pfbid = posts["pfbid02hojrB38GgSMpiEBSsdQSeRpmF9yekjVq1t3WqbVUuRXBw8CzXEXdh4VFZm9k7Agfl"]
    assert pfbid.play_count is None and pfbid.author_handle == "GuilloAliaga"
    assert "guillermoaliaga" in pfbid.hashtags  # "#GuillermoAliaga" in the text, lower-cased


# -- parity with the browser path on the same sandbox content ---------------------------------------


def _browser_and_apify(content, post_id: str, handle: str) -> tuple[Post, Post]:
    browser = item_to_post(
        content.item_struct(post_id),
        source_url=f"http://127.0.0.1:8123/@{handle}",
        scraped_at=SCRAPED_AT,
        proxy_id="proxy-1",
        backend="browser",
    )
    apify = tiktok_item_to_post(
        tiktok_dataset_item(content, post_id, input_value=handle),
        scraped_at=datetime(2026, 11, 28, 13, 0, tzinfo=UTC),
        source_url=f"https://www.tiktok.com/@{handle}",
    )
    return browser, apify


def test_browser_and_apify_posts_are_equal_for_every_post_of_every_profile(sandbox_content) -> None:
    compared = slideshows = bare_challenges = mentions = 0
    for profile in sandbox_content.profiles:
        for post_id in profile.post_ids:
            browser, apify = _browser_and_apify(sandbox_content, post_id, profile.unique_id)
            b = browser.model_dump(exclude=BACKEND_FIELDS)
            a = apify.model_dump(exclude=BACKEND_FIELDS)
            assert a == b, {k: (b[k], a[k]) for k in b if a[k] != b[k]}
            assert (browser.backend, apify.backend) == ("browser", "apify")
            compared += 1
            slideshows += apify.is_slideshow
            mentions += bool(apify.mentions)
            bare_challenges += not sandbox_content.item_struct(post_id)["challenges"]
    assert compared == sum(len(p.post_ids) for p in sandbox_content.profiles)
    # The tricky shapes were part of the comparison, not skipped by luck.
    assert slideshows and mentions and bare_challenges


def test_only_backend_fields_differ(sandbox_content) -> None:
    profile = sandbox_content.profiles[0]
    browser, apify = _browser_and_apify(sandbox_content, profile.post_ids[0], profile.unique_id)
    differing = {k for k in Post.model_fields if getattr(browser, k) != getattr(apify, k)}
    assert differing == BACKEND_FIELDS


# -- source_url ----------------------------------------------------------------------------------


def test_source_url_forms(sandbox_content) -> None:
    profile = sandbox_content.profiles[0]
    post_id = profile.post_ids[0]
    tag = sandbox_content.hashtags[0].title
    item = tiktok_dataset_item(sandbox_content, post_id, input_value=profile.unique_id)
    assert tiktok_source_url(item) == f"https://www.tiktok.com/@{profile.unique_id}"
    by_tag = tiktok_dataset_item(sandbox_content, post_id, input_value=tag, search_hashtag=tag)
    assert tiktok_source_url(by_tag) == f"https://www.tiktok.com/tag/{tag}"
    video_url = f"https://www.tiktok.com/@{profile.unique_id}/video/{post_id}"
    by_url = tiktok_dataset_item(sandbox_content, post_id, input_value=video_url)
    assert tiktok_source_url(by_url) == video_url
    no_input = tiktok_dataset_item(sandbox_content, post_id)
    assert tiktok_source_url(no_input) == f"https://www.tiktok.com/@{profile.unique_id}"
    bare = {"id": post_id, "webVideoUrl": video_url}
    assert tiktok_source_url(bare) == video_url
    explicit = tiktok_item_to_post(item, scraped_at=SCRAPED_AT, source_url="https://example.test/x")
    assert explicit.source_url == "https://example.test/x"


# -- Facebook full schema -------------------------------------------------------------------------


def test_facebook_full_schema() -> None:
    items = facebook_page_items("https://www.facebook.com/CityBakery", seed=3, count=30)
    posts = [facebook_item_to_post(item, scraped_at=SCRAPED_AT) for item in items]
    for item, post in zip(items, posts, strict=True):
        assert post.post_id == item["postId"]
        assert post.author_id == item["user"]["id"]
        assert post.author_handle == "CityBakery"
        assert post.author_nickname == item["user"]["name"]
        assert post.created_at == datetime.fromtimestamp(item["timestamp"], UTC)
        assert post.source_url == "https://www.facebook.com/CityBakery"
        assert post.play_count == item.get("viewsCount")
        tags = [r["url"].rsplit("/", 1)[-1] for r in item["textReferences"]]
        assert post.hashtags[: len(tags)] == tags
        assert all(tag == tag.lower() for tag in post.hashtags)
    assert any(p.hashtags for p in posts)


def test_facebook_reduced_export_matches_full_for_numeric_urls() -> None:
    reduced_keys = ("url", "time", "text", "comments", "likes", "shares", "viewsCount")
    matched = 0
    for item in facebook_page_items("https://www.facebook.com/riverside.runners", count=40):
        reduced = {k: item[k] for k in reduced_keys if k in item}
        full = facebook_item_to_post(item, scraped_at=SCRAPED_AT)
        small = facebook_item_to_post(reduced, scraped_at=SCRAPED_AT)
        assert (small.created_at, small.like_count, small.description) == (
            full.created_at,
            full.like_count,
            full.description,
        )
        if "/posts/pfbid" in item["url"]:
            assert small.post_id.startswith("pfbid0")  # documented: no numeric id in such a URL
        else:
            assert small.post_id == full.post_id
            matched += 1
    assert matched


def test_facebook_post_id_sources() -> None:
    assert facebook_post_id({"postId": 123456789012}) == "123456789012"
    assert (
        facebook_post_id({"url": "https://www.facebook.com/permalink.php?story_fbid=987654321&id=1"})
        == "987654321"
    )
    assert (
        facebook_post_id({"url": "https://www.facebook.com/photo/?fbid=5555555555&set=a.1"}) == "5555555555"
    )
    assert facebook_post_id({"url": "https://www.facebook.com/watch/?v=4444444444"}) == "4444444444"
    assert (
        facebook_post_id(
            {
                "url": "https://www.facebook.com/x/posts/pfbid0abc",
                "topLevelUrl": "https://www.facebook.com/1/posts/777777777",
            }
        )
        == "777777777"
    )


# -- bad items -------------------------------------------------------------------------------------


def _tiktok_item(content) -> dict[str, Any]:
    profile = content.profiles[0]
    return tiktok_dataset_item(content, profile.post_ids[0], input_value=profile.unique_id)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda i: i.update(diggCount="lots"), "diggCount='lots' is not a count"),
        (lambda i: i.update(playCount=-5), "playCount=-5 is negative"),
        (lambda i: i.update(authorMeta=["x"]), "authorMeta is a list, not an object"),
        (lambda i: (i.pop("createTime"), i.update(createTimeISO="last tuesday")), "createTimeISO"),
        (lambda i: i.update(createTime="soon"), "createTime 'soon' is not unix seconds"),
        (lambda i: i.update(hashtags="#a #b"), "hashtags is a str, not a list"),
        (lambda i: i.update(text=42), "text is a int, not text"),
        (lambda i: i.update(isSlideshow="maybe"), "isSlideshow 'maybe' is not a boolean"),
        (lambda i: i.update(videoMeta={"duration": "long"}), "video.duration 'long' is not a number"),
    ],
)
def test_bad_tiktok_items_raise_clear_value_errors(sandbox_content, change, reason: str) -> None:
    item = copy.deepcopy(_tiktok_item(sandbox_content))
    change(item)
    with pytest.raises(ValueError) as caught:
        tiktok_item_to_post(item, scraped_at=SCRAPED_AT)
    message = str(caught.value)
    assert reason in message
    assert item["id"] in message
    caption = _tiktok_item(sandbox_content)["text"]
    assert caption not in message  # reasons are safe to store next to a dead letter


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ("not an object", "not an object"),
        ({"text": "hello"}, "has no id"),
        ({"error": "Profile not found", "input": "@ghost"}, "actor error report: Profile not found"),
    ],
)
def test_tiktok_items_without_a_post(item: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        tiktok_item_to_post(item, scraped_at=SCRAPED_AT)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ([1, 2], "not an object"),
        ({"text": "x", "time": "2026-01-01T00:00:00.000Z"}, "no postId and no post id in its url"),
        ({"url": "https://www.facebook.com/reel/123456789/", "time": "yesterday"}, "time 'yesterday'"),
        ({"url": "https://www.facebook.com/reel/123456789/"}, "no time and no timestamp"),
        (
            {"url": "https://www.facebook.com/reel/123456789/", "timestamp": 1700000000, "likes": -1},
            "likes=-1",
        ),
        (
            {"url": "https://www.facebook.com/reel/123456789/", "timestamp": 1700000000, "user": "me"},
            "user is a str",
        ),
        ({"url": "https://example.org/x", "error": "Invalid Facebook URL"}, "actor error report"),
        ({"postId": "abc def", "timestamp": 1700000000}, "is not a Facebook id"),
    ],
)
def test_bad_facebook_items_raise_clear_value_errors(item: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        facebook_item_to_post(item, scraped_at=SCRAPED_AT)


def test_facebook_timestamp_in_milliseconds_and_zone_less_time() -> None:
    base = {"url": "https://www.facebook.com/reel/123456789/"}
    seconds = facebook_item_to_post({**base, "timestamp": 1_700_000_000}, scraped_at=SCRAPED_AT)
    millis = facebook_item_to_post({**base, "timestamp": 1_700_000_000_000}, scraped_at=SCRAPED_AT)
    naive = facebook_item_to_post({**base, "time": "2023-11-14T22:13:20"}, scraped_at=SCRAPED_AT)
    assert seconds.created_at == millis.created_at == naive.created_at
