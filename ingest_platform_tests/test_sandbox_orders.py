"""The order-file generator: determinism, realistic content, and ground truth that a landing
zone + validation run must reproduce exactly."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ingest_platform.models import Order
from ingest_platform.orders.landing import LandingZone, RecordCountCache
from ingest_platform.orders.validation import validate_orders
from ingest_platform.sandbox.orders import (
    BAD_ROW_KINDS,
    CORRUPT_JSON_LINE,
    CORRUPT_JSON_ROWS,
    generate_orders,
    write_malformed_file,
    write_order_files,
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"\+\d[\d ()-]{6,}\d")


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    return generate_orders(2_000, seed=11)


def test_generation_is_deterministic(orders: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(orders, generate_orders(2_000, seed=11))
    other = generate_orders(2_000, seed=12)
    assert not orders["customer_email"].equals(other["customer_email"])
    assert set(orders["order_id"]).isdisjoint(other["order_id"])  # seeds give distinct ids


def test_orders_have_the_order_model_shape(orders: pd.DataFrame) -> None:
    assert tuple(orders.columns) == tuple(Order.model_fields)
    assert str(orders["created_at"].dtype) == "datetime64[ns, UTC]"
    assert orders["order_id"].is_unique
    assert orders["created_at"].is_monotonic_increasing
    start = pd.Timestamp(datetime(2026, 11, 27, tzinfo=UTC))
    assert orders["created_at"].min() >= start and orders["created_at"].max() < start + pd.Timedelta(days=1)
    for record in orders.head(100).to_dict("records"):
        Order(**{k: (None if pd.isna(v) else v) for k, v in record.items()})
    later = generate_orders(5, start=datetime(2027, 1, 1, tzinfo=UTC))
    assert later["created_at"].min() >= pd.Timestamp("2027-01-01", tz="UTC")


def test_orders_look_real(orders: pd.DataFrame) -> None:
    assert orders["customer_email"].str.fullmatch(EMAIL).all()
    assert orders["customer_phone"].str.fullmatch(PHONE).all()
    assert orders["customer_ip"].str.fullmatch(r"(?:\d{1,3}\.){3}\d{1,3}").all()
    assert orders["birth_date"].str.fullmatch(r"(19[5-9]\d|20[0-1]\d)-\d{2}-\d{2}").all()
    assert orders["currency"].str.fullmatch(r"[A-Z]{3}").all() and orders["currency"].nunique() >= 5
    assert (orders["amount"] > 0).all() and (orders["items"] >= 1).all()
    # Postcodes are inside the address, and some carry leading zeros (text, not numbers).
    assert all(p in a for p, a in zip(orders["postcode"], orders["shipping_address"], strict=True))
    assert orders["postcode"].str.startswith("0").any()
    assert orders["customer_name"].str.contains(r"[^\x00-\x7f]").any()  # accents: Zoë, Müller…
    assert orders["customer_phone"].str[:3].nunique() >= 5  # several countries
    notes = orders["note"].dropna()
    assert 0.2 < len(notes) / len(orders) < 0.6
    assert notes.str.contains(EMAIL).any() and notes.str.contains(PHONE).any()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_files_round_trip_to_the_ground_truth(tmp_path: Path, fmt: str) -> None:
    truth = write_order_files(tmp_path, n_files=3, rows_per_file=60, fmt=fmt, seed=4, bad_rows_per_file=6)
    assert [p.name for p in truth.files] == [f"orders_4_{i:04d}.{fmt}" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in truth.files]  # no temp files left
    assert truth.rows_written == 180 and truth.bad_row_count == 18
    assert len(truth.order_ids) == 180 - 18
    assert sum(truth.expected_reject_counts.values()) == 18

    zone = LandingZone(str(tmp_path), count_cache=RecordCountCache())
    read = zone.read(zone.pending_files())
    result = validate_orders(read.frame, source="orders", run_id="t")

    assert read.bad_files == {} and read.rejects == []
    assert set(result.valid["order_id"]) == truth.order_ids
    assert len(result.valid) == len(truth.order_ids)
    assert result.counts == truth.expected_reject_counts
    # Every injected defect kind shows up (parquet can't hold "not-a-date": a null instead).
    expected_kinds = {
        ("missing_created_at" if fmt == "parquet" and k == "invalid_created_at" else k) for k in BAD_ROW_KINDS
    }
    assert set(truth.expected_reject_counts) == expected_kinds

    # Values survive the file format: created_at (written in local offsets) is the same instant.
    generated = generate_orders(180, seed=4).set_index("order_id")
    landed = result.valid.set_index("order_id")
    assert (landed["created_at"] == generated.loc[landed.index, "created_at"]).all()
    assert (landed["postcode"] == generated.loc[landed.index, "postcode"]).all()
    assert (landed["customer_phone"] == generated.loc[landed.index, "customer_phone"]).all()
    # Money is an exact decimal since issue #11 (item 8); the generator's cents compare as floats.
    assert str(landed["amount"].dtype) == "decimal128(18, 2)[pyarrow]"
    pd.testing.assert_series_equal(
        landed["amount"].astype("float64"), generated.loc[landed.index, "amount"], check_names=False
    )


def test_pii_values_cover_every_personal_value_written(tmp_path: Path) -> None:
    truth = write_order_files(
        tmp_path, n_files=2, rows_per_file=500, fmt="jsonl", seed=8, bad_rows_per_file=6
    )
    frame = pd.concat(pd.read_json(p, lines=True, dtype=False) for p in truth.files)
    for column in ("customer_name", "customer_email", "customer_phone", "shipping_address", "customer_ip"):
        assert set(frame[column].dropna()) <= truth.pii_values, column
    # Contact details hidden in free-text notes are in the ground truth too.
    for note in frame["note"].dropna():
        for found in EMAIL.findall(note) + PHONE.findall(note):
            assert found in truth.pii_values, note
    # The injected bad email is PII as well.
    assert any("(at)" in v for v in truth.pii_values)
    # Nothing non-personal sneaks in (order ids, currencies, amounts).
    assert not truth.pii_values & set(frame["order_id"].dropna())


def test_files_are_deterministic(tmp_path: Path) -> None:
    for fmt in ("jsonl", "csv"):
        a = write_order_files(
            tmp_path / f"a_{fmt}", n_files=2, rows_per_file=30, fmt=fmt, bad_rows_per_file=2
        )
        b = write_order_files(
            tmp_path / f"b_{fmt}", n_files=2, rows_per_file=30, fmt=fmt, bad_rows_per_file=2
        )
        assert [p.read_bytes() for p in a.files] == [p.read_bytes() for p in b.files]
        assert (a.order_ids, a.pii_values, a.expected_reject_counts) == (
            b.order_ids,
            b.pii_values,
            b.expected_reject_counts,
        )


def test_malformed_files(tmp_path: Path) -> None:
    paths = {
        kind: write_malformed_file(tmp_path, kind)  # type: ignore[arg-type]
        for kind in ("corrupt_json", "empty", "wrong_schema", "truncated")
    }
    assert paths["empty"].stat().st_size == 0
    lines = paths["corrupt_json"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == CORRUPT_JSON_ROWS
    assert not lines[CORRUPT_JSON_LINE - 1].endswith("}")
    assert '"order_id"' not in paths["wrong_schema"].read_text(encoding="utf-8")
    assert paths["truncated"].read_bytes()[:4] == b"PAR1" and paths["truncated"].read_bytes()[-4:] != b"PAR1"
    assert write_malformed_file(tmp_path / "x", "empty", name="custom.jsonl").name == "custom.jsonl"
    with pytest.raises(ValueError, match="unknown malformed kind"):
        write_malformed_file(tmp_path, "nope")  # type: ignore[arg-type]
