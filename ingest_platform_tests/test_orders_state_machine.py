"""Stateful fuzzing of the ORDERS path: landing zone, sensor, job, warehouse and dead letters (issue #11).

A hypothesis ``RuleBasedStateMachine`` plays a hostile producer and operator against the real
code (``orders_harness.OrdersWorld``: the project's definitions, a real DagsterInstance, the real
sensor and job). Operations: land JSONL / CSV / gzip / Parquet files with valid, updated (older
*and* newer versions in later batches), huge-id and rejected rows; land empty, garbage and
long-named (245–255 characters) files; replace a file while a run is between reading and moving
it; move a processed file back unchanged, or re-land it under a new name; break and heal the
warehouse; crash a run at a chosen library step; tick the sensor; re-execute an earlier run.

Invariants after each settle (warehouse healthy, ticks until the sensor has nothing left):
ORDERS equals the model (newest version per order_id over every accepted row, version =
``updated_at`` when present else ``created_at``); every rejected row is in ``dead_letters`` exactly
once with its raw payload retrievable from the raw store; no file is left pending; every ledger
row reconciles (rows read = loaded + superseded + dead-lettered) and ``orders_reconciliation``
never failed.

Example counts: every step runs the real job (0.5–1.5 s each). The default is 200 programs of up
to 12 steps (the issue asks for a few hundred examples in ``make test``: about 1,500 real job
runs, several minutes on 2 idle cores) and 2 SIGKILL examples; ``HYPOTHESIS_PROFILE=long``
(registered in conftest) runs ten times as many, and ``ORDERS_SM_EXAMPLES`` /
``ORDERS_SIGKILL_EXAMPLES`` set the counts directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ingest_platform_tests.conftest import hypothesis_scale
from ingest_platform_tests.orders_harness import (
    BAD_KINDS,
    BASE_TIME,
    BadRow,
    Content,
    GoodRow,
    OrdersModel,
    OrdersWorld,
    deployment_env,
)

pytestmark = pytest.mark.filterwarnings("ignore")

# Order ids a producer sends: text, small numbers written as int or text (the same order), and
# ids above 2**53 that a float64 would merge (item 4).
ID_POOL: tuple[Any, ...] = ("A1", "A2", "B7", 5, "5", 9007199254740993, 9007199254740992, 12)
NUMERIC_ID_POOL: tuple[int, ...] = (5, 12, 9007199254740993, 9007199254740992)
FORMATS = ("jsonl", "csv", "jsonl.gz", "csv.gz", "parquet")
# A name crashes before that step's k-th call; "name+" right after it (e.g. after the last move).
CRASH_STEPS = ("read", "merge", "spool", "move", "quarantine", "merge+", "spool+", "move+", "quarantine+")
MARKER = re.compile(r"mk\d+z")
SETTLE_TICKS = 12


class OrdersMachine(RuleBasedStateMachine):
    """The hostile producer and operator (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="orders_sm_"))
        self.world = OrdersWorld(self.tmp)
        self.model = OrdersModel()
        self.serial = 0
        self.name_serial = 0
        # What the landing root holds now (name → content), and every content by its bytes.
        self.at_root: dict[str, Content] = {}
        self.original_name: dict[bytes, str] = {}
        self.content_of: dict[bytes, Content] = {}

    def teardown(self) -> None:
        try:
            self.settle_and_check()
        finally:
            self.world.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- generators --------------------------------------------------------------------------

    def _marker(self) -> str:
        self.serial += 1
        return f"mk{self.serial}z"

    def _good(self, data: st.DataObject, fmt: str) -> GoodRow:
        raw_id = data.draw(st.sampled_from(NUMERIC_ID_POOL if fmt == "parquet" else ID_POOL))
        if fmt.startswith("csv"):
            raw_id = str(raw_id)
        marker = self._marker()
        # Distinct milliseconds per row, so no two versions of an order ever tie.
        created = BASE_TIME + timedelta(seconds=data.draw(st.integers(0, 50)), milliseconds=self.serial)
        updated = None
        if data.draw(st.booleans()):
            updated = created + timedelta(seconds=data.draw(st.integers(1, 100)))
        amount = Decimal(self.serial) + Decimal(data.draw(st.integers(0, 99))) / 100
        return GoodRow(str(raw_id), raw_id, created, updated, amount, data.draw(st.integers(1, 9)), marker)

    def _content(self, data: st.DataObject, fmt: str) -> Content:
        content = Content(fmt=fmt)
        n_good = data.draw(st.integers(1, 4), label="good rows")
        content.good = [self._good(data, fmt) for _ in range(n_good)]
        if fmt == "parquet":
            kinds: list[str] = []
        else:
            kinds = data.draw(st.lists(st.sampled_from(BAD_KINDS), max_size=3), label="bad rows")
            if not fmt.startswith("jsonl"):
                kinds = [k for k in kinds if BadRow(k, "", BASE_TIME).csv_record() is not None]
            # A minority of corrupt lines is dead-lettered line by line; a majority quarantines the file.
            if kinds.count("corrupt_json") * 2 >= n_good + len(kinds):
                kinds = [k for k in kinds if k != "corrupt_json"]
        content.bad = [BadRow(kind, self._marker(), BASE_TIME) for kind in kinds]
        order = [("good", i) for i in range(n_good)] + [("bad", i) for i in range(len(content.bad))]
        content.order = data.draw(st.permutations(order), label="row order")
        return content

    def _name(self, fmt: str, length: int | None = None) -> str:
        self.name_serial += 1
        base = f"orders_{self.name_serial:04d}"
        suffix = "." + fmt
        if length is not None:
            base = base + "x" * max(length - len(base) - len(suffix), 0)
        return base + suffix

    def _land(self, name: str, content: Content, *, mtime: datetime | None = None) -> None:
        data = content.to_bytes()
        self.world.write_file(name, data, mtime=mtime)
        self.model.land(content)
        self.at_root[name] = content
        self.original_name.setdefault(data, name)
        self.content_of[data] = content

    # -- rules: the producer -----------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        pass

    @rule(data=st.data(), fmt=st.sampled_from(FORMATS))
    def land_file(self, data: st.DataObject, fmt: str) -> None:
        self._land(self._name(fmt), self._content(data, fmt))

    @rule(data=st.data(), length=st.integers(245, 255))
    def land_long_named_file(self, data: st.DataObject, length: int) -> None:
        """Item 5: names of 245–255 characters, sometimes landed twice under the same name."""
        name = self._name("jsonl", length)
        self._land(name, self._content(data, "jsonl"))
        if data.draw(st.booleans(), label="land the same name again later"):
            self.tick()
            # Only once the first is gone from the root: overwriting a pending file is the
            # producer's own loss, not the loader's.
            if not (self.world.landing / name).exists():
                self._land(name, self._content(data, "jsonl"))

    @rule(
        kind=st.sampled_from(["empty", "garbage"]),
        fmt=st.sampled_from(["jsonl", "csv", "jsonl.gz"]),
        length=st.none() | st.integers(245, 255),
    )
    def land_bad_file(self, kind: str, fmt: str, length: int | None) -> None:
        """Whole-file defects, quarantined; item 5: a long name leaves no room for ``.reason.txt``."""
        self._land(self._name(fmt, length), Content(fmt=fmt, whole_file=kind))

    @rule(data=st.data())
    def replace_file_mid_load(self, data: st.DataObject) -> None:
        """Item 2: while a run is between reading and moving, the producer replaces a file it read.

        The new content is the old one plus new rows (a producer rewriting ``latest.jsonl``), so
        the old rows count whether or not the run loads them; the new rows must load.
        """
        name = self._name("jsonl")
        old = self._content(data, "jsonl")
        old.bad, old.order = [], [entry for entry in old.order if entry[0] == "good"]
        self._land(name, old)
        extra = self._content(data, "jsonl")
        new = Content(fmt="jsonl", good=old.good + extra.good, bad=extra.bad)
        shift = len(old.good)
        new.order = list(old.order) + [(kind, i + shift if kind == "good" else i) for kind, i in extra.order]
        replaced: list[bool] = []
        # Sometimes the producer even keeps the old mtime (``touch -r``): only size and content differ.
        keep_mtime = data.draw(st.booleans(), label="replacement keeps the mtime")
        old_mtime = datetime.fromtimestamp((self.world.landing / name).stat().st_mtime, UTC)

        def replace(paths: list[str]) -> None:
            if not replaced and any(p.rsplit("/", 1)[-1] == name for p in paths):
                replaced.append(True)
                later = old_mtime if keep_mtime else datetime.now(UTC) - timedelta(minutes=30)
                self._land(name, new, mtime=later)

        self.world.after_read_hook = replace
        try:
            self.tick()
        finally:
            self.world.after_read_hook = None
        if not replaced:  # the run never read it (warehouse down before reading?): land it anyway
            self._land(name, new)

    @rule(data=st.data(), same_name=st.booleans())
    def reland_processed_file(self, data: st.DataObject, same_name: bool) -> None:
        """Item 3 / 10: a processed file comes back, unchanged (same name, size, mtime) or renamed."""
        processed = self.world.files_under("processed")
        if not processed:
            return
        path = data.draw(st.sampled_from(processed), label="processed file")
        raw = path.read_bytes()
        if raw not in self.content_of:
            return
        content = self.content_of[raw]
        if same_name:
            target = self.world.landing / self.original_name[raw]
            if target.exists():
                return
            os.rename(path, target)  # a rename keeps size and mtime
            self.model.land(content)
            self.at_root[target.name] = content
        else:
            self._land(self._name(content.fmt), content)

    # -- rules: the operator and the weather ---------------------------------------------------

    @rule()
    def break_warehouse(self) -> None:
        self.world.break_warehouse()

    @rule()
    def heal_warehouse(self) -> None:
        self.world.heal_warehouse()

    @rule()
    def tick(self) -> None:
        self.world.tick()

    @rule(step=st.sampled_from(CRASH_STEPS), call=st.integers(1, 3))
    def tick_with_crash(self, step: str, call: int) -> None:
        self.world.tick(crash=(step, call))

    @precondition(lambda self: bool(self.world.runs))
    @rule(data=st.data())
    def rerun_earlier_run(self, data: st.DataObject) -> None:
        """An operator re-executes an earlier run (failed or not) with its config and tags."""
        outcome = data.draw(st.sampled_from(self.world.runs), label="run to re-execute")
        run = self.world.instance.get_run_by_id(outcome.run_id)
        if run is None:
            return
        tags = {k: v for k, v in run.tags.items() if not k.startswith(".dagster")}
        selection = list(run.asset_selection) if run.asset_selection else None
        self.world.run_job(dict(run.run_config), tags, asset_selection=selection)

    @rule()
    def settle(self) -> None:
        self.settle_and_check()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def no_order_is_duplicated(self) -> None:
        if self.world.warehouse_broken:
            return
        ids = Counter(str(row["order_id"]) for row in self.world.orders_rows())
        assert not [i for i, n in ids.items() if n > 1], f"duplicate ORDERS rows: {ids.most_common(3)}"

    def settle_and_check(self) -> None:
        self.world.heal_warehouse()
        for _ in range(SETTLE_TICKS):
            if not self.world.tick() and not self.world.pending_names():
                break
        check_world(self.world, self.model)


