"""Schema drift on real captured TikTok items."""

from __future__ import annotations

import copy
import json

from ingest_platform.scraping.schema_drift import SchemaTally, compare, item_schema
from ingest_platform_tests.conftest import real_fixtures_dir

FIXTURE = real_fixtures_dir() / "tiktok" / "video-detail-pm-alliance-7441618513669655864.json"


def _item() -> dict:
    return json.loads(FIXTURE.read_text())["itemInfo"]["itemStruct"]


def test_schema_of_a_real_item_records_the_quirks() -> None:
    schema = item_schema(_item())
    assert schema["id"] == "str" and schema["createTime"] == "str"
    assert schema["stats.playCount"] == "int" and schema["stats.collectCount"] == "str"
    assert schema["statsV2.repostCount"] == "str"
    assert schema["author.uniqueId"] == "str" and schema["challenges"] == "list"


def test_a_renamed_block_and_a_retyped_count_are_drift() -> None:
    before = SchemaTally()
    before.add_all([_item(), _item()])
    changed = copy.deepcopy(_item())
    changed["statistics"] = changed.pop("stats")
    changed["statsV2"]["playCount"] = 732
    after = SchemaTally()
    after.add_all([changed, changed])
    drift = compare(before.dominant(), after.dominant())
    assert drift.drifted
    assert "stats" in drift.vanished and "stats.playCount" in drift.vanished
    assert ("statsV2.playCount", "str", "int") in drift.changed
    assert "statistics" in drift.added
    assert "vanished: " in drift.describe()


def test_optional_fields_and_nulls_are_not_drift() -> None:
    slideshow = _item() | {"imagePost": {"images": []}}
    tally = SchemaTally()
    tally.add_all([_item(), _item(), _item(), slideshow])
    assert "imagePost" not in tally.dominant()  # in 1 of 4 items: optional
    with_null = _item() | {"locationCreated": None}
    drift = compare(item_schema(_item()), item_schema(with_null))
    assert not drift.drifted
