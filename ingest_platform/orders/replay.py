"""Dead-letter replay: re-validate rejected ORDERS records with today's rules and load those that pass.

Pure library (no Dagster): ``dead_letter_replay_job`` and ``ingest-platform replay-dead-letters``
both call :func:`replay_dead_letters`.

Rules:

* **Selection.** Dead letters come from the raw store's spool (the only place their raw payload
  lives), one per ``letter_id``. A selection filters on ``source`` (exact), ``reason`` (a
  substring of the reason, or the exact reason with ``reason_exact``) and ``rejected_at`` in
  ``[since, until)``. Letters already replayed (outcome ``loaded`` in ``dead_letter_replays``)
  are never selected again.
* **Re-validation.** A rejected record's payload is the raw record: it goes through today's
  ``validate_orders``. A line that could not be parsed (``corrupt_json``) is parsed again from
  its raw text; if it is a JSON object it is validated like any record, otherwise it still fails
  (``corrupt_json: ...``). A truncated payload (longer than the spool keeps) and a malformed CSV
  row (no header to read it with) cannot be rebuilt and still fail with ``not_replayable: ...``.
* **Loading, exactly once.** The records that pass go through the same load as the landing zone
  (``orders.load.load_orders_frame``: privacy, version-ordered MERGE on ``order_id``). A MERGE
  of the same version is a no-op, so a crash between the load and the marking, followed by a
  second replay, changes nothing in ORDERS. A replayed record older than the stored version of
  its order is superseded by the version rule, as a late file would be.
* **Marking.** Every selected letter gets a row in ``dead_letter_replays`` with the replay's run
  id: ``loaded`` (the letter is replayed and never selected again) or ``rejected`` with its new
  reason (the letter stays pending and can be replayed again after the next rule change).
* **Dry run** validates and reports, loads and marks nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingest_platform.models import DeadLetter
from ingest_platform.orders.dead_letters import ReplayOutcome

if TYPE_CHECKING:
    import pandas as pd

    from ingest_platform.raw_store import RawStore
    from ingest_platform.warehouse.base import LoadResult, Warehouse

# The column that carries each record's letter id through validation: a rejected record keeps
# every input column in its payload, so the new dead letters can be matched to the old ones.
LETTER_COLUMN = "_replay_letter_id"
_LINE_KEYS = frozenset({"raw", "error", "_source_line"})


@dataclass(frozen=True)
class ReplaySelection:
    """Which dead letters to replay."""

    source: str = "ORDERS"
    reason: str | None = None
    reason_exact: bool = False
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if letter.source != self.source:
            return False
        if self.reason is not None:
            if self.reason_exact and letter.reason != self.reason:
                return False
            if not self.reason_exact and self.reason not in letter.reason:
                return False
        rejected_at = _aware(letter.rejected_at)
        if self.since is not None and rejected_at < _aware(self.since):
            return False
        return not (self.until is not None and rejected_at >= _aware(self.until))


@dataclass
class ReplayReport:
    """Counts of one replay (``selected = replayed + still_failing``)."""

    selected: int
    replayed: int
    still_failing: int
    already_replayed: int
    dry_run: bool
    superseded: int = 0
    still_failing_reasons: dict[str, int] = field(default_factory=dict)
    outcomes: list[ReplayOutcome] = field(default_factory=list)
    load: LoadResult | None = None

    def summary(self) -> str:
        """The one line the CLI prints."""
        mode = "dry run: would replay" if self.dry_run else "replayed"
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.still_failing_reasons.items()))
        return (
            f"{self.selected} dead letter(s) selected, {mode} {self.replayed}, "
            f"{self.still_failing} still failing{f' ({reasons})' if reasons else ''}, "
            f"{self.already_replayed} already replayed earlier"
        )

    def as_metadata(self) -> dict[str, int | bool]:
        return {
            "selected": self.selected,
            "replayed": self.replayed,
            "still_failing": self.still_failing,
            "already_replayed": self.already_replayed,
            "superseded": self.superseded,
            "dry_run": self.dry_run,
        }


def select_letters(
    letters: Iterable[DeadLetter], selection: ReplaySelection, replayed_ids: set[str]
) -> tuple[list[DeadLetter], int]:
    """(letters to replay, how many matched but were replayed before), one per letter id."""
    unique: dict[str, DeadLetter] = {}
    for letter in letters:
        if selection.matches(letter):
            # The spool may hold one record twice (a rerun before ids were stable): latest wins.
            known = unique.get(letter.key)
            if known is None or _aware(letter.rejected_at) >= _aware(known.rejected_at):
                unique[letter.key] = letter
    fresh = [letter for key, letter in unique.items() if key not in replayed_ids]
    fresh.sort(key=lambda letter: (_aware(letter.rejected_at), letter.key))
    return fresh, len(unique) - len(fresh)


def rebuild_record(letter: DeadLetter) -> tuple[dict[str, Any] | None, str | None]:
    """The raw record of a letter, or (None, reason it cannot be rebuilt)."""
    try:
        payload = json.loads(letter.payload)
    except ValueError as exc:
        return None, f"not_replayable: payload is not JSON ({type(exc).__name__})"
    if not isinstance(payload, dict):
        return None, "not_replayable: payload is not a record"
    if not payload.keys() >= _LINE_KEYS:
        return payload, None
    # A line the reader could not parse: parse it again (today's reader may be more lenient, or
    # the letter was written by hand from a fixed line).
    if payload.get("raw_truncated"):
        return None, "not_replayable: the raw line was truncated when it was spooled"
    if letter.reason.startswith("malformed_csv_row"):
        return None, "not_replayable: a CSV row cannot be read without its file's header"
    try:
        record = json.loads(str(payload["raw"]))
    except ValueError as exc:
        return None, f"corrupt_json: {type(exc).__name__}: {exc}"
    if not isinstance(record, dict):
        return None, f"corrupt_json: not a JSON object: {type(record).__name__}"
    record["_source_file"] = payload.get("_source_file")
    record["_source_line"] = payload.get("_source_line")
    return record, None


def replay_dead_letters(
    raw_store: RawStore,
    warehouse: Warehouse,
    *,
    selection: ReplaySelection,
    apply_privacy: Callable[[pd.DataFrame], pd.DataFrame],
    run_id: str,
    query_tag: str,
    dry_run: bool = False,
) -> ReplayReport:
    """Replay the selected dead letters (see the module docstring for the rules)."""
    import pandas as pd

    from ingest_platform.orders.dead_letters import record_replays, replayed_letter_ids
    from ingest_platform.orders.load import load_orders_frame
    from ingest_platform.orders.validation import validate_orders

    letters, already = select_letters(
        raw_store.read_dead_letters(), selection, replayed_letter_ids(warehouse)
    )
    outcomes: dict[str, ReplayOutcome] = {}
    records: list[dict[str, Any]] = []
    for letter in letters:
        record, problem = rebuild_record(letter)
        if record is None:
            outcomes[letter.key] = ReplayOutcome(letter.key, letter.source, "rejected", problem)
        else:
            records.append({**record, LETTER_COLUMN: letter.key})
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame({LETTER_COLUMN: []})
    load: LoadResult | None = None
    superseded = 0
    if len(frame):
        if dry_run:
            validation = validate_orders(frame, source=selection.source, run_id=run_id)
        else:
            validation, load = load_orders_frame(
                frame,
                apply_privacy=apply_privacy,
                warehouse=warehouse,
                run_id=run_id,
                query_tag=query_tag,
                source=selection.source,
            )
        superseded = validation.superseded
        for reject in validation.rejects:
            key = _letter_of(reject)
            if key is not None:
                outcomes[key] = ReplayOutcome(key, selection.source, "rejected", reject.reason)
        for key in frame[LETTER_COLUMN]:
            outcomes.setdefault(key, ReplayOutcome(key, selection.source, "loaded", None))
    ordered = [outcomes[letter.key] for letter in letters]
    if not dry_run and ordered:
        record_replays(warehouse, ordered, query_tag=query_tag, run_id=run_id)
    failing = [o for o in ordered if o.outcome != "loaded"]
    reasons: dict[str, int] = {}
    for outcome in failing:
        head = (outcome.new_reason or "unknown").split(":")[0]
        reasons[head] = reasons.get(head, 0) + 1
    return ReplayReport(
        selected=len(ordered),
        replayed=len(ordered) - len(failing),
        still_failing=len(failing),
        already_replayed=already,
        dry_run=dry_run,
        superseded=superseded,
        still_failing_reasons=reasons,
        outcomes=ordered,
        load=load,
    )


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 date or time (naive = UTC) for --since/--until; ValueError with a clear message."""
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        example = "e.g. 2026-12-01 or 2026-12-01T08:00Z"
        raise ValueError(f"not an ISO 8601 date or time: {text!r} ({example})") from None
    return _aware(value)


def _letter_of(reject: DeadLetter) -> str | None:
    try:
        payload = json.loads(reject.payload)
    except ValueError:
        return None
    key = payload.get(LETTER_COLUMN) if isinstance(payload, dict) else None
    return str(key) if key is not None else None


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__: Sequence[str] = (
    "LETTER_COLUMN",
    "ReplayOutcome",
    "ReplayReport",
    "ReplaySelection",
    "parse_time",
    "rebuild_record",
    "replay_dead_letters",
    "select_letters",
)