def check_world(world: OrdersWorld, model: OrdersModel) -> None:
    """Every invariant of the issue, with messages that say what was lost or duplicated."""
    pending = world.pending_names()
    failures = [o.error for o in world.runs[-5:] if not o.success]
    # Settled with a healthy warehouse: the last load succeeded (item 7: a fresh warehouse, or a
    # batch with no reject, must not fail dead_letters), so the dead_letters table exists.
    if world.runs:
        assert world.runs[-1].success, f"the last run after settling failed: {world.runs[-1].error}"
        assert "dead_letters" in world.warehouse_tables(), "dead_letters table missing after a good run"
    assert not pending, (
        f"files still pending after settling with a healthy warehouse: {pending}; "
        f"skipped run keys {world.skipped_keys[-3:]}; last failures {failures}"
    )
    for path in world.files_under("quarantine"):
        if not path.name.endswith(".reason.txt"):
            assert any(
                p.name.startswith(path.name[:100]) and p.name.endswith(".reason.txt")
                for p in world.files_under("quarantine")
            ), f"quarantined without a reason: {path.name}"

    expected = model.expected_orders()
    rows = world.orders_rows()
    got: dict[str, dict[str, Any]] = {}
    for row in rows:
        order_id = str(row["order_id"])
        assert order_id not in got, f"order {order_id!r} stored twice"
        got[order_id] = row
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not missing and not extra, (
        f"ORDERS ids differ from the model: missing {missing}, unexpected {extra}"
    )
    for order_id, want in expected.items():
        row = got[order_id]
        amount = Decimal(str(row["amount"])).quantize(Decimal("0.01"))
        assert amount == want.amount and int(row["items"]) == want.items, (
            f"order {order_id!r}: stored amount {amount}/items {row['items']}, but the newest version "
            f"({want.version.isoformat()}, {want.marker}) has {want.amount}/{want.items}"
        )

    check_dead_letters(world, model)
    check_reconciliation(world)


