"""Unit tests for the Snowflake cost model: 60 s minimum, idle window, merging, sizes, trickles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from ingest_platform.warehouse.cost import (
    CREDITS_PER_HOUR,
    billed_seconds,
    billing_sessions,
    credits_per_hour,
    daily_cost_from_ledger,
    estimate_credits,
    normalise_size,
    row_by_row_cost,
)

XS_CREDIT_PER_S = 1 / 3600


def test_sizes_double_and_aliases_resolve() -> None:
    sizes = ["XSMALL", "SMALL", "MEDIUM", "LARGE", "XLARGE", "2XLARGE"]
    assert [CREDITS_PER_HOUR[s] for s in sizes] == [1, 2, 4, 8, 16, 32]
    assert normalise_size("xs") == normalise_size("X-Small") == "XSMALL"
    assert normalise_size("x-large") == "XLARGE"
    assert credits_per_hour("M") == 4
    with pytest.raises(ValueError, match="unknown warehouse size"):
        normalise_size("HUGE")


def test_sixty_second_minimum_per_resume() -> None:
    # 1 s of work with a 30 s auto-suspend would be 31 s: the 60 s minimum wins
    assert billed_seconds([(0, 1)], auto_suspend_s=30) == 60
    assert estimate_credits([(0, 1)], "XSMALL", auto_suspend_s=30) == pytest.approx(60 * XS_CREDIT_PER_S)


def test_idle_time_until_auto_suspend_is_billed() -> None:
    # 2 s of work, then 60 s idling before it suspends
    assert billed_seconds([(0, 2)], auto_suspend_s=60) == 62
    # 100 s of work + 300 s idle
    assert billed_seconds([(0, 100)], auto_suspend_s=300) == 400


def test_statement_within_idle_window_extends_the_session() -> None:
    # second statement arrives 30 s after the first ends: still awake, no new minimum
    sessions = billing_sessions([(0, 10), (40, 50)], auto_suspend_s=60)
    assert sessions == [(0, 110)]
    assert billed_seconds([(0, 10), (40, 50)], auto_suspend_s=60) == 110


def test_gap_longer_than_auto_suspend_starts_a_new_billed_session() -> None:
    sessions = billing_sessions([(0, 1), (200, 201)], auto_suspend_s=60)
    assert sessions == [(0, 61), (200, 261)]
    assert billed_seconds([(0, 1), (200, 201)], auto_suspend_s=60) == 122
    # with a short auto-suspend each resume still pays its 60 s minimum
    assert billed_seconds([(0, 1), (200, 201)], auto_suspend_s=10) == 120


def test_overlapping_unsorted_intervals_merge() -> None:
    intervals = [(50, 60), (0, 30), (10, 20), (25, 55)]
    assert billing_sessions(intervals, auto_suspend_s=60) == [(0, 120)]


def test_datetimes_and_seconds_agree_and_size_scales_linearly() -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    as_datetimes = [(t0, t0 + timedelta(seconds=90))]
    as_seconds = [(t0.timestamp(), t0.timestamp() + 90)]
    xs = estimate_credits(as_datetimes, "XSMALL", 60)
    assert xs == pytest.approx(estimate_credits(as_seconds, "XSMALL", 60)) == pytest.approx(150 / 3600)
    assert estimate_credits(as_datetimes, "MEDIUM", 60) == pytest.approx(4 * xs)
    assert estimate_credits([], "XSMALL", 60) == 0


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="auto_suspend"):
        billed_seconds([(0, 1)], auto_suspend_s=0)
    with pytest.raises(ValueError, match="ends before"):
        billed_seconds([(10, 1)])
    with pytest.raises(ValueError, match="statements_per_second"):
        row_by_row_cost(10, 0)


def test_row_by_row_back_to_back_is_one_long_session() -> None:
    cost = row_by_row_cost(1_000_000, 2_000, auto_suspend_s=60, price_per_credit_usd=3.0)
    assert cost.statements == 1_000_000
    assert cost.active_seconds == pytest.approx(500)
    assert cost.billed_seconds == pytest.approx(560)
    assert cost.resumes == 1
    assert cost.cost_usd == pytest.approx(cost.credits * 3.0)
    batched = row_by_row_cost(1_000_000, 2_000, rows_per_statement=100_000)
    assert batched.statements == 10
    assert batched.billed_seconds == pytest.approx(60 + 10 / 2_000)


def test_a_trickle_over_the_day_never_lets_the_warehouse_suspend() -> None:
    day = 86_400
    trickle = row_by_row_cost(1_000_000, 2_000, arrival_window_s=day, auto_suspend_s=60)
    assert trickle.resumes == 1
    assert trickle.billed_seconds == pytest.approx(day + 60)
    assert trickle.credits == pytest.approx((day + 60) / 3600)  # ~24 credits on an XSMALL
    sparse = row_by_row_cost(10, 2_000, arrival_window_s=day, auto_suspend_s=60)
    assert sparse.resumes == 10
    assert sparse.billed_seconds == pytest.approx(10 * 60.0005, rel=1e-6)


def _ledger(rows: list[tuple[str, float, int, int, int]]) -> pd.DataFrame:
    """(started_at, seconds, rows, batches, statements) → ledger-shaped frame."""
    started = pd.to_datetime([r[0] for r in rows], utc=True)
    return pd.DataFrame(
        {
            "started_at": started,
            "loaded_at": started + pd.to_timedelta([r[1] for r in rows], unit="s"),
            "rows_loaded": [r[2] for r in rows],
            "batches": [r[3] for r in rows],
            "statements": [r[4] for r in rows],
        }
    )


def test_daily_cost_from_ledger_merges_loads_and_keeps_to_the_day() -> None:
    ledger = _ledger(
        [
            ("2024-05-01T01:00:00", 10, 100_000, 1, 8),
            ("2024-05-01T01:00:30", 5, 50_000, 1, 8),  # within the idle window of the first
            ("2024-05-01T12:00:00", 2, 200_000, 2, 9),  # a new resume
            ("2024-05-02T00:00:10", 2, 999, 1, 7),  # the next day
        ]
    )
    report = daily_cost_from_ledger(ledger, date(2024, 5, 1), price=3.0, size="XSMALL", auto_suspend_s=60)
    # session 1: 01:00:00 → 01:00:35 + 60 s = 95 s; session 2: 2 s + 60 s = 62 s
    assert report.credits == pytest.approx((95 + 62) / 3600)
    assert report.cost_usd == pytest.approx(report.credits * 3.0)
    assert (report.rows, report.statements, report.loads) == (350_000, 25, 3)
    assert report.avg_batch_rows == pytest.approx(350_000 / 4)
    assert report.source == "ledger_estimate"

    empty = daily_cost_from_ledger(ledger.iloc[:0], date(2024, 5, 1), price=3.0)
    assert (empty.credits, empty.rows, empty.avg_batch_rows) == (0, 0, 0)
