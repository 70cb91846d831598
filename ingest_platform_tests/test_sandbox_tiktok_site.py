"""Tests for the offline TikTok-like sandbox: content, pages, APIs, server and a real Chromium run."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from ingest_platform.sandbox import REFERENCE_TIME, SandboxContent, SandboxServer, SiteScenario
from ingest_platform.sandbox.tiktok_site import STATUS_USER_NOT_FOUND
from ingest_platform.scraping.browser import resolve_browser_executable

_REHYDRATION = re.compile(
    r'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">(.*?)</script>', re.S
)
_EMAILISH = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PHONEISH = re.compile(r"\+?\(?\d[\d ().-]{7,}\d")
# The sandbox is tested with a bare browser (no stealth), wherever INGEST_BROWSER_PATH points.
_CHROMIUM = resolve_browser_executable()


@pytest.fixture(scope="module")
def content() -> SandboxContent:
    return SandboxContent.generate()


@pytest.fixture(scope="module")
def server(content: SandboxContent) -> Iterator[SandboxServer]:
    with SandboxServer(content=content) as running:
        yield running


def _get(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "sandbox-tests/1.0"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


def _get_json(url: str) -> dict[str, Any]:
    status, body = _get(url)
    assert status == 200, body
    return json.loads(body)


def _rehydration_text(page: str) -> str:
    match = _REHYDRATION.search(page)
    assert match, "page has no __UNIVERSAL_DATA_FOR_REHYDRATION__ script"
    return match.group(1)


def _scope(page: str) -> dict[str, Any]:
    return json.loads(_rehydration_text(page))["__DEFAULT_SCOPE__"]


def _walk(server: SandboxServer, path: str, key: str, value: str) -> tuple[list[str], list[dict[str, Any]]]:
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        query = urllib.parse.urlencode({key: value, "count": 30, "cursor": cursor})
        page = _get_json(server.url(f"{path}?{query}"))
        assert page["statusCode"] == 0
        pages.append(page)
        ids += [item["id"] for item in page["itemList"]]
        cursor = page["cursor"]
        assert isinstance(cursor, str)
        if not page["hasMore"]:
            return ids, pages
        assert len(pages) < 50, "pagination does not terminate"


# ------------------------------------------------------------------------------- content ---
def test_generation_is_deterministic(content: SandboxContent) -> None:
    again = SandboxContent.generate(seed=7)
    assert again.fingerprint() == content.fingerprint()
    assert again.pii_values() == content.pii_values()
    assert SandboxContent.generate(seed=8).fingerprint() != content.fingerprint()
    assert len(content.profiles) == 6 and len(content.posts_by_id) == 6 * 75 and len(content.hashtags) == 4


def test_post_ids_encode_create_time(content: SandboxContent) -> None:
    newest = int(REFERENCE_TIME.timestamp())
    oldest = int((REFERENCE_TIME - timedelta(days=60)).timestamp())
    for post_id, post in content.posts_by_id.items():
        item = post.item
        assert len(post_id) == 19 and post_id.isdigit()
        assert isinstance(item["createTime"], str)
        assert int(post_id) >> 32 == int(item["createTime"]) == post.create_time
        assert oldest <= post.create_time <= newest


def test_items_follow_the_real_quirks(content: SandboxContent) -> None:
    items = [content.item_struct(post_id) for post_id in content.posts_by_id]
    for item in items:
        stats, stats_v2 = item["stats"], item["statsV2"]
        assert isinstance(stats["collectCount"], str)
        assert all(isinstance(v, int) for k, v in stats.items() if k != "collectCount")
        assert all(isinstance(v, str) for v in stats_v2.values()) and "repostCount" in stats_v2
        assert stats["playCount"] >= stats["diggCount"] >= stats["commentCount"]
        assert isinstance(item["author"]["createTime"], int)
        assert set(item["author"]) >= {"id", "uniqueId", "nickname", "secUid", "signature", "verified"}
        assert set(item["music"]) >= {"id", "title", "authorName", "original", "duration"}
        assert set(item["video"]) >= {"id", "duration", "width", "height", "cover", "playAddr"}
        for extra in item["textExtra"]:
            written = item["desc"][extra["start"] : extra["end"]]
            if extra["type"] == 1:
                assert written.lower() == "#" + extra["hashtagName"]
            else:
                assert written == "@" + extra["userUniqueId"]
    assert any("imagePost" in item for item in items)
    assert any(item["isAd"] for item in items) and any(item["IsAigc"] for item in items)
    assert any(not item["challenges"] and item["textExtra"] for item in items)  # real quirk
    assert any(extra["type"] == 0 for item in items for extra in item["textExtra"])
    assert len({item["locationCreated"] for item in items}) > 1
    # item_struct hands out copies: callers cannot corrupt what the site serves
    items[0]["desc"] = "changed"
    assert content.item_struct(items[0]["id"])["desc"] != "changed"


def test_hashtags_list_exactly_the_posts_that_carry_them(content: SandboxContent) -> None:
    for hashtag in content.hashtags:
        carrying = {
            post_id
            for post_id, post in content.posts_by_id.items()
            if any(e["type"] == 1 and e["hashtagName"] == hashtag.title for e in post.item["textExtra"])
        }
        assert set(hashtag.post_ids) == carrying and len(hashtag.post_ids) == len(carrying)
        assert len(carrying) >= 40
        times = [content.posts_by_id[i].create_time for i in hashtag.post_ids]
        assert times == sorted(times, reverse=True)


# --------------------------------------------------------------------------------- pages ---
def test_pages_embed_parseable_rehydration_json(server: SandboxServer, content: SandboxContent) -> None:
    profile, hashtag = content.profiles[0], content.hashtags[0]
    post_id = profile.post_ids[0]

    status, page = _get(server.url(f"/@{profile.unique_id}"))
    assert status == 200
    raw = _rehydration_text(page)
    assert "\\u002F" in raw and "/" not in raw and "<" not in raw
    scope = _scope(page)
    assert "webapp.app-context" in scope
    detail = scope["webapp.user-detail"]
    assert detail["statusCode"] == 0
    assert detail["userInfo"]["user"]["secUid"] == profile.sec_uid
    assert detail["userInfo"]["itemList"] == []  # no videos server-side, like the real site
    assert all(isinstance(v, int) for v in detail["userInfo"]["stats"].values())
    assert all(isinstance(v, str) for v in detail["userInfo"]["statsV2"].values())

    scope = _scope(_get(server.url(f"/tag/{hashtag.title}"))[1])
    challenge = scope["webapp.challenge-detail"]
    assert challenge["statusCode"] == 0 and challenge["challengeInfo"]["challenge"]["id"] == hashtag.id

    scope = _scope(_get(server.url(f"/@{profile.unique_id}/video/{post_id}"))[1])
    video = scope["webapp.video-detail"]
    assert video["statusCode"] == 0 and video["statusMsg"] == ""
    assert video["itemInfo"]["itemStruct"] == content.item_struct(post_id)

    assert _scope(_get(server.url("/@nobody.here.at.all"))[1])["webapp.user-detail"]["statusCode"] == (
        STATUS_USER_NOT_FOUND
    )
    assert _scope(_get(server.url(f"/@{profile.unique_id}/video/1"))[1])["webapp.video-detail"]["statusCode"]
    status, login = _get(server.url("/login"))
    assert status == 200 and 'type="password"' in login
    assert _get_json(server.url("/__sandbox__/health")) == {"ok": True}


def test_pagination_walks_every_item_exactly_once(server: SandboxServer, content: SandboxContent) -> None:
    profile = content.profiles[1]
    ids, pages = _walk(server, "/api/post/item_list/", "secUid", profile.sec_uid)
    assert ids == list(profile.post_ids) and len(set(ids)) == 75
    assert [len(p["itemList"]) for p in pages] == [30, 30, 15]
    assert [p["hasMore"] for p in pages] == [True, True, False]

    detail = _get_json(server.url(f"/api/challenge/detail/?challengeName={content.hashtags[2].title}"))
    challenge_id = detail["challengeInfo"]["challenge"]["id"]
    ids, pages = _walk(server, "/api/challenge/item_list/", "challengeID", challenge_id)
    assert ids == list(content.hashtags[2].post_ids) and len(set(ids)) == len(ids)
    assert len(pages) >= 2 and pages[-1]["hasMore"] is False

    small = _get_json(server.url(f"/api/post/item_list/?secUid={profile.sec_uid}&count=7&cursor=0"))
    assert len(small["itemList"]) == 7
    big = _get_json(server.url(f"/api/post/item_list/?secUid={profile.sec_uid}&count=500&cursor=0"))
    assert len(big["itemList"]) == 30
    user = _get_json(server.url(f"/api/user/detail/?uniqueId={profile.unique_id}"))
    assert user["statusCode"] == 0 and user["userInfo"]["user"]["uniqueId"] == profile.unique_id
    status, _ = _get(server.url(f"/api/post/item_list/?secUid={profile.sec_uid}&cursor=abc"))
    assert status == 400
    unknown = _get_json(server.url("/api/post/item_list/?secUid=MS4wLjABAAAAnope&cursor=0"))
    assert unknown["statusCode"] == STATUS_USER_NOT_FOUND and unknown["itemList"] == []


def test_broken_json_paths_serve_invalid_json(content: SandboxContent) -> None:
    broken, fine = content.profiles[0], content.profiles[1]
    scenario = SiteScenario(broken_json_paths={f"/@{broken.unique_id}", "/tag/*"})
    with SandboxServer(content=content, scenario=scenario) as site:
        with pytest.raises(json.JSONDecodeError):
            json.loads(_rehydration_text(_get(site.url(f"/@{broken.unique_id}"))[1]))
        with pytest.raises(json.JSONDecodeError):
            json.loads(_rehydration_text(_get(site.url(f"/tag/{content.hashtags[0].title}"))[1]))
        assert _scope(_get(site.url(f"/@{fine.unique_id}"))[1])["webapp.user-detail"]["statusCode"] == 0
        # The scenario is read per request: fixing it on a running server takes effect at once.
        scenario.broken_json_paths = set()
        assert _scope(_get(site.url(f"/@{broken.unique_id}"))[1])["webapp.user-detail"]["statusCode"] == 0

        scenario.item_list_latency_ms = 150
        started = time.monotonic()
        _get_json(site.url(f"/api/post/item_list/?secUid={fine.sec_uid}&count=1&cursor=0"))
        assert time.monotonic() - started >= 0.15


def test_ground_truth_covers_what_the_site_serves(server: SandboxServer, content: SandboxContent) -> None:
    pii = content.pii_values()
    kinds = content.pii_by_kind()
    assert kinds["emails"] and kinds["phones"] and pii == set().union(*kinds.values())
    assert any(p.emails for p in content.profiles) and any(p.phones for p in content.profiles)
    assert any(p.bio_mentions for p in content.profiles)

    served_texts: list[str] = []
    for profile in content.profiles:
        _, page = _get(server.url(f"/@{profile.unique_id}"))
        user = _scope(page)["webapp.user-detail"]["userInfo"]["user"]
        assert {user["uniqueId"], user["nickname"], user["secUid"]} <= pii
        for value in (*profile.emails, *profile.phones):
            assert value in user["signature"] and value in page  # bios with PII really are served
        served_texts.append(user["signature"])
        _, pages = _walk(server, "/api/post/item_list/", "secUid", profile.sec_uid)
        for item in (item for p in pages for item in p["itemList"]):
            served_texts.append(item["desc"])
            assert {item["author"]["uniqueId"], item["author"]["nickname"], item["author"]["secUid"]} <= pii
            for extra in item["textExtra"]:
                if extra["type"] == 0:
                    assert {extra["userUniqueId"], extra["secUid"]} <= pii
            post = content.posts_by_id[item["id"]]
            assert all(value in item["desc"] for value in (*post.emails, *post.phones))

    # Strip every known value: no email- or phone-looking text may be left over.
    for text in served_texts:
        for value in sorted(pii, key=len, reverse=True):
            text = text.replace(value, " ")
        assert not _EMAILISH.search(text), text
        assert not _PHONEISH.search(text), text


# -------------------------------------------------------------------------------- server ---
def test_server_binds_only_to_loopback(content: SandboxContent) -> None:
    for host in ("0.0.0.0", "192.168.1.5", "example.com", "::"):
        with pytest.raises(ValueError, match="host"):
            SandboxServer(content=content, host=host)
    site = SandboxServer(content=content)
    with pytest.raises(RuntimeError):
        _ = site.base_url
    with site:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", site.base_url)
        _get(site.url("/@" + content.profiles[0].unique_id))
        _get(site.url("/__sandbox__/health"))  # control plane: not counted
        assert sum(site.clients.snapshot().values()) == 1
        assert any(key.user_agent == "sandbox-tests/1.0" for key in site.clients.snapshot())
    assert not site.running


def test_chromium_page_fetches_and_renders_items(server: SandboxServer, content: SandboxContent) -> None:
    from playwright.sync_api import sync_playwright

    profile = content.profiles[2]
    item_selector = '[data-e2e="user-post-item"]'
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_CHROMIUM,
            args=[
                "--no-sandbox",
                "--headless=new",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            list_calls: list[str] = []
            page.on("response", lambda r: list_calls.append(r.url) if "/item_list/" in r.url else None)
            page.goto(server.url(f"/@{profile.unique_id}"), wait_until="domcontentloaded")
            first_page = "window.__sandboxState && window.__sandboxState.pages === 1"
            page.wait_for_function(first_page, timeout=10_000)
            assert page.locator(item_selector).count() == 30
            assert len(list_calls) == 1 and "cursor=0" in list_calls[0]

            assert page.evaluate("window.__loadMore()") == 60
            assert page.locator(item_selector).count() == 60

            # Scrolling to the bottom loads the last page, after which hasMore is false.
            page.mouse.wheel(0, 100_000)
            page.wait_for_function("window.__sandboxState.hasMore === false", timeout=10_000)
            ids = page.eval_on_selector_all(item_selector, "els => els.map(e => e.dataset.id)")
            assert ids == list(profile.post_ids)
            assert len(list_calls) == 3

            # The hashtag page runs the same loader against the challenge item_list.
            hashtag = content.hashtags[0]
            page.goto(server.url(f"/tag/{hashtag.title}"), wait_until="domcontentloaded")
            page.wait_for_function(first_page, timeout=10_000)
            assert page.locator('[data-e2e="challenge-item"]').count() == 30
            assert "challengeID=" + hashtag.id in list_calls[-1]
        finally:
            browser.close()