def raw_payload(world: OrdersWorld, row: dict[str, Any]) -> str | None:
    """The raw payload behind a ``dead_letters`` row, found the way an operator would find it."""
    from ingest_platform.raw_store import RawStore

    store = RawStore(str(world.root / "raw"))
    letter_id = row.get("letter_id")
    if letter_id is not None and hasattr(store, "dead_letter"):
        letter = store.dead_letter(letter_id)
        return None if letter is None else letter.payload
    uri = str(row.get("raw_payload_uri") or "").removeprefix("file://").split("#", 1)[0]
    if not uri or not Path(uri).is_file():
        return None
    for line in Path(uri).read_text(encoding="utf-8").split("\n"):
        if line.strip():
            letter = json.loads(line)
            if letter.get("payload_sha256") == row.get("payload_sha256"):
                return letter["payload"]
    return None


def check_dead_letters(world: OrdersWorld, model: OrdersModel) -> None:
    if not world.warehouse_tables() and not model.rejected:
        return
    rows = [row for row in world.dead_letter_rows() if row.get("source") == "ORDERS"]
    seen: Counter[str] = Counter()
    good_markers = set(model.accepted)
    for row in rows:
        payload = raw_payload(world, row)
        assert payload is not None, f"dead letter without a retrievable raw payload: {row}"
        markers = set(MARKER.findall(payload))
        assert not markers & good_markers, f"a valid row was dead-lettered: {sorted(markers & good_markers)}"
        seen.update(markers)
    def landed_order(marker: str) -> int:
        return int(marker[2:-1])

    missing = sorted(set(model.rejected) - set(seen), key=landed_order)
    duplicated = sorted((marker for marker, n in seen.items() if n > 1), key=landed_order)
    assert not missing, (
        f"{len(missing)} of {len(model.rejected)} rejected rows missing from dead_letters, first: "
        f"{[model.rejected[m] for m in missing][:3]}"
    )
    assert not duplicated, f"rejected rows in dead_letters more than once: {duplicated[:5]}"


