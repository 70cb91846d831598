"""The ``dead_letters`` table and dead-letter replay bookkeeping (pure library, no Dagster).

``load_dead_letters`` turns every spooled letter (raw store) into one scrubbed warehouse row,
keyed by ``(source, letter_id)`` (``DeadLetter.key``): a rerun, a crash half-way through
moving files, or a renamed and re-landed file never adds a row twice. The table is created
empty when missing, so a fresh warehouse's first run (and any reader) sees an empty table
instead of "Table with name dead_letters does not exist".

Replay: ``dead_letter_replays`` is an append-only table of outcomes
``(letter_id, source, outcome, new_reason, run_id, replayed_at)``; a letter whose id has an
outcome ``loaded`` is *replayed*, any other letter is *pending*. The raw payload of a letter
comes from ``RawStore.dead_letter(letter_id)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ingest_platform.models import DeadLetter
from ingest_platform.warehouse.base import ColumnKind

if TYPE_CHECKING:
    from ingest_platform.raw_store import RawStore
    from ingest_platform.warehouse.base import LoadResult, Warehouse

DEAD_LETTERS_TABLE = "dead_letters"
REPLAYS_TABLE = "dead_letter_replays"
DEAD_LETTER_KEY = ("source", "letter_id")

DEAD_LETTER_COLUMNS: dict[str, ColumnKind] = {
    "source": ColumnKind.STRING,
    "letter_id": ColumnKind.STRING,
    "reason": ColumnKind.STRING,
    "payload": ColumnKind.STRING,
    "payload_sha256": ColumnKind.STRING,
    "payload_chars": ColumnKind.INTEGER,
    "raw_payload_uri": ColumnKind.STRING,
    "record_key": ColumnKind.STRING,
    "partition_key": ColumnKind.STRING,
    "source_fingerprint": ColumnKind.STRING,
    "source_line": ColumnKind.INTEGER,
    "run_id": ColumnKind.STRING,
    "rejected_at": ColumnKind.TIMESTAMP_TZ,
}
REPLAY_COLUMNS: dict[str, ColumnKind] = {
    "letter_id": ColumnKind.STRING,
    "source": ColumnKind.STRING,
    "outcome": ColumnKind.STRING,
    "new_reason": ColumnKind.STRING,
    "run_id": ColumnKind.STRING,
    "replayed_at": ColumnKind.TIMESTAMP_TZ,
}


@dataclass(frozen=True)
class DeadLetterLoadReport:
    """What ``load_dead_letters`` did: letters seen, rows new, totals per source and reason."""

    letters: int
    new_rows: int
    by_source: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    load: LoadResult | None = None


@dataclass(frozen=True)
class ReplayOutcome:
    letter_id: str
    source: str
    outcome: Literal["loaded", "rejected"]
    new_reason: str | None = None


def ensure_dead_letters_table(warehouse: Warehouse) -> bool:
    """Create an empty ``dead_letters`` table if missing (item 7); True if created."""
    return warehouse.ensure_table(DEAD_LETTERS_TABLE, DEAD_LETTER_COLUMNS)


def dead_letter_frame(
    letters: Sequence[DeadLetter], raw_store: RawStore, *, scrubber: Any, pseudonymizer: Any
) -> pd.DataFrame:
    """Scrubbed warehouse rows for ``letters``: payload shape only, reason and key scrubbed."""
    from ingest_platform.privacy.payloads import payload_shape
    from ingest_platform.privacy.policies import tokenise_url_handles

    frame = pd.DataFrame(
        {
            "source": [letter.source for letter in letters],
            "letter_id": [letter.key for letter in letters],
            "reason": [scrubber.scrub(letter.reason).text for letter in letters],
            "payload": [payload_shape(letter.payload) for letter in letters],
            "payload_sha256": [letter.payload_sha256 for letter in letters],
            "payload_chars": pd.array([len(letter.payload) for letter in letters], dtype="Int64"),
            "raw_payload_uri": [
                raw_store.dead_letter_path(letter.source, letter.partition_key or "") for letter in letters
            ],
            "record_key": [
                None if letter.record_key is None else scrubber.scrub(letter.record_key).text
                for letter in letters
            ],
            "partition_key": [letter.partition_key for letter in letters],
            "source_fingerprint": [letter.source_fingerprint for letter in letters],
            "source_line": pd.array([letter.source_line for letter in letters], dtype="Int64"),
            "run_id": [letter.run_id for letter in letters],
            "rejected_at": pd.to_datetime([letter.rejected_at for letter in letters], utc=True),
        },
        columns=list(DEAD_LETTER_COLUMNS),
    )
    if len(frame):
        frame["record_key"], _ = tokenise_url_handles(frame["record_key"], pseudonymizer)
    return frame


def load_dead_letters(
    raw_store: RawStore,
    warehouse: Warehouse,
    *,
    scrubber: Any,
    pseudonymizer: Any,
    query_tag: str,
    run_id: str | None = None,
) -> DeadLetterLoadReport:
    """Load every spooled letter into ``dead_letters`` once (keyed by source, letter_id)."""
    letters = raw_store.read_dead_letters()
    # The same id twice in the spools (two copies of one file content): one row.
    unique = list({(letter.source, letter.key): letter for letter in letters}.values())
    frame = dead_letter_frame(unique, raw_store, scrubber=scrubber, pseudonymizer=pseudonymizer)
    ensure_dead_letters_table(warehouse)
    result = warehouse.append_dedup(
        DEAD_LETTERS_TABLE, frame, key_columns=list(DEAD_LETTER_KEY), query_tag=query_tag, run_id=run_id
    )
    by_source = warehouse.read_sql(
        f"SELECT source, COUNT(*) AS n FROM {DEAD_LETTERS_TABLE} GROUP BY source ORDER BY source"
    )
    counts = {str(s): int(n) for s, n in zip(by_source["source"], by_source["n"], strict=True)}
    reasons: dict[str, dict[str, int]] = {}
    for letter in unique:
        bucket = reasons.setdefault(letter.source, {})
        short = letter.reason.split(":")[0]
        bucket[short] = bucket.get(short, 0) + 1
    return DeadLetterLoadReport(
        letters=len(unique),
        new_rows=int(result.rows_affected or 0),
        by_source=counts,
        reasons=reasons,
        load=result,
    )


def record_replays(
    warehouse: Warehouse, outcomes: Sequence[ReplayOutcome], *, query_tag: str, run_id: str | None
) -> None:
    """Append replay outcomes (idempotent per letter, outcome and run)."""
    warehouse.ensure_table(REPLAYS_TABLE, REPLAY_COLUMNS)
    if not outcomes:
        return
    now = datetime.now(UTC)
    frame = pd.DataFrame(
        {
            "letter_id": [o.letter_id for o in outcomes],
            "source": [o.source for o in outcomes],
            "outcome": [o.outcome for o in outcomes],
            "new_reason": pd.array([o.new_reason for o in outcomes], dtype="string"),
            "run_id": [run_id or "" for _ in outcomes],
            "replayed_at": [now] * len(outcomes),
        },
        columns=list(REPLAY_COLUMNS),
    )
    keys = ["letter_id", "outcome", "run_id"]
    warehouse.append_dedup(REPLAYS_TABLE, frame, key_columns=keys, query_tag=query_tag, run_id=run_id)


def replayed_letter_ids(warehouse: Warehouse) -> set[str]:
    """Ids of letters a replay has loaded (absent table: none)."""
    if not warehouse.table_exists(REPLAYS_TABLE):
        return set()
    frame = warehouse.read_sql(f"SELECT DISTINCT letter_id FROM {REPLAYS_TABLE} WHERE outcome = 'loaded'")
    return {str(v) for v in frame["letter_id"]}


def payload_frame(letters: Sequence[DeadLetter]) -> tuple[pd.DataFrame, list[DeadLetter]]:
    """Raw records of ``letters`` as a frame for re-validation, parsed like a landing file.

    Numbers are read exactly as ``LandingZone`` reads JSON (ints exact, ids as text, floats as
    Decimal), so today's rules judge the same values the first load saw. A ``corrupt_json``
    letter's raw line is parsed again; lines that still are not JSON objects come back in the
    second list. The frame carries ``_letter_id`` (the letter's key) to match outcomes.
    """
    import json

    from ingest_platform.orders.landing import _json_decimal, _json_int, _records_frame

    records: list[dict[str, object]] = []
    unparsed: list[DeadLetter] = []
    for letter in letters:
        try:
            value = json.loads(letter.payload, parse_float=_json_decimal, parse_int=_json_int)
            if isinstance(value, dict) and set(value) >= {"raw", "error"} and "order_id" not in value:
                value = json.loads(str(value["raw"]), parse_float=_json_decimal, parse_int=_json_int)
        except (ValueError, RecursionError):
            unparsed.append(letter)
            continue
        if not isinstance(value, dict):
            unparsed.append(letter)
            continue
        value["_letter_id"] = letter.key
        records.append(value)
    frame = _records_frame(records)
    return frame, unparsed


def pending_letters(
    raw_store: RawStore,
    warehouse: Warehouse,
    *,
    source: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DeadLetter]:
    """Spooled letters not yet replayed, filtered by source, reason prefix and rejection time."""
    done = replayed_letter_ids(warehouse)
    out: list[DeadLetter] = []
    seen: set[str] = set()
    for letter in raw_store.read_dead_letters(source):
        key = letter.key
        if key in done or key in seen:
            continue
        if reason is not None and not letter.reason.startswith(reason):
            continue
        if since is not None and letter.rejected_at < since:
            continue
        if until is not None and letter.rejected_at >= until:
            continue
        seen.add(key)
        out.append(letter)
    return out
