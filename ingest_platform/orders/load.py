"""Load a batch of landing files into ORDERS: the one library call behind the ``ORDERS`` asset.

``load_order_batch`` reads the files, validates the records, applies the privacy policy, MERGEs
the valid rows on ``order_id`` (version-ordered), spools the rejects with their raw payloads,
records a per-file reconciliation in the warehouse (``orders_file_ledger``), quarantines the
unusable files and moves the loaded ones to ``processed/``. It returns an ``OrdersLoadReport``.

Order of steps, and why (a crash between any two steps loses and duplicates nothing):

1. read (files that change while read are left pending: ``left_pending``);
2. MERGE the valid rows (atomic; idempotent: a rerun re-applies the same versions);
3. spool dead letters to the raw store, one spool per file *content* (``fp=<fingerprint>``),
   so a rerun rewrites the same spool and a same-name file with new content gets its own;
4. write the per-file reconciliation rows (keyed by run id, path, fingerprint);
5. quarantine unusable files and move loaded ones, each only if it still has the fingerprint it
   was read with; a file replaced after the read stays pending and is loaded next time.

Reconciliation, per file: ``rows_read == loaded + superseded + dead_lettered`` (``loaded`` =
rows sent to the MERGE; ``superseded`` = older versions of an order in the same batch;
``dead_lettered`` = rejected lines and rows). A quarantined file counts all its lines as
``quarantined_records`` (they are rejected records for ``dead_letter_rate``).
``reconciliation_problems`` reads the ledger back for the ``orders_reconciliation`` check.

No Dagster imports here: the asset only turns the report into metadata and check results.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import pandas as pd

from ingest_platform.models import DeadLetter
from ingest_platform.orders.landing import LandingFile, LandingZone
from ingest_platform.orders.validation import VERSION_COLUMNS, ValidationResult, validate_orders
from ingest_platform.warehouse.ledger import FILE_LEDGER_COLUMNS as _LEDGER_SCHEMA
from ingest_platform.warehouse.ledger import FILE_LEDGER_KEY, FILE_LEDGER_TABLE

if TYPE_CHECKING:
    from ingest_platform.raw_store import RawStore
    from ingest_platform.warehouse.base import LoadResult, Warehouse

ORDERS_TABLE = "ORDERS"
FileStatus = Literal["loaded", "quarantined", "changed", "missing"]


@dataclass(frozen=True)
class FileReconciliation:
    """What one file contributed to a load (see the module docstring for the balance rule)."""

    path: str
    fingerprint: str | None
    size_bytes: int
    mtime_ns: int
    status: FileStatus
    rows_read: int = 0
    loaded: int = 0
    superseded: int = 0
    dead_lettered: int = 0
    quarantined_records: int = 0
    quarantine_reason: str | None = None
    moved_to: str | None = None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def balanced(self) -> bool:
        accounted = self.loaded + self.superseded + self.dead_lettered + self.quarantined_records
        return self.rows_read == accounted


@dataclass(frozen=True)
class OrdersLoadReport:
    """The typed outcome of ``load_order_batch``: per-file reconciliation plus totals."""

    files: tuple[FileReconciliation, ...]
    load: LoadResult | None
    duplicate_keys: int
    left_pending: tuple[str, ...] = ()
    not_pending: tuple[str, ...] = ()
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def _sum(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def rows_read(self) -> int:
        return self._sum("rows_read")

    @property
    def loaded(self) -> int:
        return self._sum("loaded")

    @property
    def superseded(self) -> int:
        return self._sum("superseded")

    @property
    def dead_lettered(self) -> int:
        return self._sum("dead_lettered")

    @property
    def quarantined_records(self) -> int:
        return self._sum("quarantined_records")

    @property
    def files_loaded(self) -> int:
        return sum(1 for f in self.files if f.status == "loaded")

    @property
    def quarantined_files(self) -> int:
        return sum(1 for f in self.files if f.status == "quarantined")

    @property
    def rejected(self) -> int:
        """Dead-lettered rows plus the records of quarantined files."""
        return self.dead_lettered + self.quarantined_records

    @property
    def dead_letter_rate(self) -> float:
        total = self.rows_read
        return self.rejected / total if total else 0.0

    @property
    def reconciles(self) -> bool:
        return all(f.balanced for f in self.files)

    def as_metadata(self) -> dict[str, int | float | str]:
        """Flat figures for run metadata (numbers, so the UI plots them)."""
        figures: dict[str, int | float | str] = {
            "files_loaded": self.files_loaded,
            "files_quarantined": self.quarantined_files,
            "files_left_pending": len(self.left_pending),
            "records_in": self.rows_read,
            "rows_read": self.rows_read,
            "rows_merged": self.loaded,
            "rows_superseded": self.superseded,
            "dead_letters": self.dead_lettered,
            "quarantined_records": self.quarantined_records,
            "rejected_records": self.rejected,
            "dead_letter_rate": round(self.dead_letter_rate, 4),
            "duplicate_order_ids": self.duplicate_keys,
            "unreconciled_files": sum(1 for f in self.files if not f.balanced),
        }
        if self.load is not None:
            figures.update(self.load.as_metadata())
        return figures

    def file_table(self) -> list[dict[str, object]]:
        """Per-file rows (for a metadata table / JSON)."""
        return [
            {
                "name": f.name,
                "fingerprint": f.fingerprint,
                "status": f.status,
                "rows_read": f.rows_read,
                "loaded": f.loaded,
                "superseded": f.superseded,
                "dead_lettered": f.dead_lettered,
                "quarantined_records": f.quarantined_records,
            }
            for f in self.files
        ]


def load_order_batch(
    zone: LandingZone,
    files: Sequence[LandingFile | str] | None,
    *,
    apply_privacy: Callable[[pd.DataFrame], pd.DataFrame],
    warehouse: Warehouse,
    raw_store: RawStore,
    run_id: str | None,
    query_tag: str,
    source: str = "ORDERS",
) -> OrdersLoadReport:
    """Load ``files`` (None: every pending file) into ORDERS; see the module docstring."""
    pending = zone.pending_files()
    if files is None:
        batch = pending
        not_pending: list[str] = []
    else:
        wanted = [f.path if isinstance(f, LandingFile) else str(f) for f in files]
        by_path = {f.path: f for f in pending}
        batch = [by_path[p] for p in dict.fromkeys(wanted) if p in by_path]
        # Already processed by an earlier attempt (a retry), or gone: nothing to redo for them.
        not_pending = [p for p in dict.fromkeys(wanted) if p not in by_path]

    read = zone.read(batch, run_id=run_id)
    validation = validate_orders(read.frame, source=source, run_id=run_id)
    result = _merge_valid(validation, apply_privacy, warehouse, run_id=run_id, query_tag=query_tag)
    duplicate_keys = order_id_duplicates(warehouse)

    # Every letter under the load's source, its id from (source, content fingerprint, line).
    letters = [_restamp(letter, source) for letter in [*read.rejects, *validation.rejects]]
    by_fingerprint: dict[str, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        by_fingerprint[letter.source_fingerprint or "unknown"].append(letter)
    for fingerprint, group in by_fingerprint.items():
        raw_store.write_dead_letters(source, f"fp={fingerprint}", group)

    loaded_by_file = Counter(validation.valid["_source_file"].dropna().tolist())
    letters_by_file = Counter(letter.source_file for letter in letters)
    reconciliations: list[FileReconciliation] = []
    for file in batch:
        snapshot = read.snapshots.get(file.path)
        if file.path in read.changed:
            reconciliations.append(
                FileReconciliation(file.path, None, file.size_bytes, file.mtime_ns, "changed")
            )
        elif file.path in read.bad_files:
            reason = read.bad_files[file.path]
            missing = reason.startswith("missing:")
            records = read.bad_file_records.get(file.path, 0)
            reconciliations.append(
                FileReconciliation(
                    file.path,
                    snapshot.fingerprint if snapshot else None,
                    snapshot.size_bytes if snapshot else file.size_bytes,
                    snapshot.mtime_ns if snapshot else file.mtime_ns,
                    "missing" if missing else "quarantined",
                    rows_read=records,
                    quarantined_records=records,
                    quarantine_reason=reason,
                )
            )
        elif snapshot is not None:
            reconciliations.append(
                FileReconciliation(
                    file.path,
                    snapshot.fingerprint,
                    snapshot.size_bytes,
                    snapshot.mtime_ns,
                    "loaded",
                    rows_read=snapshot.lines,
                    loaded=loaded_by_file.get(file.path, 0),
                    superseded=validation.superseded_by_file.get(file.path, 0),
                    dead_lettered=letters_by_file.get(file.path, 0),
                )
            )
    record_file_ledger(warehouse, reconciliations, run_id=run_id, query_tag=query_tag)

    final: list[FileReconciliation] = []
    left_pending = list(read.changed)
    for rec in reconciliations:
        snapshot = read.snapshots.get(rec.path)
        moved_to: str | None = None
        if rec.status == "quarantined" and snapshot is not None:
            moved_to = zone.quarantine(rec.path, rec.quarantine_reason or "unreadable", expected=snapshot)
        elif rec.status == "loaded" and snapshot is not None:
            moved_to = zone.mark_processed([rec.path], expected={rec.path: snapshot}).get(rec.path)
        if rec.status in ("loaded", "quarantined") and moved_to is None:
            left_pending.append(rec.path)  # replaced after the read: the new content loads next time
        final.append(_replace(rec, moved_to=moved_to))

    reasons = Counter(letter.reason.split(":")[0] for letter in letters)
    return OrdersLoadReport(
        files=tuple(final),
        load=result,
        duplicate_keys=duplicate_keys,
        left_pending=tuple(dict.fromkeys(left_pending)),
        not_pending=tuple(not_pending),
        reject_reasons=dict(reasons),
    )


def load_orders_frame(
    frame: pd.DataFrame,
    *,
    apply_privacy: Callable[[pd.DataFrame], pd.DataFrame],
    warehouse: Warehouse,
    run_id: str | None,
    query_tag: str,
    source: str = "ORDERS",
) -> tuple[ValidationResult, LoadResult | None]:
    """Validate raw records with today's rules and MERGE the valid ones (dead-letter replay)."""
    validation = validate_orders(frame, source=source, run_id=run_id)
    return validation, _merge_valid(validation, apply_privacy, warehouse, run_id=run_id, query_tag=query_tag)


