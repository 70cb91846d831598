"""The ORDERS attack harness: a real landing zone, sensor, job and warehouse, plus a plain-Python model.

``OrdersWorld`` owns one temporary deployment: a landing directory, a raw store, a DuckDB file and
an ephemeral ``DagsterInstance``, with the project's own ``make_definitions("local")`` built from
environment variables pointing there. ``tick()`` evaluates the real ``orders_landing_sensor`` and
does what ``dagster-daemon`` does with its answer: a ``RunRequest`` whose ``run_key`` an earlier run
of that sensor already carried (whatever that run's status) is skipped (REFERENCE §12), any other
runs ``orders_job`` in process with the request's config and tags.

Hostile conditions are environmental where possible: the warehouse fails because its DuckDB path
is a directory, a producer replaces a file with ``os.replace`` while a run is between reading and
moving it, a processed file is moved back with its original name, size and mtime. Crashes are
injected exceptions at the k-th call of a library step (in process only; the SIGKILL variant lives
in its own test).

``OrdersModel`` is the oracle: the rows every landed content holds, each tagged by a unique marker.
Valid rows: the newest version per ``order_id`` (``updated_at`` when present, else ``created_at``)
over every accepted row. Rejected rows: each must appear in ``dead_letters`` exactly once, with its
raw payload retrievable from the raw store.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ingest_platform_tests.conftest import environment

BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
SENSOR_NAME = "orders_landing_sensor"
JOB_NAME = "orders_job"
# Landed files get an mtime this far in the past, so the sensor's age rule flushes them at once.
LANDED_AGE = timedelta(hours=1)


class InjectedCrash(RuntimeError):
    """An exception the harness raised inside a run (a crash at a chosen step)."""


# -- rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoodRow:
    """A valid order version. ``version`` is the instant that orders it (updated_at or created_at)."""

    order_id: str  # canonical text form
    raw_id: Any  # as written: "A1", 5, "5", 9007199254740993
    created_at: datetime
    updated_at: datetime | None
    amount: Decimal  # 2 dp, unique per row: identifies which version won
    items: int
    marker: str

    @property
    def version(self) -> datetime:
        return self.updated_at or self.created_at

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "order_id": self.raw_id,
            "created_at": _iso(self.created_at),
            "amount": float(self.amount),
            "currency": "USD",
            "items": self.items,
            "note": self.marker,
        }
        if self.updated_at is not None:
            out["updated_at"] = _iso(self.updated_at)
        return out


# Kinds of rejected rows; each breaks exactly one rule the issue names.
BAD_KINDS = (
    "missing_id",
    "bad_date",
    "negative_amount",
    "huge_amount",  # item 8: 1e308
    "tiny_amount",  # item 8: 1e-320
    "huge_items",  # item 8: 1e20
    "fractional_id",  # item 4: a non-integral numeric id
    "line_separator",  # item 1: U+2028 / U+2029 / U+0085 inside a rejected record
    "corrupt_json",  # a line that is not JSON at all
)


@dataclass(frozen=True)
class BadRow:
    kind: str
    marker: str
    created_at: datetime

    def line(self) -> str:
        """The raw JSONL line (not always JSON: corrupt_json is a broken object)."""
        base: dict[str, Any] = {
            "order_id": f"B-{self.marker}",
            "created_at": _iso(self.created_at),
            "amount": 10.5,
            "items": 1,
            "note": self.marker,
        }
        if self.kind == "missing_id":
            del base["order_id"]
        elif self.kind == "bad_date":
            base["created_at"] = "27/11/2026 not a date"
        elif self.kind == "negative_amount":
            base["amount"] = -3.25
        elif self.kind == "huge_amount":
            base["amount"] = 1e308
        elif self.kind == "tiny_amount":
            base["amount"] = 1e-320
        elif self.kind == "huge_items":
            base["items"] = 1e20
        elif self.kind == "fractional_id":
            base["order_id"] = 5.5
        elif self.kind == "line_separator":
            # Rejected for its date; the raw separators ride along unescaped, as producers write them.
            base["created_at"] = "not a date"
            base["note"] = f"a\u2028b\u2029c\u0085d {self.marker}"
            return json.dumps(base, ensure_ascii=False)
        elif self.kind == "corrupt_json":
            return '{"order_id": "C-' + self.marker + '", "note": "' + self.marker + '", "amount": '
        return json.dumps(base)

    def csv_record(self) -> dict[str, Any] | None:
        """The same defect as a CSV record (None for kinds CSV cannot express)."""
        record = {
            "order_id": f"B-{self.marker}",
            "created_at": _iso(self.created_at),
            "amount": "10.50",
            "items": "1",
            "note": self.marker,
        }
        if self.kind == "missing_id":
            record["order_id"] = ""
        elif self.kind == "bad_date":
            record["created_at"] = "27/11/2026 not a date"
        elif self.kind == "negative_amount":
            record["amount"] = "-3.25"
        elif self.kind == "huge_amount":
            record["amount"] = "1e308"
        elif self.kind == "huge_items":
            record["items"] = "1e20"
        else:
            return None
        return record


@dataclass
class Content:
    """One file content a producer lands: rows in order, the format, and what it must become."""

    fmt: str  # "jsonl" | "csv" | "jsonl.gz" | "csv.gz" | "parquet"
    good: list[GoodRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    # Whole-file defects: "empty" | "garbage" (mostly non-JSON) | None
    whole_file: str | None = None
    order: list[tuple[str, int]] = field(default_factory=list)  # ("good"|"bad", index) in file order

    @property
    def loadable(self) -> bool:
        return self.whole_file is None

    def to_bytes(self) -> bytes:
        if self.whole_file == "empty":
            return b""
        if self.whole_file == "garbage":
            lines = [f"\x00garbage line {i} \xff".encode("utf-8", "replace") for i in range(5)]
            return b"\n".join(lines) + b"\n"
        rows = [(kind, self.good[i] if kind == "good" else self.bad[i]) for kind, i in self.order]
        base = self.fmt.removesuffix(".gz")
        if base == "jsonl":
            lines = [json.dumps(row.record()) if kind == "good" else row.line() for kind, row in rows]
            data = ("\n".join(lines) + "\n").encode("utf-8")
        elif base == "csv":
            data = _csv_bytes(
                [row.record() if kind == "good" else row.csv_record() for kind, row in rows]
            )
        else:
            data = _parquet_bytes([row.record() for kind, row in rows if kind == "good"])
        return gzip.compress(data, mtime=0) if self.fmt.endswith(".gz") else data


def _csv_bytes(records: list[dict[str, Any] | None]) -> bytes:
    import csv

    columns = ["order_id", "created_at", "updated_at", "amount", "currency", "items", "note"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        if record is not None:
            writer.writerow({key: ("" if value is None else value) for key, value in record.items()})
    return buffer.getvalue().encode("utf-8")


def _parquet_bytes(records: list[dict[str, Any]]) -> bytes:
    """Numeric ids as int64 (the Parquet case of item 4); a null id row would turn them into float."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("order_id", pa.int64()),
            ("created_at", pa.string()),
            ("updated_at", pa.string()),
            ("amount", pa.float64()),
            ("currency", pa.string()),
            ("items", pa.int64()),
            ("note", pa.string()),
        ]
    )
    rows = [{name: record.get(name) for name in schema.names} for record in records]
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the model ----------------------------------------------------------------------------------


