"""Vectorised order validation: each rule, defaults, duplicates, timestamp parsing, dead
letters, and a million rows."""

from __future__ import annotations

import hashlib
import json
import time
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ingest_platform.models import Order
from ingest_platform.orders.validation import OUTPUT_COLUMNS, REJECT_REASONS, validate_orders
from ingest_platform.sandbox.orders import generate_orders


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "order_id": "ORD-1",
        "created_at": "2026-11-27T10:00:00Z",
        "customer_name": "Zoë O'Brien",
        "customer_email": "zoe@example.com",
        "customer_phone": "+44 20 7946 0000",
        "shipping_address": "1 High Street, London SW1A 1AA",
        "postcode": "SW1A 1AA",
        "customer_ip": "81.2.3.4",
        "birth_date": "1990-01-01",
        "currency": "GBP",
        "amount": "12.50",
        "items": "2",
        "note": None,
        "_source_file": "landing/a.jsonl",
        "_source_line": 1,
    }
    row.update(overrides)
    return row


def _frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_valid_rows_are_typed_like_the_order_model() -> None:
    result = validate_orders(
        _frame(_row(), _row(order_id=" ORD-2 ", amount=0, items=1, created_at="2026-11-27T11:00:00+01:00")),
        source="orders",
        run_id="r1",
    )
    assert result.rejects == [] and result.counts == {} and result.superseded == 0
    valid = result.valid
    assert tuple(valid.columns) == OUTPUT_COLUMNS
    assert (*Order.model_fields, "updated_at", "version_at", "_source_file") == OUTPUT_COLUMNS
    assert str(valid["created_at"].dtype) == "datetime64[ns, UTC]"
    # Money is exact (issue #11 item 8): decimal128(18,2), no longer float64.
    assert str(valid["amount"].dtype) == "decimal128(18, 2)[pyarrow]" and valid["items"].dtype == np.int64
    assert valid["order_id"].tolist() == ["ORD-1", "ORD-2"]  # trimmed
    assert valid["amount"].tolist() == [Decimal("12.50"), Decimal("0.00")]
    assert valid["version_at"].tolist() == valid["created_at"].tolist()  # no updated_at
    assert valid["created_at"].tolist() == [pd.Timestamp("2026-11-27T10:00:00Z")] * 2
    assert valid["note"].tolist() == [None, None]
    for record in valid.drop(columns="_source_file").to_dict("records"):
        order = Order(**record)
        assert order.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"order_id": None}, "missing_order_id"),
        ({"order_id": "   "}, "missing_order_id"),
        ({"created_at": None}, "missing_created_at"),
        ({"created_at": "yesterday"}, "invalid_created_at"),
        ({"created_at": "27/11/2026 10:00"}, "invalid_created_at"),  # ambiguous: not guessed
        ({"amount": None}, "missing_amount"),
        ({"amount": "12,50"}, "invalid_amount"),
        ({"amount": "inf"}, "invalid_amount"),
        ({"amount": True}, "invalid_amount"),
        ({"amount": -0.01}, "negative_amount"),
        ({"currency": "usd"}, "invalid_currency"),
        ({"currency": "EURO"}, "invalid_currency"),
        ({"items": 0}, "invalid_items"),
        ({"items": 1.5}, "invalid_items"),
        ({"items": "two"}, "invalid_items"),
        ({"customer_email": "zoe(at)example.com"}, "invalid_email"),
        ({"customer_email": "zoe@localhost"}, "invalid_email"),
    ],
)
def test_each_rule_rejects_with_its_reason_and_keeps_the_valid_rows(
    overrides: dict[str, Any], reason: str
) -> None:
    bad = _row(**{"order_id": "BAD", **overrides})
    result = validate_orders(
        _frame(_row(order_id="A"), bad, _row(order_id="B")), source="orders", run_id="r1"
    )
    assert result.valid["order_id"].tolist() == ["A", "B"]
    assert result.counts == {reason: 1}
    [letter] = result.rejects
    assert letter.reason == reason
    assert reason in REJECT_REASONS


