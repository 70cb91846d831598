"""Dead-letter replay as a state machine, checked against a plain-Python model.

Operations: spool a dead letter (a record that passes today, one that still fails, a corrupt line
fixed by hand, a corrupt line still broken), replay with a reason filter, dry or not.
Invariants after each step: ORDERS holds, per order id, the newest version among the letters a
replay loaded; every letter is marked ``loaded`` at most once; the report's counts are the
model's. Plus hostile payloads for ``rebuild_record``: it never raises, whatever the payload.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ingest_platform.dagster_layer.resources import PrivacyResource, WarehouseResource
from ingest_platform.models import DeadLetter
from ingest_platform.orders.replay import ReplaySelection, rebuild_record, replay_dead_letters
from ingest_platform.privacy.policies import ORDERS_POLICY
from ingest_platform.raw_store import RawStore
from ingest_platform_tests.conftest import hypothesis_scale

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("dagster_home")]

KINDS = ("passes", "still_fails", "corrupt_fixed", "corrupt_bad")
REASONS = {"passes": "amount_out_of_range: old", "still_fails": "negative_amount"}
FILTERS = (None, "amount", "negative", "corrupt")
BASE = datetime(2026, 11, 1, tzinfo=UTC)


class ReplayMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="replay_sm_"))
        self.raw = RawStore(str(self.tmp / "raw"))
        self.warehouse = WarehouseResource(engine="duckdb", duckdb_path=str(self.tmp / "wh.duckdb"))
        self.privacy = PrivacyResource(hmac_key="k" * 20 + "Zq9!" + "m" * 24)
        self.n = 0
        # model: letter id -> (kind, reason, order id, version index); loaded ids; orders
        self.letters: dict[str, tuple[str, str, str, int]] = {}
        self.loaded: set[str] = set()
        self.orders: dict[str, int] = {}  # order id -> version index (== amount) of the stored row
        self.last_report: Any = None
        self.last_expected: tuple[int, int, int] | None = None

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(kind=st.sampled_from(KINDS), order=st.integers(0, 3))
    def spool_letter(self, kind: str, order: int) -> None:
        self.n += 1
        version = self.n  # unique versions: the newest is always well defined
        order_id = f"O{order}"
        record = {
            "order_id": order_id,
            "created_at": (BASE + timedelta(minutes=version)).isoformat(),
            "amount": f"{version}.00" if kind != "still_fails" else "-1",
            "currency": "EUR",
            "_source_file": "/landing/f.jsonl",
            "_source_line": version,
        }
        if kind in ("passes", "still_fails"):
            reason, payload = REASONS[kind], record
        else:
            raw = json.dumps(record) if kind == "corrupt_fixed" else '{"order_id": "broken'
            reason = "corrupt_json"
            payload = {"raw": raw, "raw_truncated": False, "error": "x"}
            payload |= {"_source_file": "f", "_source_line": 1}
        letter_id = DeadLetter.file_letter_id("ORDERS", f"sm{self.n}", 1)
        letter = DeadLetter.from_payload(
            source="ORDERS", reason=reason, payload=payload, letter_id=letter_id, rejected_at=BASE
        )
        self.raw.write_dead_letters("ORDERS", f"fp=sm{self.n}", [letter])
        self.letters[letter_id] = (kind, reason, order_id, version)

    @rule(reason=st.sampled_from(FILTERS), dry_run=st.booleans())
    def replay(self, reason: str | None, dry_run: bool) -> None:
        privacy = self.privacy
        with self.warehouse.open() as wh:
            report = replay_dead_letters(
                self.raw,
                wh,
                selection=ReplaySelection(source="ORDERS", reason=reason),
                apply_privacy=lambda frame: privacy.apply(ORDERS_POLICY, frame)[0],
                run_id=f"replay-{self.n}-{reason}",
                query_tag="test:replay_sm",
                dry_run=dry_run,
            )
        matching = {k: v for k, v in self.letters.items() if reason is None or reason in v[1]}
        selected = {k: v for k, v in matching.items() if k not in self.loaded}
        passing = {k: v for k, v in selected.items() if v[0] in ("passes", "corrupt_fixed")}
        self.last_report = report
        self.last_expected = (len(selected), len(passing), len(matching) - len(selected))
        if not dry_run:
            self.loaded |= set(passing)
            for _, _, order_id, version in passing.values():
                self.orders[order_id] = max(self.orders.get(order_id, 0), version)

    @invariant()
    def report_matches_the_model(self) -> None:
        if self.last_report is not None:
            report = self.last_report
            assert (report.selected, report.replayed, report.already_replayed) == self.last_expected
            assert report.still_failing == report.selected - report.replayed

    @invariant()
    def orders_hold_the_newest_loaded_version(self) -> None:
        with self.warehouse.open() as wh:
            if "orders" not in wh.list_tables():
                assert self.orders == {}
                return
            rows = wh.read_sql("SELECT order_id, amount FROM ORDERS")
            marks = (
                wh.read_sql("SELECT letter_id FROM dead_letter_replays WHERE outcome = 'loaded'")
                if "dead_letter_replays" in wh.list_tables()
                else None
            )
        stored = {str(o): int(float(a)) for o, a in zip(rows["order_id"], rows["amount"], strict=True)}
        assert stored == self.orders
        loaded_marks = [] if marks is None else list(marks["letter_id"])
        assert len(loaded_marks) == len(set(loaded_marks))  # marked loaded at most once
        assert set(loaded_marks) == self.loaded


ReplayMachine.TestCase.settings = settings(
    max_examples=8 * hypothesis_scale(),
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_replay_state_machine = ReplayMachine.TestCase


@settings(max_examples=150 * hypothesis_scale(), deadline=None)
@given(
    payload=st.one_of(
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
            lambda inner: st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=12,
        ).map(lambda value: json.dumps(value)),
        st.fixed_dictionaries(
            {
                "raw": st.text(max_size=200),
                "error": st.text(max_size=10),
                "_source_line": st.integers(),
            },
            optional={"raw_truncated": st.booleans(), "_source_file": st.text(max_size=20)},
        ).map(json.dumps),
    ),
    reason=st.sampled_from(["corrupt_json", "malformed_csv_row", "invalid_amount", ""]),
)
def test_rebuild_record_never_raises_on_hostile_payloads(payload: str, reason: str) -> None:
    letter = DeadLetter(source="ORDERS", reason=reason, payload=payload, payload_sha256="0" * 64)
    record, problem = rebuild_record(letter)
    assert (record is None) != (problem is None)
    assert record is None or isinstance(record, dict)