@dataclass
class OrdersModel:
    """What ORDERS and dead_letters must hold, whatever happened on the way."""

    accepted: dict[str, GoodRow] = field(default_factory=dict)  # marker → row
    rejected: dict[str, BadRow] = field(default_factory=dict)  # marker → row

    def land(self, content: Content) -> None:
        if not content.loadable:
            return
        for row in content.good:
            self.accepted[row.marker] = row
        for row in content.bad:
            if content.fmt.removesuffix(".gz") == "csv" and row.csv_record() is None:
                continue
            self.rejected[row.marker] = row

    def expected_orders(self) -> dict[str, GoodRow]:
        newest: dict[str, GoodRow] = {}
        for row in self.accepted.values():
            current = newest.get(row.order_id)
            if current is None or row.version > current.version:
                newest[row.order_id] = row
        return newest


# -- the deployment -----------------------------------------------------------------------------


def deployment_env(root: Path) -> dict[str, str]:
    """The settings that point a local deployment at ``root`` (used in process and in subprocesses)."""
    return {
        "DAGSTER_HOME": str(root / "home"),
        "INGEST_ENV": "local",
        "INGEST_DUCKDB_PATH": str(root / "warehouse" / "warehouse.duckdb"),
        "INGEST_RAW_URI": str(root / "raw"),
        "ORDERS_LANDING_URI": str(root / "landing"),
        "ORDERS_BUFFER_COUNT_RECORDS": "1",
        "ORDERS_BUFFER_FLUSH_SECONDS": "1",
        # Retries without sleeping: the harness settles in a loop of ticks (see COORDINATION).
        "ORDERS_RETRY_BACKOFF_SECONDS": "0",
        "ORDERS_RETRY_BACKOFF_MAX_SECONDS": "0",
    }


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    error: str | None