def test_a_row_carries_its_first_failing_rule_and_counts_sum_to_rejects() -> None:
    rows = [
        _row(order_id="X", amount=-1, currency="usd"),  # negative_amount comes before currency
        _row(order_id=None, created_at="nope"),
        _row(order_id="Y", currency="usd"),
        _row(order_id="Z"),
    ]
    result = validate_orders(_frame(*rows), source="orders", run_id=None)
    assert [r.reason for r in result.rejects] == ["negative_amount", "missing_order_id", "invalid_currency"]
    assert result.counts == {"missing_order_id": 1, "negative_amount": 1, "invalid_currency": 1}
    assert sum(result.counts.values()) == result.rejected == 3
    assert list(result.counts) == [r for r in REJECT_REASONS if r in result.counts]  # rule order


def test_optional_fields_take_the_order_defaults() -> None:
    frame = _frame(_row(currency=None, items=None, customer_email="", note=""), _row(order_id="B"))
    frame = frame.drop(columns=["postcode"])  # an absent optional column is fine too
    result = validate_orders(frame, source="orders", run_id=None)
    assert result.rejects == []
    first = result.valid.iloc[0]
    assert (first["currency"], first["items"]) == ("USD", 1)
    assert first["customer_email"] is None and first["note"] is None and first["postcode"] is None


def test_missing_required_column_rejects_every_row() -> None:
    result = validate_orders(
        _frame(_row(), _row(order_id="B")).drop(columns=["amount"]), source="o", run_id=None
    )
    assert result.valid.empty and result.counts == {"missing_amount": 2}


def test_duplicates_keep_the_latest_version_and_are_not_dead_lettered() -> None:
    rows = [
        _row(order_id="A", created_at="2026-11-27T10:00:00Z", amount=1),
        _row(order_id="B", created_at="2026-11-27T10:00:00Z", amount=5),
        _row(order_id="A", created_at="2026-11-27T12:00:00+01:00", amount=3),  # 11:00Z: latest
        _row(order_id="A", created_at="2026-11-27T10:30:00Z", amount=2),  # arrives last, older
        _row(order_id="B", created_at="2026-11-27T10:00:00Z", amount=6),  # tie: read last wins
    ]
    result = validate_orders(_frame(*rows), source="orders", run_id=None)
    assert result.rejects == [] and result.counts == {}
    assert result.superseded == 3
    assert dict(zip(result.valid["order_id"], result.valid["amount"], strict=True)) == {"A": 3.0, "B": 6.0}


def test_an_invalid_later_version_does_not_hide_the_valid_one() -> None:
    rows = [
        _row(order_id="A", created_at="2026-11-27T10:00:00Z", amount=1),
        _row(order_id="A", created_at="2026-11-27T11:00:00Z", amount=-5),
    ]
    result = validate_orders(_frame(*rows), source="orders", run_id=None)
    assert result.valid["amount"].tolist() == [1.0]
    assert result.counts == {"negative_amount": 1} and result.superseded == 0


def test_created_at_forms_are_parsed_to_utc() -> None:
    values = [
        "2026-11-27T10:00:00+01:00",
        "2026-11-27 10:00:00",  # naive after an offset string: still UTC (pandas ISO8601 quirk)
        "2026-11-27T10:00:00.123456Z",
        "  2026-11-27T10:00:00-05:00 ",
        "2026-11-27",
        "20261127T100000",
    ]
    rows = [_row(order_id=str(i), created_at=v) for i, v in enumerate(values)]
    got = validate_orders(_frame(*rows), source="o", run_id=None).valid["created_at"].tolist()
    assert got == [
        pd.Timestamp("2026-11-27T09:00:00Z"),
        pd.Timestamp("2026-11-27T10:00:00Z"),
        pd.Timestamp("2026-11-27T10:00:00.123456Z"),
        pd.Timestamp("2026-11-27T15:00:00Z"),
        pd.Timestamp("2026-11-27T00:00:00Z"),
        pd.Timestamp("2026-11-27T10:00:00Z"),
    ]


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1_795_773_600, 1_795_773_600_000]),  # epoch seconds and milliseconds
        pd.Series(pd.to_datetime(["2026-11-27 10:00", "2026-11-27 10:00"])),  # naive datetimes
        pd.Series(pd.to_datetime(["2026-11-27 11:00", "2026-11-27 11:00"]).tz_localize("Europe/Paris")),
        pd.Series([pd.Timestamp("2026-11-27T10:00Z"), "2026-11-27T11:00:00+01:00"], dtype=object),
    ],
    ids=["epoch", "naive-datetime", "paris-datetime", "mixed-objects"],
)
def test_created_at_typed_columns(column: pd.Series) -> None:
    frame = _frame(_row(order_id="A"), _row(order_id="B"))
    frame["created_at"] = column
    valid = validate_orders(frame, source="o", run_id=None).valid
    assert str(valid["created_at"].dtype) == "datetime64[ns, UTC]"
    assert valid["created_at"].tolist() == [pd.Timestamp("2026-11-27T10:00:00Z")] * 2