def check_reconciliation(world: OrdersWorld) -> None:
    from dagster import DagsterEventType

    if "orders_file_ledger" in world.warehouse_tables():
        for entry in world.query("SELECT * FROM orders_file_ledger"):
            # Every row read is accounted for once: loaded, superseded, dead-lettered or quarantined.
            counted = int(entry["loaded"]) + int(entry["superseded"]) + int(entry["dead_lettered"])
            if entry.get("status") == "quarantined":
                counted += int(entry.get("quarantined_records") or 0)
            assert int(entry["rows_read"]) == counted, f"ledger row does not reconcile: {entry}"
    check_events = DagsterEventType.ASSET_CHECK_EVALUATION
    for outcome in world.runs:
        for record in world.instance.all_logs(outcome.run_id, of_type=check_events):
            evaluation = record.dagster_event.event_specific_data
            if evaluation.check_name == "orders_reconciliation":
                assert evaluation.passed, f"orders_reconciliation failed in {outcome.run_id}: {evaluation}"


TestOrdersStateMachine = OrdersMachine.TestCase
# Minutes of real job runs; a shrinking failure takes longer still.
TestOrdersStateMachine = pytest.mark.timeout(1800)(TestOrdersStateMachine)
TestOrdersStateMachine.settings = settings(
    max_examples=int(os.environ.get("ORDERS_SM_EXAMPLES") or 200 * hypothesis_scale()),
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# -- the SIGKILL variant ------------------------------------------------------------------------

_CHILD = """
import sys
from pathlib import Path
from ingest_platform_tests.orders_harness import OrdersWorld
world = OrdersWorld(Path(sys.argv[1]), persistent=True)
print("ready", flush=True)
world.tick()
print("done", flush=True)
"""


def _kill_point() -> st.SearchStrategy[tuple[str, float]]:
    # Either after the k-th file reached processed/ (mid-move), or after a delay into the run.
    return st.one_of(
        st.tuples(st.just("moved"), st.integers(1, 30).map(float)),
        st.tuples(st.just("delay"), st.floats(0.0, 4.0)),
    )


@pytest.mark.timeout(900)
@settings(
    max_examples=int(os.environ.get("ORDERS_SIGKILL_EXAMPLES") or 2 * hypothesis_scale()),
    deadline=None,
    # The kill lands at a wall-clock moment: a replay is not the same example, so shrinking
    # would only burn minutes. The failing example is printed as generated.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), kill=_kill_point())
def test_sigkill_mid_load_then_rerun_loses_and_duplicates_nothing(
    data: st.DataObject, kill: tuple[str, float]
) -> None:
    """kill -9 the process running orders_job (sensor tick + run in that process) at a random
    point, fail its run as run monitoring would, let the sensor retry: nothing lost or doubled."""
    root = Path(tempfile.mkdtemp(prefix="orders_kill_"))
    keep = False
    try:
        env = deployment_env(root)
        machine = OrdersMachine.__new__(OrdersMachine)  # reuse the content generators only
        machine.serial, machine.name_serial = 0, 0
        model = OrdersModel()
        landing = Path(env["ORDERS_LANDING_URI"])
        landing.mkdir(parents=True)
        stamp = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
        for _ in range(24):
            content = machine._content(data, data.draw(st.sampled_from(("jsonl", "csv", "jsonl.gz"))))
            path = landing / machine._name(content.fmt)
            path.write_bytes(content.to_bytes())
            os.utime(path, (stamp, stamp))
            model.land(content)

        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(root)],
            env={**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            stdout=subprocess.PIPE,
            stderr=(root / "child.stderr").open("wb"),
            start_new_session=True,
        )
        assert child.stdout is not None
        ready = child.stdout.readline().strip()
        # A child that died before "ready" says why (e.g. a settings check refused the deployment).
        assert ready == b"ready", (root / "child.stderr").read_text(errors="replace")[-2000:]
        mode, amount = kill
        started = time.monotonic()
        while child.poll() is None:
            processed = landing / "processed"
            moved = len(list(processed.iterdir())) if processed.exists() else 0
            elapsed = time.monotonic() - started
            if (mode == "moved" and moved >= amount) or (mode == "delay" and elapsed >= amount):
                os.killpg(child.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        child.wait(timeout=120)

        world = OrdersWorld(root, persistent=True)
        try:
            from dagster import DagsterRunStatus, RunsFilter

            # What run monitoring does for a run whose worker died (started, or never got going):
            # mark it failed.
            unfinished = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
            for run in world.instance.get_runs(filters=RunsFilter(statuses=unfinished)):
                world.instance.report_run_failed(run)
            for _ in range(SETTLE_TICKS):
                if not world.tick() and not world.pending_names():
                    break
            try:
                check_world(world, model)
            except AssertionError as exc:
                keep = True  # the landing zone, raw store, warehouse and instance, for a post-mortem
                raise AssertionError(f"{exc} (kill {kill}; state kept in {root})") from exc
        finally:
            world.close()
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