class OrdersWorld:
    """One temporary deployment driven like the daemon drives it (see module docstring)."""

    def __init__(self, root: Path, *, persistent: bool = False) -> None:
        """``persistent``: the instance lives in ``root/home`` (sqlite), so several processes
        (the SIGKILL variant) share its run history; otherwise an ephemeral in-memory instance."""
        from dagster import DagsterInstance

        from ingest_platform_tests.conftest import make_dagster_home

        self.root = root
        self.env = deployment_env(root)
        make_dagster_home(Path(self.env["DAGSTER_HOME"]))
        self.landing = Path(self.env["ORDERS_LANDING_URI"])
        self.landing.mkdir(parents=True, exist_ok=True)
        self.duckdb_path = Path(self.env["INGEST_DUCKDB_PATH"])
        self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        self._env_cm = environment(**self.env)
        self._env_cm.__enter__()
        from ingest_platform.definitions import make_definitions

        self.defs = make_definitions("local")
        self.job = self.defs.get_job_def(JOB_NAME)
        self.sensor = self.defs.get_sensor_def(SENSOR_NAME)
        home = self.env["DAGSTER_HOME"]
        self.instance = DagsterInstance.from_config(home) if persistent else DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.runs: list[RunOutcome] = []
        self.skipped_keys: list[str] = []
        self.warehouse_broken = False
        # Called inside a run, after LandingZone.read returns (the batch's paths), e.g. to replace a file.
        self.after_read_hook: Callable[[list[str]], None] | None = None

    def close(self) -> None:
        self.instance.dispose()
        self._env_cm.__exit__(None, None, None)

    # -- producer side ---------------------------------------------------------------------------

    def write_file(self, name: str, data: bytes, *, mtime: datetime | None = None) -> Path:
        """Write like a well-behaved producer: temp name, then an atomic rename."""
        target = self.landing / name
        temporary = self.landing / f".{name[:200]}.tmp"
        temporary.write_bytes(data)
        stamp = (mtime or datetime.now(UTC) - LANDED_AGE).timestamp()
        os.utime(temporary, (stamp, stamp))
        os.replace(temporary, target)
        return target

    def pending_names(self) -> list[str]:
        from ingest_platform.orders.landing import is_ignored_name

        return sorted(
            p.name
            for p in self.landing.iterdir()
            if p.is_file() and not is_ignored_name(p.name) and not p.name.endswith(".reason.txt")
        )

    def files_under(self, folder: str) -> list[Path]:
        directory = self.landing / folder
        return sorted(p for p in directory.iterdir() if p.is_file()) if directory.exists() else []

    # -- warehouse health ------------------------------------------------------------------------

    def break_warehouse(self) -> None:
        """The DuckDB path becomes a directory: every open fails until ``heal_warehouse``."""
        if self.warehouse_broken:
            return
        if self.duckdb_path.exists():
            self.duckdb_path.rename(self.duckdb_path.with_suffix(".aside"))
        wal = self.duckdb_path.with_suffix(".duckdb.wal")
        if wal.exists():
            wal.rename(wal.with_suffix(".wal.aside"))
        self.duckdb_path.mkdir()
        self.warehouse_broken = True

    def heal_warehouse(self) -> None:
        if not self.warehouse_broken:
            return
        shutil.rmtree(self.duckdb_path)
        aside = self.duckdb_path.with_suffix(".aside")
        if aside.exists():
            aside.rename(self.duckdb_path)
        wal = self.duckdb_path.with_suffix(".duckdb.wal.aside")
        if wal.exists():
            wal.rename(self.duckdb_path.with_suffix(".duckdb.wal"))
        self.warehouse_broken = False

    # -- the daemon's part -----------------------------------------------------------------------

    def _run_key_taken(self, run_key: str) -> bool:
        from dagster import RunsFilter
        from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

        runs = self.instance.get_runs(filters=RunsFilter(tags={RUN_KEY_TAG: run_key}))
        return any(run.tags.get(SENSOR_NAME_TAG) == SENSOR_NAME for run in runs)

    def tick(self, *, crash: tuple[str, int] | None = None) -> list[RunOutcome]:
        """One sensor tick plus the runs it requests (skipping taken run keys, as the daemon does)."""
        from dagster import build_sensor_context
        from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

        context = build_sensor_context(
            instance=self.instance, resources=dict(self.defs.resources), cursor=self.cursor
        )
        data = self.sensor.evaluate_tick(context)
        if data.cursor is not None:
            self.cursor = data.cursor
        outcomes: list[RunOutcome] = []
        for request in data.run_requests or []:
            tags = dict(request.tags)
            if request.run_key:
                if self._run_key_taken(request.run_key):
                    self.skipped_keys.append(request.run_key)
                    continue
                tags[RUN_KEY_TAG] = request.run_key
            tags[SENSOR_NAME_TAG] = SENSOR_NAME
            selection = list(request.asset_selection) if request.asset_selection else None
            outcomes.append(self.run_job(request.run_config, tags, crash=crash, asset_selection=selection))
        return outcomes

    def run_job(
        self,
        run_config: dict[str, Any],
        tags: dict[str, str],
        *,
        crash: tuple[str, int] | None = None,
        asset_selection: list[Any] | None = None,
    ) -> RunOutcome:
        """Execute ``orders_job`` in process (only ``asset_selection`` when the request names one,
        e.g. the sensor's dead_letters-only follow-up)."""
        # Console logs at ERROR: hundreds of runs of DEBUG events only slow the machine down.
        quiet = {**run_config, "loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        with self._injections(crash):
            result = self.job.execute_in_process(
                run_config=quiet,
                instance=self.instance,
                tags=tags,
                raise_on_error=False,
                asset_selection=asset_selection,
            )
        error = None
        if not result.success:
            failures = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
            details = []
            for event in failures:
                failure = getattr(event.event_specific_data, "error", None)
                cause = getattr(failure, "cause", None) or failure
                text = getattr(cause, "message", None) or str(event.message)
                details.append(f"{event.step_key}: {text.strip()[:300]}")
            error = "; ".join(details) or "run failed"
        outcome = RunOutcome(result.run_id, result.success, error)
        self.runs.append(outcome)
        return outcome

    @contextmanager
    def _injections(self, crash: tuple[str, int] | None) -> Iterator[None]:
        """Wrap library steps: the after-read hook, and an exception at the k-th call of one step."""
        from ingest_platform.orders.landing import LandingZone
        from ingest_platform.raw_store import RawStore
        from ingest_platform.warehouse.duckdb_warehouse import DuckDBWarehouse

        steps: dict[str, tuple[type, str]] = {
            "read": (LandingZone, "read"),
            "merge": (DuckDBWarehouse, "merge"),
            "spool": (RawStore, "write_dead_letters"),
            "move": (LandingZone, "mark_processed"),
            "quarantine": (LandingZone, "quarantine"),
        }
        saved: list[tuple[type, str, Any, bool]] = []
        calls: dict[str, int] = {}
        hook = self.after_read_hook

        def wrap(step: str, owner: type, name: str) -> None:
            # Looked up through the MRO (merge lives on the Warehouse base class); a renamed step
            # fails here instead of silently never crashing.
            original = getattr(owner, name)
            own = name in owner.__dict__

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                calls[step] = calls.get(step, 0) + 1
                if crash is not None and crash[0] == step and calls[step] == crash[1]:
                    raise InjectedCrash(f"injected crash at {step} call {calls[step]}")
                result = original(*args, **kwargs)
                # "<step>+": the crash comes right after the step's k-th call did its work.
                if crash is not None and crash[0] == step + "+" and calls[step] == crash[1]:
                    raise InjectedCrash(f"injected crash after {step} call {calls[step]}")
                if step == "read" and hook is not None:
                    items = args[1] if len(args) > 1 else kwargs.get("files", [])
                    hook([getattr(item, "path", str(item)) for item in items])
                return result

            saved.append((owner, name, owner.__dict__.get(name), own))
            setattr(owner, name, wrapper)

        for step, (owner, name) in steps.items():
            wrap(step, owner, name)
        try:
            yield
        finally:
            for owner, name, original, own in reversed(saved):
                if own:
                    setattr(owner, name, original)
                else:
                    delattr(owner, name)

    # -- reading the outcome ---------------------------------------------------------------------

    def warehouse_tables(self) -> set[str]:
        import duckdb

        if not self.duckdb_path.exists():
            return set()
        with duckdb.connect(str(self.duckdb_path), read_only=True) as conn:
            return {row[0].lower() for row in conn.execute("SHOW TABLES").fetchall()}

    def query(self, sql: str) -> list[dict[str, Any]]:
        import duckdb

        with duckdb.connect(str(self.duckdb_path), read_only=True) as conn:
            cursor = conn.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def orders_rows(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM ORDERS") if "orders" in self.warehouse_tables() else []

    def dead_letter_rows(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM dead_letters") if "dead_letters" in self.warehouse_tables() else []

    def raw_letters(self) -> list[Any]:
        """Every dead letter spooled in the raw store, read with JSON's own line rule."""
        from ingest_platform.models import DeadLetter

        letters = []
        for path in sorted((self.root / "raw").rglob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").split("\n"):
                if line.strip():
                    letters.append((path, DeadLetter.model_validate(json.loads(line))))
        return letters