def test_numeric_values_are_read_as_text_where_the_model_wants_text() -> None:
    frame = _frame(_row(order_id=1), _row(order_id=2), _row(order_id=3))
    frame["order_id"] = [1, 2, 3]
    frame["postcode"] = [2139.0, np.nan, 10115.0]  # ints with a null arrive as floats
    valid = validate_orders(frame, source="o", run_id=None).valid
    assert valid["order_id"].tolist() == ["1", "2", "3"]
    assert valid["postcode"].tolist() == ["2139", None, "10115"]


def test_dead_letters_carry_the_raw_row_key_and_run() -> None:
    bad = _row(order_id=" K-9 ", amount=-3, note="call +44 20 7946 0000")
    result = validate_orders(_frame(bad, _row()), source="orders_landing", run_id="run-42")
    [letter] = result.rejects
    assert (letter.source, letter.reason, letter.record_key, letter.run_id) == (
        "orders_landing",
        "negative_amount",
        "K-9",
        "run-42",
    )
    payload = json.loads(letter.payload)  # strict JSON: NaN became null
    assert payload["amount"] == -3 and payload["order_id"] == " K-9 "  # raw, untrimmed
    assert payload["_source_file"] == "landing/a.jsonl" and payload["_source_line"] == 1
    assert payload["customer_email"] == "zoe@example.com"  # raw PII: the caller scrubs it
    assert letter.payload_sha256 == hashlib.sha256(letter.payload.encode()).hexdigest()
    assert letter.rejected_at.tzinfo is not None


def test_any_index_works() -> None:
    # Frames concatenated without ignore_index carry repeated labels: rules are positional.
    frame = _frame(_row(order_id="A"), _row(order_id="B", amount=-1), _row(order_id="C"))
    frame.index = [7, 7, 3]
    result = validate_orders(frame, source="o", run_id=None)
    assert result.valid["order_id"].tolist() == ["A", "C"]
    assert [r.record_key for r in result.rejects] == ["B"]


def test_empty_frame() -> None:
    result = validate_orders(pd.DataFrame(), source="o", run_id=None)
    assert result.valid.empty and result.rejects == [] and result.counts == {}
    assert tuple(result.valid.columns) == OUTPUT_COLUMNS
    assert str(result.valid["created_at"].dtype) == "datetime64[ns, UTC]"


def test_generated_orders_are_all_valid() -> None:
    frame = generate_orders(2_000, seed=3)
    result = validate_orders(frame, source="o", run_id=None)
    assert result.rejects == [] and len(result.valid) == 2_000
    pd.testing.assert_series_equal(result.valid["created_at"], frame["created_at"])


