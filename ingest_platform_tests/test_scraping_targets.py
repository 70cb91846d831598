"""Tests for ``ingest_platform.scraping.targets``: parsing TIKTOK_TARGETS entries and building page URLs."""

from __future__ import annotations

import pytest

from ingest_platform.scraping.targets import (
    DEFAULT_MAX_POSTS,
    Target,
    TargetError,
    TargetKind,
    parse_target,
    parse_targets,
)

SANDBOX = "http://127.0.0.1:8123"


@pytest.mark.parametrize(
    ("text", "kind", "value", "handle"),
    [
        ("@ahormozi", TargetKind.PROFILE, "ahormozi", None),
        ("  @Pm_Alliance  ", TargetKind.PROFILE, "pm_alliance", None),
        ("@conversion.doc", TargetKind.PROFILE, "conversion.doc", None),
        ("#saas", TargetKind.HASHTAG, "saas", None),
        ("#SaaS", TargetKind.HASHTAG, "saas", None),
        ("#日本", TargetKind.HASHTAG, "日本", None),
        ("https://www.tiktok.com/@ahormozi", TargetKind.PROFILE, "ahormozi", None),
        ("https://www.tiktok.com/@ahormozi/?lang=en", TargetKind.PROFILE, "ahormozi", None),
        ("www.tiktok.com/@ahormozi", TargetKind.PROFILE, "ahormozi", None),
        ("https://www.tiktok.com/tag/saas", TargetKind.HASHTAG, "saas", None),
        ("https://www.tiktok.com/tag/%E6%97%A5%E6%9C%AC", TargetKind.HASHTAG, "日本", None),
        (
            "https://www.tiktok.com/@ahormozi/video/7336007528070958382",
            TargetKind.VIDEO,
            "7336007528070958382",
            "ahormozi",
        ),
        (
            "https://www.tiktok.com/@pm_alliance/video/7441618513669655864?is_from_webapp=1&sender_device=pc",
            TargetKind.VIDEO,
            "7441618513669655864",
            "pm_alliance",
        ),
        ("https://m.tiktok.com/@a.b/video/123#frag", TargetKind.VIDEO, "123", "a.b"),
        ("http://tiktok.com/@a/video/123", TargetKind.VIDEO, "123", "a"),
        ("@ahormozi/video/7336007528070958382", TargetKind.VIDEO, "7336007528070958382", "ahormozi"),
    ],
)
def test_parse_target_forms(text: str, kind: TargetKind, value: str, handle: str | None) -> None:
    target = parse_target(text)
    assert (target.kind, target.value, target.handle) == (kind, value, handle)
    assert target.max_posts == DEFAULT_MAX_POSTS
    # The canonical text parses back to the same target.
    assert parse_target(target.text) == target


def test_kind_compares_equal_to_plain_strings() -> None:
    assert parse_target("@a").kind == "profile"
    assert parse_target("#a").kind == "hashtag"
    assert parse_target("@a/video/1").kind == "video"


@pytest.mark.parametrize(
    ("text", "max_posts"),
    [
        ("@name:200", 200),
        ("#tag:5", 5),
        ("https://www.tiktok.com/@name:7", 7),
        ("https://www.tiktok.com/@name/video/123:1", 1),
    ],
)
def test_max_posts_suffix(text: str, max_posts: int) -> None:
    assert parse_target(text).max_posts == max_posts


def test_default_max_posts_is_configurable() -> None:
    assert parse_target("@a", default_max_posts=30).max_posts == 30
    assert [t.max_posts for t in parse_targets("@a, @b:5", default_max_posts=30)] == [30, 5]


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (parse_target("@name"), f"{SANDBOX}/@name"),
        (parse_target("#b"), f"{SANDBOX}/tag/b"),
        (parse_target("https://www.tiktok.com/@name/video/123"), f"{SANDBOX}/@name/video/123"),
        (parse_target("#日本"), f"{SANDBOX}/tag/%E6%97%A5%E6%9C%AC"),
    ],
)
def test_url_on_any_base(target: Target, url: str) -> None:
    assert target.url(SANDBOX) == url
    assert target.url(SANDBOX + "/") == url  # a trailing slash on the base does not double up
    assert target.url().startswith("https://www.tiktok.com/")


def test_url_keeps_a_base_path_prefix() -> None:
    assert (
        parse_target("@name").url("http://localhost:9000/sandbox/") == "http://localhost:9000/sandbox/@name"
    )


def test_parse_targets_splits_on_commas_and_newlines_and_dedupes() -> None:
    text = "@a, #b, https://www.tiktok.com/@c/video/5\n\n  @A:300 ,,\r\n#B"
    targets = parse_targets(text)
    assert [t.text for t in targets] == ["@a", "#b", "@c/video/5"]
    # A duplicate keeps its first position and the larger cap.
    assert targets[0].max_posts == 300
    assert targets[1].max_posts == DEFAULT_MAX_POSTS


def test_parse_targets_empty() -> None:
    assert parse_targets("") == []
    assert parse_targets(" ,\n, ") == []


def test_targets_are_frozen_and_copyable() -> None:
    target = parse_target("@a")
    with pytest.raises(ValueError):
        target.max_posts = 5  # type: ignore[misc]
    assert target.model_copy(update={"max_posts": 5}).max_posts == 5
    assert str(target) == "@a"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("https://vm.tiktok.com/ZMabcdef/", "short links are not supported"),
        ("vm.tiktok.com/ZMabcdef", "short links are not supported"),
        ("https://vt.tiktok.com/ZSabcdef/", "short links are not supported"),
        ("https://www.tiktok.com/t/ZTabcdef/", "short links are not supported"),
        ("ahormozi", "write @name for a profile"),
        ("@", "expected @name"),
        ("@has space", "invalid TikTok handle"),
        ("@bad/handle!", "expected @name or @name/video/<id>"),
        ("#two words", "invalid hashtag"),
        ("#", "invalid hashtag"),
        ("@name:0", "between 1 and"),
        ("@name:lots", "whole number"),
        ("#tag:", "whole number"),
        ("https://www.instagram.com/@name", "not a TikTok URL"),
        ("ftp://www.tiktok.com/@name", "not a TikTok URL"),
        ("https://www.tiktok.com/music/original-sound-123", "unsupported TikTok URL path"),
        ("https://www.tiktok.com/@name/video/abc", "invalid video id"),
        ("https://www.tiktok.com/@name/photo/123", "unsupported TikTok URL path"),
    ],
)
def test_invalid_entries_name_the_entry(text: str, fragment: str) -> None:
    with pytest.raises(TargetError) as excinfo:
        parse_target(text)
    message = str(excinfo.value)
    assert fragment in message
    assert repr(text.strip()) in message
    assert isinstance(excinfo.value, ValueError)


def test_parse_targets_error_names_position_and_entry() -> None:
    with pytest.raises(ValueError, match=r"target 3 'not a target'"):
        parse_targets("@a, #b, not a target, @c")


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ValueError):
        Target(kind=TargetKind.VIDEO, value="123")  # no handle
    with pytest.raises(ValueError):
        Target(kind=TargetKind.PROFILE, value="a", max_posts=0)