def order_id_duplicates(warehouse: Warehouse, table: str = ORDERS_TABLE) -> int:
    """Rows beyond one per ``order_id`` in ORDERS (0 when the table does not exist yet)."""
    if table.lower() not in warehouse.list_tables():
        return 0
    frame = warehouse.read_sql(f"SELECT COUNT(*) - COUNT(DISTINCT order_id) AS d FROM {table}")
    return int(frame.iloc[0, 0])


def _merge_valid(
    validation: ValidationResult,
    apply_privacy: Callable[[pd.DataFrame], pd.DataFrame],
    warehouse: Warehouse,
    *,
    run_id: str | None,
    query_tag: str,
) -> LoadResult:
    valid = validation.valid
    shielded = apply_privacy(valid).reset_index(drop=True)
    # Version columns hold no personal data; the policy may not list them, so carry them over.
    for column in VERSION_COLUMNS:
        if column not in shielded.columns and len(shielded) == len(valid):
            shielded[column] = valid[column].to_numpy()
    shielded = shielded[[c for c in shielded.columns if not str(c).startswith("_")]]
    return warehouse.merge(
        ORDERS_TABLE,
        shielded,
        key_columns=["order_id"],
        query_tag=query_tag,
        run_id=run_id,
        version_column="version_at" if "version_at" in shielded.columns else None,
    )


