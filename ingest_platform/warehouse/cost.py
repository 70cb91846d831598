"""Snowflake warehouse cost model (REFERENCE §6), pure Python.

What Snowflake bills for a virtual warehouse:

* credits per hour by size: XSMALL 1, SMALL 2, MEDIUM 4, LARGE 8, XLARGE 16, … (doubling);
* per second, with a **60 s minimum every time the warehouse resumes**;
* and it keeps billing while **idle until auto-suspend** fires.

So the bill is driven by how long the warehouse stays awake, not by bytes. A load that runs
for 2 s costs a 60 s minimum (and, with ``auto_suspend_s=60``, 62 s: the 2 s of work plus 60 s
of idling). A trickle of single-row INSERTs whose gaps are shorter than ``auto_suspend_s`` never
lets the warehouse suspend at all: that is what makes row-by-row loading expensive.

Cloud-services credits (metadata, PUT, compilation) are billed only above 10 % of the day's
compute, so they are left out of the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pandas as pd
from pydantic import BaseModel

MIN_BILLED_SECONDS = 60.0
"""Snowflake bills at least this many seconds every time a warehouse resumes."""

CREDITS_PER_HOUR: dict[str, float] = {
    "XSMALL": 1.0,
    "SMALL": 2.0,
    "MEDIUM": 4.0,
    "LARGE": 8.0,
    "XLARGE": 16.0,
    "2XLARGE": 32.0,
    "3XLARGE": 64.0,
    "4XLARGE": 128.0,
    "5XLARGE": 256.0,
    "6XLARGE": 512.0,
}

_SIZE_ALIASES = {
    "XS": "XSMALL",
    "X-SMALL": "XSMALL",
    "S": "SMALL",
    "M": "MEDIUM",
    "L": "LARGE",
    "XL": "XLARGE",
    "X-LARGE": "XLARGE",
    "XXLARGE": "2XLARGE",
    "X2LARGE": "2XLARGE",
    "2X-LARGE": "2XLARGE",
    "XXXLARGE": "3XLARGE",
    "X3LARGE": "3XLARGE",
    "3X-LARGE": "3XLARGE",
    "X4LARGE": "4XLARGE",
    "4X-LARGE": "4XLARGE",
    "X5LARGE": "5XLARGE",
    "5X-LARGE": "5XLARGE",
    "X6LARGE": "6XLARGE",
    "6X-LARGE": "6XLARGE",
}

Instant = datetime | float | int
"""A point in time: an aware datetime, or seconds on any consistent clock."""


def normalise_size(size: str) -> str:
    """Canonical Snowflake size name (``"XS"``, ``"x-small"`` → ``"XSMALL"``)."""
    key = size.strip().upper().replace("_", "-")
    key = _SIZE_ALIASES.get(key, key.replace("-", ""))
    key = _SIZE_ALIASES.get(key, key)
    if key not in CREDITS_PER_HOUR:
        raise ValueError(f"unknown warehouse size {size!r}; expected one of {sorted(CREDITS_PER_HOUR)}")
    return key


def credits_per_hour(size: str) -> float:
    return CREDITS_PER_HOUR[normalise_size(size)]


def _seconds(value: Instant) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # naive datetimes are taken as UTC, like everywhere else in the platform
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


def billing_sessions(
    intervals: Iterable[tuple[Instant, Instant]], auto_suspend_s: float
) -> list[tuple[float, float]]:
    """Merge statement intervals into warehouse sessions ``(resume, suspend)`` in seconds.

    A statement that starts while the warehouse is running or idling (before the previous
    activity's end + ``auto_suspend_s``) extends the session; a longer gap means the warehouse
    suspended and the next statement resumes it (a new session with a new 60 s minimum).
    """
    if auto_suspend_s <= 0:
        # Snowflake's AUTO_SUSPEND=0/NULL means "never suspend": unbounded, so not modelled.
        raise ValueError("auto_suspend_s must be > 0 (a never-suspending warehouse is not modelled)")
    spans = sorted((_seconds(start), _seconds(end)) for start, end in intervals)
    sessions: list[tuple[float, float]] = []
    for start, end in spans:
        if end < start:
            raise ValueError(f"interval ends before it starts: {start} > {end}")
        if sessions and start <= sessions[-1][1]:
            resume, suspend = sessions[-1]
            sessions[-1] = (resume, max(suspend, end + auto_suspend_s))
        else:
            sessions.append((start, end + auto_suspend_s))
    return sessions


def billed_seconds(intervals: Iterable[tuple[Instant, Instant]], auto_suspend_s: float = 60) -> float:
    """Seconds Snowflake bills for these statement intervals (60 s minimum per resume)."""
    return sum(
        max(MIN_BILLED_SECONDS, suspend - resume)
        for resume, suspend in billing_sessions(intervals, auto_suspend_s)
    )


def estimate_credits(
    load_intervals: Sequence[tuple[Instant, Instant]],
    size: str = "XSMALL",
    auto_suspend_s: float = 60,
) -> float:
    """Credits a warehouse of ``size`` burns to run statements over ``load_intervals``.

    ``load_intervals`` are ``(start, end)`` pairs (aware datetimes or seconds). Overlapping and
    close-together intervals share one resume; see :func:`billing_sessions`.
    """
    return billed_seconds(load_intervals, auto_suspend_s) / 3600.0 * credits_per_hour(size)


class TrickleCost(BaseModel):
    """What a stream of small statements costs (see :func:`row_by_row_cost`)."""

    statements: int
    active_seconds: float
    billed_seconds: float
    resumes: int
    credits: float
    cost_usd: float


def row_by_row_cost(
    n_rows: int,
    statements_per_second: float,
    *,
    rows_per_statement: int = 1,
    size: str = "XSMALL",
    auto_suspend_s: float = 60,
    price_per_credit_usd: float = 3.0,
    arrival_window_s: float | None = None,
) -> TrickleCost:
    """Cost of loading ``n_rows`` as a stream of small INSERTs.

    By default the statements run back to back at ``statements_per_second``: one continuous
    session of ``n_statements / statements_per_second`` seconds plus the idle tail. With
    ``arrival_window_s`` (e.g. 86 400 for rows inserted as they arrive over a day) the
    statements are spread evenly over that window: when the gap between them is shorter than
    ``auto_suspend_s`` the warehouse never suspends and the whole window is billed; otherwise
    every statement pays its own 60 s minimum.
    """
    if statements_per_second <= 0:
        raise ValueError("statements_per_second must be > 0")
    statements = math.ceil(n_rows / max(rows_per_statement, 1))
    statement_s = 1.0 / statements_per_second
    active = statements * statement_s
    if statements == 0:
        intervals: list[tuple[float, float]] = []
    elif arrival_window_s is None or arrival_window_s <= active:
        intervals = [(0.0, active)]
    else:
        gap = arrival_window_s / statements
        if gap - statement_s <= auto_suspend_s:
            # the warehouse is woken again before it can suspend: one session over the window
            intervals = [(0.0, arrival_window_s)]
        else:
            intervals = [(i * gap, i * gap + statement_s) for i in range(statements)]
    sessions = billing_sessions(intervals, auto_suspend_s) if intervals else []
    billed = sum(max(MIN_BILLED_SECONDS, suspend - resume) for resume, suspend in sessions)
    credits = billed / 3600.0 * credits_per_hour(size)
    return TrickleCost(
        statements=statements,
        active_seconds=active,
        billed_seconds=billed,
        resumes=len(sessions),
        credits=credits,
        cost_usd=credits * price_per_credit_usd,
    )


class CostReport(BaseModel):
    """A day of loading, in credits and dollars, with where the credit figure came from."""

    day: date
    credits: float
    cost_usd: float
    statements: int
    rows: int
    avg_batch_rows: float
    loads: int = 0
    source: Literal["metering_history", "ledger_estimate"]
    note: str = ""


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def daily_cost_from_ledger(
    ledger_df: pd.DataFrame,
    day: date,
    price: float,
    size: str = "XSMALL",
    auto_suspend_s: float = 60,
) -> CostReport:
    """Estimate a UTC day's credits from ``load_ledger`` rows (columns as in ``ledger.py``).

    Each load's ``[started_at, loaded_at]`` is one busy interval; intervals are merged across
    the day so loads close together share a resume (unlike the per-load ``estimated_credits``
    in the ledger, which assumes every load wakes a cold warehouse and is an upper bound).
    """
    start, end = _day_bounds(day)
    if ledger_df.empty:
        return CostReport(
            day=day,
            credits=0.0,
            cost_usd=0.0,
            statements=0,
            rows=0,
            avg_batch_rows=0.0,
            loads=0,
            source="ledger_estimate",
        )
    started = pd.to_datetime(ledger_df["started_at"], utc=True)
    finished = pd.to_datetime(ledger_df["loaded_at"], utc=True)
    in_day = (started >= start) & (started < end)
    intervals = [
        (s.to_pydatetime(), e.to_pydatetime()) for s, e in zip(started[in_day], finished[in_day], strict=True)
    ]
    day_rows = ledger_df[in_day]
    credits = estimate_credits(intervals, size, auto_suspend_s) if intervals else 0.0

    def total(column: str) -> int:
        return int(pd.to_numeric(day_rows[column]).fillna(0).sum())

    rows, batches = total("rows_loaded"), total("batches")
    return CostReport(
        day=day,
        credits=credits,
        cost_usd=credits * price,
        statements=total("statements"),
        rows=rows,
        avg_batch_rows=rows / batches if batches else 0.0,
        loads=len(day_rows),
        source="ledger_estimate",
    )
