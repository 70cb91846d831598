"""Tests for ``ingest_platform.scraping.target_lists``: TIKTOK_TARGET_LISTS parsing and list names."""

from __future__ import annotations

import pytest

from ingest_platform.scraping.target_lists import (
    DEFAULT_LIST,
    TargetListError,
    parse_target_lists,
    target_list_names,
)
from ingest_platform.scraping.targets import parse_targets


def test_lists_keep_their_order_and_entries() -> None:
    lists = parse_target_lists("creators=@Alice:200,@bob\n; campaign_x = #SummerDrop:50 , #ad ;")
    assert list(lists) == ["creators", "campaign_x"]
    assert [t.value for t in parse_targets(lists["creators"])] == ["alice", "bob"]
    campaign = [(t.value, t.max_posts) for t in parse_targets(lists["campaign_x"])]
    assert campaign == [("summerdrop", 50), ("ad", 100)]


def test_without_lists_tiktok_targets_is_the_default_list() -> None:
    assert parse_target_lists(None, fallback_targets="@alice") == {DEFAULT_LIST: "@alice"}
    assert parse_target_lists("  ", fallback_targets="") == {DEFAULT_LIST: ""}
    assert target_list_names({"TIKTOK_TARGETS": "@alice"}) == ["default"]
    assert target_list_names({"TIKTOK_TARGET_LISTS": "b=@x; a=@y", "TIKTOK_TARGETS": "@z"}) == ["b", "a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@alice,@bob", r"entry 1: expected name=targets"),
        ("creators=@a; Big Brands=@b", r"entry 2: list name 'Big Brands' must be"),
        ("creators=@a; creators=@b", r"entry 2: list 'creators' is named twice"),
        ("creators=@a; empty= , ", r"entry 2: list 'empty' has no targets"),
        ("creators=@a; bad=vm.tiktok.com/ZM123", r"entry 2 \(bad\): target 1"),
        ("-lead=@a", r"list name '-lead'"),
        ("x" * 41 + "=@a", r"must be 1-40"),
    ],
)
def test_bad_lists_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(TargetListError, match=message):
        parse_target_lists(text)
