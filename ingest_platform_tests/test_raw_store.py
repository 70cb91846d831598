"""Tests for ``ingest_platform.raw_store``: atomic per-partition files, shards per target list."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest_platform.models import Post
from ingest_platform.raw_store import RawStore

DAY = "2026-11-28"


def _posts(*ids: str, handle: str = "alice") -> list[Post]:
    created = datetime(2026, 11, 27, 12, tzinfo=UTC)
    return [
        Post(
            post_id=i,
            created_at=created,
            scraped_at=created,
            source_url=f"https://www.tiktok.com/@{handle}/video/{i}",
            author_handle=handle,
            description=f"post {i}",
        )
        for i in ids
    ]


def test_each_target_list_writes_its_own_shard_and_the_day_reads_all_of_them(tmp_path) -> None:
    store = RawStore(str(tmp_path / "raw"))
    store.write_posts("tiktok", DAY, _posts("1", "2"), shard="creators")
    store.write_posts("tiktok", DAY, _posts("3", "2", handle="bob"), shard="brands")
    assert store.post_shards("tiktok", DAY) == ["brands", "creators"]
    assert sorted(store.read_posts("tiktok", DAY, shard="creators")["post_id"]) == ["1", "2"]
    day = store.read_posts("tiktok", DAY)
    # Post 2 was found by both lists: the day holds it once (from the first shard by name).
    assert sorted(day["post_id"]) == ["1", "2", "3"]
    assert day.set_index("post_id").loc["2", "author_handle"] == "bob"


def test_rerunning_a_shard_replaces_only_that_shard(tmp_path) -> None:
    store = RawStore(str(tmp_path / "raw"))
    store.write_posts("tiktok", DAY, _posts("1", "2"), shard="creators")
    store.write_posts("tiktok", DAY, _posts("3"), shard="brands")
    store.write_posts("tiktok", DAY, _posts("4"), shard="creators")
    assert sorted(store.read_posts("tiktok", DAY)["post_id"]) == ["3", "4"]


def test_unsharded_files_and_missing_days_still_read(tmp_path) -> None:
    store = RawStore(str(tmp_path / "raw"))
    store.write_posts("facebook", DAY, _posts("f1"))
    store.write_posts("facebook", DAY, _posts("f2"), shard="pages")
    assert sorted(store.read_posts("facebook", DAY)["post_id"]) == ["f1", "f2"]
    empty = store.read_posts("tiktok", "2026-01-01")
    assert len(empty) == 0 and "post_id" in empty.columns
    assert store.post_shards("tiktok", "2026-01-01") == []


# -- dead-letter spools (issue #11) ------------------------------------------------------------


def test_line_and_paragraph_separators_inside_a_letter_are_data_not_line_breaks(tmp_path) -> None:
    # Item 1: str.splitlines() split these records and every later read failed with JSONDecodeError.
    from ingest_platform.models import DeadLetter

    store = RawStore(str(tmp_path / "raw"))
    texts = ["line\u2028sep", "para\u2029sep", "next\u0085line", "vt\x0bff\x0cfs\x1c", "plain"]
    letters = [
        # Text payloads and record keys reach the spool unescaped (dict payloads are escaped).
        DeadLetter.from_payload(
            source="ORDERS", reason="invalid_amount", payload=t, record_key=t, letter_id=f"ORDERS:fp:{i}"
        )
        for i, t in enumerate(texts)
    ]
    store.write_dead_letters("ORDERS", "fp=abc", letters[:3])
    store.write_dead_letters("ORDERS", "fp=def", letters[3:])
    read = store.read_dead_letters()
    assert sorted(letter.payload for letter in read) == sorted(texts)
    assert sorted(letter.record_key or "" for letter in read) == sorted(texts)
    assert store.dead_letter("ORDERS:fp:1") == letters[1]
    assert store.read_dead_letters("OTHER") == []
