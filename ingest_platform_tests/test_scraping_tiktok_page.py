"""Tests for ``ingest_platform.scraping.tiktok_page``: real captured TikTok pages and synthetic cases."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest_platform.models import Post
from ingest_platform.scraping.tiktok_page import (
    PageKind,
    PageStatus,
    StateScriptInvalid,
    StateScriptNotFound,
    extract_state,
    item_to_post,
    page_result_to_jsonl,
    parse_document,
    parse_file,
    parse_item_list,
    parse_page,
)
from ingest_platform_tests.conftest import real_fixtures_dir

TIKTOK = real_fixtures_dir() / "tiktok"
AHORMOZI_HTML = TIKTOK / "video-ahormozi-7336007528070958382.html"
PM_ALLIANCE_JSON = TIKTOK / "video-detail-pm-alliance-7441618513669655864.json"
CONVERSION_DOC_JSON = TIKTOK / "video-detail-conversion-doc-7430511437199543584.json"
EDELMANIR_JSON = TIKTOK / "user-detail-edelmanir.json"
EMPTY_SHELL_HTML = TIKTOK / "tag-saas-empty-shell.tail.html"

SCRAPED_AT = datetime(2026, 9, 28, 21, 3, tzinfo=UTC)
CTX: dict[str, Any] = {"scraped_at": SCRAPED_AT, "proxy_id": "p-0123456789", "backend": "browser"}


def _read(path: Path) -> str:
    assert path.is_file(), f"fixture missing: {path}"
    return path.read_text(encoding="utf-8")


def _item(path: Path) -> dict[str, Any]:
    return json.loads(_read(path))["itemInfo"]["itemStruct"]


def _page(scopes: dict[str, Any], *, tag: str | None = None) -> str:
    """A minimal page shaped like the real one: state JSON with '/' '<' '>' escaped."""
    body = json.dumps({"__DEFAULT_SCOPE__": scopes}, ensure_ascii=False)
    body = body.replace("/", "\\u002F").replace("<", "\\u003C").replace(">", "\\u003E")
    tag = tag or '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'
    return f"<!DOCTYPE html><html><head><title>TikTok</title></head><body>{tag}{body}</script></body></html>"


# --------------------------------------------------------------------------------------------------
# The real video page
# --------------------------------------------------------------------------------------------------


def test_real_video_page_parses_to_one_exact_post() -> None:
    url = "https://www.tiktok.com/@ahormozi/video/7336007528070958382"
    result = parse_page(_read(AHORMOZI_HTML), source_url=url, **CTX)

    assert result.kind == "video"
    assert result.status is PageStatus.OK
    assert result.status_code == 0
    assert result.error is None
    assert result.bad_items == []
    assert len(result.posts) == 1
    post = result.posts[0]
    assert post.post_id == "7336007528070958382"
    assert post.description.startswith("The Value Equation: Dream outcome + Perceived Likelihood")
    assert post.description.endswith("= Value")
    # createTime is the string "1708047384"; it wins over the id's embedded time (1708047354).
    assert post.created_at == datetime(2024, 2, 16, 1, 36, 24, tzinfo=UTC)
    assert post.author_id == "6910214721136952325"
    assert post.author_handle == "ahormozi"
    assert post.author_nickname == "Alex Hormozi"
    assert post.author_sec_uid.startswith(
        "MS4wLjABAAAAGlVEcHG7w_5Eo7zPt2RAqxzn92vA0KUgvXUE4sM2woNlTSdvQ9aeZhPb"
    )
    assert post.author_verified is True
    assert (post.play_count, post.like_count, post.comment_count, post.share_count) == (5675, 249, 8, 9)
    assert post.collect_count == 103  # "103" in the page: a string
    assert post.hashtags == []  # challenges and textExtra are empty and the caption has no #tag
    assert post.mentions == []
    assert post.music_id == "7336007642428508970"
    assert post.music_title == "original sound"
    assert post.music_author == "Alex Hormozi"
    assert post.music_original is True
    assert post.duration_seconds == 21.0
    assert post.location_created == "US"
    assert post.is_ad is False
    assert post.is_slideshow is False
    assert post.source_url == url
    assert post.scraped_at == SCRAPED_AT
    assert post.proxy_id == "p-0123456789"
    assert post.backend == "browser"


def test_extract_state_on_the_real_page_decodes_escapes() -> None:
    html = _read(AHORMOZI_HTML)
    assert "\\u002F" in html  # the page really escapes '/' inside the JSON
    state = extract_state(html)
    assert state.form == "universal"
    assert "webapp.video-detail" in state.scopes
    canonical = state.scopes["seo.abtest"]["canonical"]
    assert canonical == "https://www.tiktok.com/@ahormozi/video/7336007528070958382"


def test_attribute_order_and_quotes_do_not_matter() -> None:
    detail = {"itemInfo": {"itemStruct": _item(PM_ALLIANCE_JSON)}, "statusCode": 0, "statusMsg": ""}
    for tag in (
        '<script type="application/json" id="__UNIVERSAL_DATA_FOR_REHYDRATION__">',
        "<script nonce=abc id='__UNIVERSAL_DATA_FOR_REHYDRATION__' type='application/json'>",
        "<SCRIPT ID=__UNIVERSAL_DATA_FOR_REHYDRATION__>",
    ):
        result = parse_page(_page({"webapp.video-detail": detail}, tag=tag), source_url="u", **CTX)
        assert result.status is PageStatus.OK, tag
        assert result.posts[0].post_id == "7441618513669655864"


def test_other_ids_containing_the_name_are_not_mistaken_for_the_state() -> None:
    html = '<script data-id="__UNIVERSAL_DATA_FOR_REHYDRATION__">{"not": "state"}</script>' + _page(
        {"webapp.video-detail": {"statusCode": 10204, "statusMsg": ""}}
    )
    assert parse_page(html, source_url="u", **CTX).status is PageStatus.IP_BLOCKED


# --------------------------------------------------------------------------------------------------
# Real webapp.* JSON values
# --------------------------------------------------------------------------------------------------


def test_pm_alliance_video_detail_json() -> None:
    result = parse_document(_read(PM_ALLIANCE_JSON), source_url="https://www.tiktok.com/@pm_alliance", **CTX)
    assert (result.kind, result.status, result.status_code) == ("video", "ok", 0)
    post = result.posts[0]
    assert post.post_id == "7441618513669655864"
    assert post.collect_count == 1  # collectCount "1"
    assert (post.play_count, post.like_count, post.comment_count, post.share_count) == (732, 9, 0, 0)
    assert post.location_created == "GB"
    assert post.created_at == datetime.fromtimestamp(1732636833, UTC)
    assert post.hashtags == [
        "productmarketing",
        "freetrial",
        "conversion",
        "freemium",
        "marketingstrategy",
        "saas",  # "#SaaS" in the caption: lower-cased and de-duplicated with the challenge
        "fyp",
        "thoughts",
    ]
    assert post.author_handle == "pm_alliance"
    assert post.music_title == "original sound - Product Marketing Alliance"
    assert post.duration_seconds == 56.0


def test_conversion_doc_video_detail_json_with_localised_music_title() -> None:
    result = parse_file(CONVERSION_DOC_JSON, scraped_at=SCRAPED_AT)
    assert (result.kind, result.status) == ("video", "ok")
    post = result.posts[0]
    assert post.post_id == "7430511437199543584"
    assert post.music_title == "Originalton"
    assert post.collect_count == 3649
    assert post.play_count == 83200
    assert post.location_created == "DE"
    assert post.hashtags[:3] == ["marketingnotiktok", "neuromarketing", "onlinemarketing"]
    assert len(post.hashtags) == 9
    assert post.source_url == CONVERSION_DOC_JSON.resolve().as_uri()


def test_user_detail_uses_exact_stats_v2_counts() -> None:
    result = parse_file(EDELMANIR_JSON, source_url="https://www.tiktok.com/@edelmanir", scraped_at=SCRAPED_AT)
    assert (result.kind, result.status, result.status_code) == ("user", "ok", 0)
    assert result.posts == []  # the server-rendered profile carries no videos
    user = result.user
    assert user is not None
    assert user.id == "6998934500935877637"
    assert user.unique_id == "edelmanir"
    assert user.sec_uid == "MS4wLjABAAAA2QRaKBa4hmCwPAwFQlOvR00QTUjcPCJSClxlbiE-jQ18cfOKiDt_wpfvh8Vp0ESw"
    assert user.nickname == "ניר אידלמן"
    assert user.signature.startswith("אל תמכור קרח לאסקימואים")
    assert user.verified is False
    assert user.private_account is False
    # stats says 68300 / 926500 (rounded); statsV2 has the exact strings.
    assert user.follower_count == 68259
    assert user.following_count == 839
    assert user.heart_count == 926528
    assert user.video_count == 1737


def test_empty_shell_tag_page_is_a_soft_block_not_broken() -> None:
    html = _read(EMPTY_SHELL_HTML)
    result = parse_page(html, source_url="https://www.tiktok.com/tag/saas", **CTX)
    assert result.status is PageStatus.EMPTY_SHELL
    assert result.kind == "challenge"
    assert result.posts == []
    assert result.blocked
    # Without a page URL the kind still comes from the state's canonical URL.
    from_file = parse_file(EMPTY_SHELL_HTML, scraped_at=SCRAPED_AT)
    assert (from_file.kind, from_file.status) == ("challenge", "empty_shell")


def test_complete_state_without_detail_scope_is_an_empty_shell() -> None:
    html = _page(
        {
            "webapp.app-context": {"language": "en"},
            "seo.abtest": {"canonical": "https://www.tiktok.com/tag/saas"},
            "webapp.a-b": {"b_c": "2"},
        }
    )
    result = parse_page(html, source_url="file:///tmp/page.html", **CTX)
    assert (result.kind, result.status, result.status_code) == ("challenge", "empty_shell", None)


# --------------------------------------------------------------------------------------------------
# Broken pages and TikTok status codes
# --------------------------------------------------------------------------------------------------


def test_invalid_state_json_is_broken() -> None:
    tag = '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'
    html = f'<html>{tag}{{"__DEFAULT_SCOPE__": {{</script>'
    with pytest.raises(StateScriptInvalid):
        extract_state(html)
    result = parse_page(html, source_url="https://www.tiktok.com/@x/video/1", **CTX)
    assert (result.kind, result.status) == ("video", "broken")
    assert "not valid JSON" in result.error


@pytest.mark.parametrize(
    "html",
    [
        "<html><body><div id='cs'>Please wait...</div></body></html>",  # a WAF challenge page
        "",
        '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">   </script>',
        '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">[1, 2]</script>',
    ],
)
def test_pages_without_usable_state_are_broken(html: str) -> None:
    result = parse_page(html, source_url="https://www.tiktok.com/@x", **CTX)
    assert result.status is PageStatus.BROKEN
    assert result.kind == "user"
    assert result.error


def test_no_state_script_raises_not_found() -> None:
    with pytest.raises(StateScriptNotFound):
        extract_state("<html><script>var x = 1;</script></html>")


@pytest.mark.parametrize(
    ("scope", "code", "status", "kind"),
    [
        ("webapp.video-detail", 10204, PageStatus.IP_BLOCKED, PageKind.VIDEO),
        ("webapp.video-detail", 10216, PageStatus.PRIVATE_POST, PageKind.VIDEO),
        ("webapp.video-detail", 10222, PageStatus.PRIVATE_ACCOUNT, PageKind.VIDEO),
        ("webapp.user-detail", 10222, PageStatus.PRIVATE_ACCOUNT, PageKind.USER),
        ("webapp.user-detail", 10221, PageStatus.USER_NOT_FOUND, PageKind.USER),
        ("webapp.challenge-detail", 10204, PageStatus.IP_BLOCKED, PageKind.CHALLENGE),
        ("webapp.video-detail", 10999, PageStatus.OTHER_ERROR, PageKind.VIDEO),
    ],
)
def test_status_codes(scope: str, code: int, status: PageStatus, kind: PageKind) -> None:
    html = _page({"webapp.app-context": {}, scope: {"statusCode": code, "statusMsg": ""}})
    result = parse_page(html, source_url="https://www.tiktok.com/", **CTX)
    assert (result.kind, result.status, result.status_code) == (kind, status, code)
    assert result.posts == []
    assert str(code) in result.error


def test_ip_block_marks_the_result_blocked() -> None:
    html = _page({"webapp.video-detail": {"statusCode": 10204, "statusMsg": ""}})
    result = parse_page(html, source_url="https://www.tiktok.com/@a/video/1", **CTX)
    assert result.blocked and not result.ok


def test_private_account_user_page_keeps_the_profile_header() -> None:
    detail = json.loads(_read(EDELMANIR_JSON))
    detail["statusCode"] = 10222
    detail["userInfo"]["user"]["privateAccount"] = True
    result = parse_page(
        _page({"webapp.user-detail": detail}), source_url="https://www.tiktok.com/@edelmanir", **CTX
    )
    assert result.status is PageStatus.PRIVATE_ACCOUNT
    assert result.user is not None and result.user.private_account is True


def test_status_code_as_string_and_missing_item_struct() -> None:
    html = _page({"webapp.video-detail": {"statusCode": "0", "itemInfo": {}}})
    result = parse_page(html, source_url="u", **CTX)
    assert (result.status, result.status_code) == (PageStatus.EMPTY_SHELL, 0)


def test_challenge_detail_page() -> None:
    detail = {
        "challengeInfo": {
            "challenge": {"id": "2217821", "title": "saas"},
            "stats": {"videoCount": 120000, "viewCount": 2000000000},
            "statsV2": {"videoCount": "123456", "viewCount": "1987654321"},
        },
        "statusCode": 0,
    }
    result = parse_page(
        _page({"webapp.challenge-detail": detail}), source_url="https://www.tiktok.com/tag/saas", **CTX
    )
    assert (result.kind, result.status) == ("challenge", "ok")
    assert result.challenge is not None
    assert (result.challenge.id, result.challenge.title) == ("2217821", "saas")
    assert (result.challenge.video_count, result.challenge.view_count) == (123456, 1987654321)


def test_video_page_with_a_malformed_item_is_broken_and_keeps_the_item() -> None:
    item = _item(PM_ALLIANCE_JSON)
    item["stats"] = {"playCount": "lots"}
    item["statsV2"] = None
    html = _page({"webapp.video-detail": {"itemInfo": {"itemStruct": item}, "statusCode": 0}})
    result = parse_page(html, source_url="u", **CTX)
    assert result.status is PageStatus.BROKEN
    assert result.posts == []
    assert len(result.bad_items) == 1
    assert result.bad_items[0][0] is item or result.bad_items[0][0] == item
    assert "playCount" in result.bad_items[0][1]


# --------------------------------------------------------------------------------------------------
# SIGI_STATE (older pages)
# --------------------------------------------------------------------------------------------------


def _sigi_item(item_id: str, desc: str, create_time: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "desc": desc,
        "createTime": create_time,
        "author": "sigi_user",
        "authorId": "6800000000000000001",
        "authorSecId": "MS4wLjABAAAAsigi",
        "nickname": "Sigi User",
        "stats": {"diggCount": 10, "shareCount": 1, "commentCount": 2, "playCount": 300, "collectCount": 4},
        "challenges": [{"id": "1", "title": "Retro"}],
        "textExtra": [{"type": 0, "userUniqueId": "Friend_One", "start": 0, "end": 11}],
        "music": {"id": 555, "title": "song", "authorName": "band", "original": False},
        "video": {"duration": 15},
        "isAd": False,
    }


def _sigi_state() -> dict[str, Any]:
    return {
        "AppContext": {"appContext": {"language": "en"}},
        "UserPage": {"uniqueId": "sigi_user", "statusCode": 0},
        "UserModule": {
            "users": {
                "sigi_user": {
                    "id": "6800000000000000001",
                    "uniqueId": "sigi_user",
                    "nickname": "Sigi User",
                    "secUid": "MS4wLjABAAAAsigi",
                    "signature": "old-style page",
                    "verified": True,
                    "privateAccount": False,
                }
            },
            "stats": {
                "sigi_user": {"followerCount": 1200, "followingCount": 3, "heart": 5000, "videoCount": 2}
            },
        },
        "ItemModule": {
            "7000000000000000001": _sigi_item(
                "7000000000000000001", "@friend_one first #Retro #newtag", 1600000000
            ),
            "7000000000000000002": _sigi_item("7000000000000000002", "second", 1600000100),
        },
    }


def test_sigi_state_profile_page() -> None:
    state = json.dumps(_sigi_state()).replace("/", "\\u002F")
    html = f'<html><script id="SIGI_STATE" type="application/json">{state}</script></html>'
    result = parse_page(html, source_url="https://www.tiktok.com/@sigi_user", **CTX)
    assert (result.kind, result.status) == ("user", "ok")
    assert [p.post_id for p in result.posts] == ["7000000000000000001", "7000000000000000002"]
    first = result.posts[0]
    assert first.author_handle == "sigi_user"
    assert first.author_id == "6800000000000000001"
    assert first.author_sec_uid == "MS4wLjABAAAAsigi"
    assert first.author_nickname == "Sigi User"
    assert first.author_bio == "old-style page"  # from the UserModule
    assert first.author_verified is True
    assert first.created_at == datetime.fromtimestamp(1600000000, UTC)
    assert first.hashtags == ["retro", "newtag"]
    assert first.mentions == ["friend_one"]
    assert first.music_id == "555"
    assert first.collect_count == 4
    assert result.user is not None
    assert (result.user.unique_id, result.user.follower_count, result.user.heart_count) == (
        "sigi_user",
        1200,
        5000,
    )


def test_sigi_persisted_data_assignment_form() -> None:
    state = {
        "VideoPage": {"statusCode": 0},
        "ItemModule": {"7000000000000000001": _sigi_item("7000000000000000001", "x", 1600000000)},
    }
    html = (
        "<script id=\"sigi-persisted-data\">window['SIGI_STATE']="
        + json.dumps(state)
        + ";window['SIGI_RETRY']={\"x\":1}</script>"
    )
    result = parse_page(html, source_url="https://www.tiktok.com/@sigi_user/video/7000000000000000001", **CTX)
    assert (result.kind, result.status) == ("video", "ok")
    assert result.posts[0].author_handle == "sigi_user"


def test_sigi_status_code_is_honoured() -> None:
    state = {"VideoPage": {"statusCode": 10216}, "ItemModule": {}}
    html = f'<script id="SIGI_STATE" type="application/json">{json.dumps(state)}</script>'
    result = parse_page(html, source_url="u", **CTX)
    assert (result.kind, result.status, result.status_code) == ("video", "private_post", 10216)


def test_universal_state_is_preferred_over_sigi() -> None:
    sigi = f'<script id="SIGI_STATE" type="application/json">{json.dumps(_sigi_state())}</script>'
    html = sigi + _page({"webapp.video-detail": {"statusCode": 10204}})
    assert parse_page(html, source_url="u", **CTX).status is PageStatus.IP_BLOCKED


# --------------------------------------------------------------------------------------------------
# item_to_post
# --------------------------------------------------------------------------------------------------


def _post(item: Any) -> Post:
    return item_to_post(item, source_url="https://www.tiktok.com/@x/video/1", scraped_at=SCRAPED_AT)


def test_create_time_as_int_string_or_missing() -> None:
    item = _item(PM_ALLIANCE_JSON)
    assert _post(item).created_at == datetime.fromtimestamp(1732636833, UTC)
    assert _post({**item, "createTime": 1732636833}).created_at == datetime.fromtimestamp(1732636833, UTC)
    # Missing or 0: fall back to the snowflake id (top 32 bits are unix seconds).
    for missing in (None, 0, "0", ""):
        fallback = {**item, "createTime": missing}
        assert _post(fallback).created_at == datetime.fromtimestamp(7441618513669655864 >> 32, UTC)
    without_key = {k: v for k, v in item.items() if k != "createTime"}
    assert _post(without_key).created_at.year == 2024


def test_counts_fall_back_to_stats_v2_strings() -> None:
    item = _item(PM_ALLIANCE_JSON)
    del item["stats"]
    post = _post(item)
    assert (post.play_count, post.like_count, post.collect_count) == (732, 9, 1)
    item["statsV2"] = {}
    assert _post(item).play_count is None


def test_hashtags_and_mentions_from_text_extra_and_caption() -> None:
    item = {
        "id": "7441618513669655864",
        "createTime": "1732636833",
        "desc": "Loved this with @Alice_B and @bob.c. Mail me@example.com #Growth #growth #café #日本 C#",
        "challenges": [],
        "textExtra": [
            {"type": 0, "userUniqueId": "alice_b"},
            {"type": 1, "hashtagName": "SaaS"},
            {"type": "1", "hashtagName": "#Growth"},
        ],
    }
    post = _post(item)
    assert post.hashtags == ["saas", "growth", "café", "日本"]
    assert post.mentions == ["alice_b", "bob.c"]
    assert post.author_handle is None
    assert post.play_count is None


def test_slideshow_detection() -> None:
    item = _item(PM_ALLIANCE_JSON)
    assert _post({**item, "imagePost": {"images": [{"imageURL": {}}]}}).is_slideshow is True
    assert _post({**item, "imagePost": {"images": []}}).is_slideshow is False
    assert _post({**item, "imagePost": None}).is_slideshow is False


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda item: [1, 2], "not an object"),
        (lambda item: {k: v for k, v in item.items() if k != "id"}, "no id"),
        (lambda item: {**item, "id": ""}, "no id"),
        (lambda item: {**item, "id": {"x": 1}}, "no id"),
        (lambda item: {**item, "createTime": "yesterday"}, "createTime"),
        (lambda item: {**item, "createTime": 10**15}, "createTime"),
        (lambda item: {**item, "id": "abc", "createTime": None}, "createTime"),
        (lambda item: {**item, "stats": {"playCount": "lots"}, "statsV2": {}}, "playCount"),
        (lambda item: {**item, "stats": {"diggCount": -1}, "statsV2": None}, "diggCount"),
        (lambda item: {**item, "stats": "many"}, "stats"),
        (lambda item: {**item, "author": ["ahormozi"]}, "author"),
        (lambda item: {**item, "author": {**item["author"], "uniqueId": 42.5}}, "author.uniqueId"),
        (lambda item: {**item, "challenges": "saas"}, "challenges"),
        (lambda item: {**item, "textExtra": {"type": 1}}, "textExtra"),
        (lambda item: {**item, "music": "original sound"}, "music"),
        (lambda item: {**item, "video": {"duration": "long"}}, "video.duration"),
        (lambda item: {**item, "desc": ["a"]}, "desc"),
        (lambda item: {**item, "isAd": "maybe"}, "isAd"),
    ],
)
def test_malformed_items_raise_value_error_with_a_reason(mutate: Any, reason: str) -> None:
    item = mutate(_item(PM_ALLIANCE_JSON))
    with pytest.raises(ValueError) as excinfo:
        _post(item)
    assert type(excinfo.value) is ValueError
    assert reason in str(excinfo.value)


JUNK: tuple[Any, ...] = (None, 0, -5, 1.5, True, "", "x", [], [None], {}, {"a": None}, float("nan"))


def test_item_to_post_only_ever_raises_value_error() -> None:
    """Replace every field (top level and one level down) by junk: a Post or a ValueError, nothing else."""
    base = _item(PM_ALLIANCE_JSON)
    tried = 0
    for key, value in base.items():
        for junk in JUNK:
            variants = [{**base, key: junk}]
            if isinstance(value, dict):
                variants += [{**base, key: {**value, sub: junk}} for sub in value]
            for variant in variants:
                tried += 1
                try:
                    post = _post(variant)
                except ValueError:
                    continue
                assert isinstance(post, Post)
    assert tried > 1000


def test_malformed_item_reasons_do_not_carry_the_caption() -> None:
    item = {**_item(PM_ALLIANCE_JSON), "stats": {"playCount": "bad"}, "statsV2": {}}
    with pytest.raises(ValueError) as excinfo:
        _post(item)
    assert "Offering a free trial" not in str(excinfo.value)
    assert "7441618513669655864" in str(excinfo.value)


# --------------------------------------------------------------------------------------------------
# Item-list API responses
# --------------------------------------------------------------------------------------------------

LIST_CTX: dict[str, Any] = {"source_url": "https://www.tiktok.com/@pm_alliance", "scraped_at": SCRAPED_AT}


def test_item_list_with_items_cursor_and_has_more() -> None:
    items = [_item(PM_ALLIANCE_JSON), _item(CONVERSION_DOC_JSON), _item(PM_ALLIANCE_JSON)]
    payload = {"statusCode": 0, "itemList": items, "hasMore": True, "cursor": "1732636833000"}
    result = parse_item_list(payload, **LIST_CTX)
    assert [p.post_id for p in result.posts] == [
        "7441618513669655864",
        "7430511437199543584",
    ]  # de-duplicated
    assert result.has_more is True
    assert result.cursor == "1732636833000"
    assert result.status_code == 0
    assert result.status is PageStatus.OK
    assert result.bad_items == []


@pytest.mark.parametrize("empty", [{}, {"itemList": None}, {"itemList": []}])
def test_item_list_missing_or_null_item_list(empty: dict[str, Any]) -> None:
    payload = {"status_code": "0", "hasMore": 0, "cursor": 0, **empty}
    result = parse_item_list(payload, **LIST_CTX)
    assert result.posts == []
    assert result.has_more is False
    assert result.cursor == "0"
    assert result.status_code == 0
    assert result.status is PageStatus.EMPTY_SHELL  # 200 with nothing in it: a soft-block hint


def test_item_list_has_more_as_int_and_blocked_status() -> None:
    result = parse_item_list({"statusCode": 10204, "hasMore": 1}, **LIST_CTX)
    assert result.has_more is True
    assert result.cursor is None
    assert result.status is PageStatus.IP_BLOCKED


def test_item_list_collects_bad_items_with_reasons() -> None:
    bad = {**_item(CONVERSION_DOC_JSON), "createTime": "never", "id": "7430511437199543584"}
    payload = {"statusCode": 0, "itemList": [_item(PM_ALLIANCE_JSON), bad, "junk"], "hasMore": False}
    result = parse_item_list(payload, **LIST_CTX)
    assert [p.post_id for p in result.posts] == ["7441618513669655864"]
    assert [reason.split(":")[0] for _, reason in result.bad_items] == [
        "item 7430511437199543584",
        "item is a str, not an object",
    ]
    assert result.bad_items[0][0] is bad


def test_item_list_reports_a_non_object_payload_as_broken_without_raising() -> None:
    # The contract is "never raise on content": an unreadable response is a BROKEN result.
    not_object = parse_item_list(["x"], **LIST_CTX)
    assert not_object.status is PageStatus.BROKEN
    assert not_object.error is not None and "not an object" in not_object.error
    assert not_object.posts == [] and not_object.has_more is False
    not_list = parse_item_list({"itemList": "x", "statusCode": 0}, **LIST_CTX)
    assert not_list.status is PageStatus.BROKEN
    assert not_list.error is not None and "itemList" in not_list.error


# --------------------------------------------------------------------------------------------------
# JSON lines output and document detection (the parse-page CLI)
# --------------------------------------------------------------------------------------------------


def test_page_result_to_jsonl() -> None:
    result = parse_file(
        AHORMOZI_HTML, source_url="https://www.tiktok.com/@ahormozi/video/7336007528070958382"
    )
    lines = [json.loads(line) for line in page_result_to_jsonl(result)]
    assert [line["type"] for line in lines] == ["post", "page"]
    assert lines[0]["post_id"] == "7336007528070958382"
    assert lines[0]["created_at"].startswith("2024-02-16T01:36:24")
    assert lines[1] == {
        "type": "page",
        "kind": "video",
        "status": "ok",
        "status_code": 0,
        "posts": 1,
        "error": None,
    }


def test_page_result_to_jsonl_for_a_blocked_page_has_only_the_status_line() -> None:
    result = parse_page(_page({"webapp.video-detail": {"statusCode": 10204}}), source_url="u", **CTX)
    lines = [json.loads(line) for line in page_result_to_jsonl(result)]
    assert lines == [
        {
            "type": "page",
            "kind": "video",
            "status": "ip_blocked",
            "status_code": 10204,
            "posts": 0,
            "error": lines[0]["error"],
        }
    ]


def test_parse_document_detects_formats() -> None:
    kwargs: dict[str, Any] = {"source_url": "file:///x", "scraped_at": SCRAPED_AT}
    state_json = json.dumps({"__DEFAULT_SCOPE__": {"webapp.user-detail": json.loads(_read(EDELMANIR_JSON))}})
    assert parse_document(state_json, **kwargs).user.follower_count == 68259
    sigi_json = json.dumps(_sigi_state())
    assert len(parse_document(sigi_json, **kwargs).posts) == 2
    listing = json.dumps({"statusCode": 0, "itemList": [_item(PM_ALLIANCE_JSON)], "hasMore": False})
    assert parse_document(listing, **kwargs).posts[0].post_id == "7441618513669655864"
    blocked = parse_document('{"statusCode": 10204, "statusMsg": ""}', **kwargs)
    assert blocked.status is PageStatus.IP_BLOCKED
    assert parse_document('{"nope": 1}', **kwargs).status is PageStatus.BROKEN
    assert parse_document("{broken", **kwargs).status is PageStatus.BROKEN
    # An HTML page still goes through the HTML path.
    assert parse_document(_read(AHORMOZI_HTML), **kwargs).posts[0].post_id == "7336007528070958382"


def test_parse_file_does_not_mutate_shared_state() -> None:
    item = _item(PM_ALLIANCE_JSON)
    snapshot = copy.deepcopy(item)
    _post(item)
    parse_item_list({"itemList": [item]}, **LIST_CTX)
    assert item == snapshot