def test_one_million_rows_validate_in_seconds() -> None:
    # Tile a generated sample (generation isn't what's measured) and give every row its own id;
    # text columns as in a JSONL read: created_at strings with offsets, amounts numeric.
    base = generate_orders(10_000, seed=7)
    base["created_at"] = base["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    frame = pd.concat([base] * 100, ignore_index=True)
    frame["order_id"] = "ORD-" + pd.Series(np.arange(len(frame))).astype(str)
    frame.loc[::10_000, "amount"] = -1.0  # 100 rejects
    frame["_source_file"] = "landing/big.jsonl"

    started = time.perf_counter()
    result = validate_orders(frame, source="orders", run_id="bench")
    elapsed = time.perf_counter() - started

    print(f"\nvalidate_orders: {len(frame):,} rows in {elapsed:.2f} s")
    assert len(result.valid) == 999_900
    assert result.counts == {"negative_amount": 100}
    assert str(result.valid["created_at"].dtype) == "datetime64[ns, UTC]"
    assert result.valid["created_at"].iloc[0] == pd.Timestamp(frame["created_at"].iloc[1])  # row 0 rejected


# -- issue #11 rules --------------------------------------------------------------------------


def test_updated_at_orders_versions_inside_a_batch() -> None:
    # Item 6: the version is updated_at when present, else created_at.
    rows = [
        _row(order_id="A", amount="1", created_at="2026-11-28T10:00:00Z", updated_at="2026-11-28T10:00:00Z"),
        _row(order_id="A", amount="2", created_at="2026-11-20T10:00:00Z", updated_at="2026-11-29T10:00:00Z"),
        _row(order_id="B", amount="3", created_at="2026-11-20T10:00:00Z"),
        _row(order_id="B", amount="4", created_at="2026-11-21T10:00:00Z", updated_at=None),
    ]
    result = validate_orders(_frame(*rows), source="o")
    got = result.valid.set_index("order_id")
    assert got.loc["A", "amount"] == Decimal("2.00") and got.loc["B", "amount"] == Decimal("4.00")
    assert got.loc["A", "version_at"] == pd.Timestamp("2026-11-29T10:00:00Z")
    assert result.superseded == 2 and result.superseded_by_file == {"landing/a.jsonl": 2}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"items": 1e20}, "invalid_items"),  # was stored as -9223372036854775808
        ({"items": 2_000_000}, "invalid_items"),
        ({"amount": 1e308}, "amount_out_of_range"),
        ({"amount": "1000000000000.01"}, "amount_out_of_range"),
        ({"amount": 1e-320}, "invalid_amount"),  # not 0.00
        ({"amount": "12.345"}, "invalid_amount"),  # never rounded
        ({"order_id": 5.5}, "invalid_order_id"),
        ({"order_id": float(2**53 + 2)}, "invalid_order_id"),  # digits already lost
        ({"order_id": Decimal("1e400")}, "invalid_order_id"),
        ({"order_id": "x" * 257}, "invalid_order_id"),
        ({"updated_at": "yesterday"}, "invalid_updated_at"),
    ],
)
def test_bounds_and_ids_reject_with_a_reason(overrides: dict[str, Any], reason: str) -> None:
    result = validate_orders(_frame(_row(**overrides), _row(order_id="OK")), source="o")
    assert [r.reason for r in result.rejects] == [reason]
    assert result.valid["order_id"].tolist() == ["OK"]


def test_money_keeps_every_cent() -> None:
    amounts = ["0.10", "19.99", "999999999999.99", "0", "1e2", 0.1, 19.99, 12]
    frame = _frame(*[_row(order_id=f"A{i}", amount=a) for i, a in enumerate(amounts)])
    valid = validate_orders(frame, source="o").valid
    assert [str(v) for v in valid["amount"]] == [
        "0.10", "19.99", "999999999999.99", "0.00", "100.00", "0.10", "19.99", "12.00"
    ]


def test_integral_float_ids_are_the_same_order_as_integer_ids() -> None:
    later = _row(order_id="5", amount="2", created_at="2026-11-28T10:00:00Z")
    frame = _frame(_row(order_id=5.0, amount="1"), later)
    result = validate_orders(frame, source="o")
    assert result.valid["order_id"].tolist() == ["5"] and result.superseded == 1


def test_a_dead_letter_payload_revalidates_to_the_same_reason(tmp_path) -> None:
    # Replay re-validates payloads: a JSON number must not come back as text ("5.5" is a valid id).
    from ingest_platform.orders.landing import LandingZone, RecordCountCache

    lines = [
        '{"order_id": 5.5, "created_at": "2026-11-27T10:00:00Z", "amount": 1}',
        '{"order_id": "A", "created_at": "2026-11-27T10:00:00Z", "amount": 12.345}',
        '{"order_id": 1e400, "created_at": "2026-11-27T10:00:00Z", "amount": 1}',
        '{"order_id": "B", "created_at": "2026-11-27T10:00:00Z", "amount": 1e400}',
        '{"order_id": "C", "created_at": "2026-11-27T10:00:00Z", "amount": 1, "items": 1e20}',
        '{"order_id": "D", "created_at": "2026-11-27T10:00:00Z", "amount": 1}',
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    zone = LandingZone(str(tmp_path), count_cache=RecordCountCache())
    first = validate_orders(zone.read(zone.pending_files()).frame, source="o")
    assert len(first.rejects) == 5
    from ingest_platform.orders.dead_letters import payload_frame

    replayed, unparsed = payload_frame(first.rejects)
    assert unparsed == [] and len(replayed) == 5
    again = validate_orders(replayed, source="o")
    assert [r.reason for r in again.rejects] == [r.reason for r in first.rejects] and again.valid.empty