def _restamp(letter: DeadLetter, source: str) -> DeadLetter:
    update: dict[str, object] = {"source": source}
    if letter.source_fingerprint and letter.source_line is not None:
        update["letter_id"] = DeadLetter.file_letter_id(source, letter.source_fingerprint, letter.source_line)
        update["partition_key"] = f"fp={letter.source_fingerprint}"
    return letter.model_copy(update=update)


def _replace(rec: FileReconciliation, **changes: object) -> FileReconciliation:
    from dataclasses import replace

    return replace(rec, **changes)  # type: ignore[arg-type]


# -- the per-file ledger ---------------------------------------------------------------------

FILE_LEDGER_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _LEDGER_SCHEMA)


def record_file_ledger(
    warehouse: Warehouse,
    files: Sequence[FileReconciliation],
    *,
    run_id: str | None,
    query_tag: str,
) -> None:
    """Append one ``orders_file_ledger`` row per file (idempotent per run, path, fingerprint)."""
    if not files:
        return
    now = datetime.now(UTC)
    frame = pd.DataFrame(
        {
            "run_id": [run_id or ""] * len(files),
            "path": [f.path for f in files],
            "fingerprint": [f.fingerprint or "" for f in files],
            "size_bytes": pd.array([f.size_bytes for f in files], dtype="Int64"),
            "mtime_ns": pd.array([f.mtime_ns for f in files], dtype="Int64"),
            "status": [f.status for f in files],
            "rows_read": pd.array([f.rows_read for f in files], dtype="Int64"),
            "loaded": pd.array([f.loaded for f in files], dtype="Int64"),
            "superseded": pd.array([f.superseded for f in files], dtype="Int64"),
            "dead_lettered": pd.array([f.dead_lettered for f in files], dtype="Int64"),
            "quarantined_records": pd.array([f.quarantined_records for f in files], dtype="Int64"),
            "quarantine_reason": pd.array([f.quarantine_reason for f in files], dtype="string"),
            "recorded_at": [now] * len(files),
        }
    )
    warehouse.append_dedup(
        FILE_LEDGER_TABLE,
        frame,
        key_columns=list(FILE_LEDGER_KEY),
        query_tag=query_tag,
        run_id=run_id,
    )


def file_ledger(warehouse: Warehouse, run_id: str | None = None) -> pd.DataFrame:
    """The per-file ledger (of one run if given); empty with the right columns if absent."""
    if FILE_LEDGER_TABLE not in warehouse.list_tables():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FILE_LEDGER_COLUMNS})
    sql = f"SELECT * FROM {FILE_LEDGER_TABLE}"
    if run_id is not None:
        return warehouse.read_sql(sql + " WHERE run_id = ?", [run_id])
    return warehouse.read_sql(sql)


def reconciliation_problems(warehouse: Warehouse, run_id: str | None) -> list[str]:
    """One line per file of the run whose counts do not add up (empty: the run reconciles)."""
    ledger = file_ledger(warehouse, run_id)
    problems: list[str] = []
    for row in ledger.itertuples(index=False):
        parts = (row.loaded, row.superseded, row.dead_lettered, row.quarantined_records)
        accounted = sum(int(part) for part in parts)
        if int(row.rows_read) != accounted:
            problems.append(
                f"{row.path} ({row.fingerprint}): read {int(row.rows_read)} but accounted {accounted} "
                f"(loaded {int(row.loaded)}, superseded {int(row.superseded)}, "
                f"dead-lettered {int(row.dead_lettered)}, quarantined {int(row.quarantined_records)})"
            )
    return problems
