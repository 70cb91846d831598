"""Dead-letter payload shapes: structure survives, personal values do not."""

from __future__ import annotations

import json

from ingest_platform.privacy.payloads import payload_shape


def test_json_payload_keeps_keys_and_numbers_but_no_strings() -> None:
    row = {"order_id": "A-1", "customer_name": "Zoe Patel", "amount": -5.5, "items": 2, "paid": True,
           "tags": ["vip", "returning"], "customer": {"email": "zoe@example.com"}}  # fmt: skip
    shape = json.loads(payload_shape(json.dumps(row)))
    assert shape["amount"] == -5.5 and shape["items"] == 2 and shape["paid"] is True
    assert shape["customer_name"] == "<str:9>" and shape["customer"] == {"email": "<str:15>"}
    assert shape["tags"] == ["<str:3>", "<str:9>"]
    text = payload_shape(json.dumps(row))
    assert "Zoe" not in text and "zoe@example.com" not in text


def test_html_and_broken_json_are_described_not_copied() -> None:
    html = '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">{"uniqueId":"amara.fernandez", "nick'
    assert payload_shape(html) == f"<non-JSON payload, {len(html)} chars>"


def test_long_lists_and_large_payloads_are_bounded() -> None:
    shape = payload_shape(json.dumps({"ids": list(range(1_000))}), max_chars=10_000)
    assert json.loads(shape)["ids"][-1] == "<980 more>"
    huge = payload_shape(json.dumps({f"k{i}": i for i in range(5_000)}), max_chars=500)
    assert len(huge) <= 500 and huge.endswith("<truncated>")
