"""The order landing zone: list, read and move order files; decide when to flush the buffer.

A landing zone is a directory (local path) or an object-store prefix (``s3://bucket/prefix``),
reached through ``pyarrow.fs`` so both behave the same. Layout::

    <root>/orders_0001.jsonl      pending files (jsonl, csv or parquet)
    <root>/processed/...          files whose records were loaded
    <root>/quarantine/...         files that could not be read, each with ``<name>.reason.txt``

Writers must write under a temporary name (``*.tmp``, ``*.part``, ``.name`` or ``_name``) and
rename when done: those names are never listed, so a half-written file is never read.

Buffering follows the Snowflake Kafka connector (REFERENCE §6): records accumulate until either
``buffer.count.records`` is reached or the oldest buffered record is ``buffer.flush.time`` old,
whichever comes first. ``decide_flush`` applies that rule to the pending files, and
``run_key_for`` turns a batch into a stable run key so the same batch never launches two runs.

No Dagster imports here: the Dagster layer wraps this in a resource and a sensor.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ingest_platform.models import DeadLetter

FileFormat = Literal["jsonl", "csv", "parquet"]

PROCESSED_DIR = "processed"
QUARANTINE_DIR = "quarantine"
REASON_SUFFIX = ".reason.txt"

# Extension → format. ``.json`` is accepted as JSON Lines: a JSON array file then fails to parse
# and is quarantined (visible) instead of being ignored forever (invisible).
FORMAT_BY_SUFFIX: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Names writers use while a file is still being written.
TEMP_SUFFIXES: tuple[str, ...] = (".tmp", ".part", ".partial", ".crdownload", ".inprogress")

# A dead-letter payload keeps the raw line for replay, but a multi-megabyte garbage "line"
# (a binary file, a missing newline) must not turn into a multi-megabyte warehouse row.
MAX_RAW_PAYLOAD_CHARS = 10_000

# JSON: created_at stays a string so validation parses it (pyarrow would otherwise infer a
# timestamp[s] and silently drop sub-second precision). Other columns are inferred.
_JSON_PARSE_OPTIONS = pa_json.ParseOptions(
    explicit_schema=pa.schema([pa.field("created_at", pa.string())]),
    unexpected_field_behavior="infer",
)


@dataclass(frozen=True)
class LandingFile:
    """One pending file. ``record_count`` is cheap and approximate (None if it can't be counted)."""

    path: str
    size_bytes: int
    mtime: datetime
    format: FileFormat
    record_count: int | None = None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def identity(self) -> tuple[str, int, str]:
        """(path, size, mtime): a file with the same identity has the same content."""
        return (self.path, self.size_bytes, self.mtime.isoformat())


@dataclass
class ReadResult:
    """Records read from a batch of files.

    ``frame`` holds every parsed record (raw, unvalidated) plus ``_source_file`` and
    ``_source_line`` (1-based: the JSONL line, the CSV record number with the header as line 1,
    the Parquet row number). ``rejects`` are single records that could not be parsed;
    ``bad_files`` maps files that could not be used at all to a reason ("empty: ...",
    "wrong_schema: ...", "unreadable: ...", "missing: ...") — the caller quarantines them.
    """

    frame: pd.DataFrame
    rejects: list[DeadLetter] = field(default_factory=list)
    bad_files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FlushDecision:
    """Whether the sensor should launch a run now, and for which files."""

    should_flush: bool
    reason: Literal["count", "age"] | None
    files: list[LandingFile]
    records: int
    oldest_age_s: float

    @property
    def run_key(self) -> str | None:
        return run_key_for(self.files) if self.files else None


# The brief calls this helper the "buffer decision"; both names refer to the same type.
BufferDecision = FlushDecision


class RecordCountCache:
    """Thread-safe LRU of record counts keyed by (path, size, mtime).

    A sensor polls every 30 s; without the cache every tick would re-read every pending JSONL
    file just to count its lines. A changed file has a new size or mtime, hence a new key.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, int, int], int | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> tuple[bool, int | None]:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return True, self._entries[key]
            self.misses += 1
            return False, None

    def put(self, key: tuple[str, int, int], value: int | None) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


# Shared by default: a Dagster resource may be rebuilt on every sensor tick, while the process
# (and so this cache) lives on.
DEFAULT_COUNT_CACHE = RecordCountCache()


class _BadFile(Exception):
    """A whole file is unusable; the message is the bad_files reason."""


def file_format(name: str) -> FileFormat | None:
    """The format of a file name, or None for names that are not order files."""
    _, ext = os.path.splitext(name.lower())
    return FORMAT_BY_SUFFIX.get(ext)


def is_ignored_name(name: str) -> bool:
    """Temporary, partial or hidden files: never listed, never read."""
    lowered = name.lower()
    return name.startswith((".", "_")) or lowered.endswith(TEMP_SUFFIXES)


class LandingZone:
    """A landing zone over a local directory or an object-store prefix (same interface)."""

    def __init__(
        self,
        uri: str,
        *,
        filesystem: pafs.FileSystem | None = None,
        source: str = "orders_landing",
        count_cache: RecordCountCache | None = None,
        max_corrupt_fraction: float = 0.5,
    ) -> None:
        """Open ``uri`` (a local path or ``s3://bucket/prefix``) through ``pyarrow.fs``.

        ``filesystem`` overrides resolution (then ``uri`` is a path inside it): useful for an
        S3-compatible endpoint configured in code, or a ``SubTreeFileSystem`` in tests. S3 URIs
        may carry options, e.g. ``s3://bucket/landing?region=eu-west-1&endpoint_override=...``
        (without ``region`` pyarrow looks the bucket's region up over the network).
        ``max_corrupt_fraction``: above this share of unparseable lines a JSONL file is treated
        as unreadable (quarantined whole) rather than dead-lettered line by line.
        """
        self.uri = uri
        self.source = source
        self.max_corrupt_fraction = max_corrupt_fraction
        self.count_cache = count_cache if count_cache is not None else DEFAULT_COUNT_CACHE
        if filesystem is not None:
            self.fs = filesystem
            root = uri
        elif "://" in uri:
            self.fs, root = pafs.FileSystem.from_uri(uri)
        else:
            # from_uri rejects relative paths ("URI has empty scheme").
            self.fs, root = pafs.FileSystem.from_uri(os.path.abspath(uri))
        # "" is the root of a SubTreeFileSystem, "/" the local root; otherwise no trailing slash.
        self.root = root if root in ("", "/") else root.rstrip("/")

    def __repr__(self) -> str:
        return f"LandingZone({self.uri!r})"

    # -- paths -------------------------------------------------------------------------------

    def _join(self, *parts: str) -> str:
        prefix = self.root if self.root in ("", "/") else self.root + "/"
        return prefix + "/".join(parts)

    @property
    def processed_dir(self) -> str:
        return self._join(PROCESSED_DIR)

    @property
    def quarantine_dir(self) -> str:
        return self._join(QUARANTINE_DIR)

    # -- listing -----------------------------------------------------------------------------

    def pending_files(self) -> list[LandingFile]:
        """Order files waiting at the root, oldest first (mtime, then path).

        Sub-folders (``processed/``, ``quarantine/``), temp/hidden names and files of unknown
        formats are not listed; unknown files stay where they are.
        """
        selector = pafs.FileSelector(self.root, allow_not_found=True, recursive=False)
        found: list[LandingFile] = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or is_ignored_name(info.base_name):
                continue
            fmt = file_format(info.base_name)
            if fmt is None:
                continue
            mtime_ns = info.mtime_ns or 0
            found.append(
                LandingFile(
                    path=info.path,
                    size_bytes=int(info.size or 0),
                    mtime=_mtime_utc(info),
                    format=fmt,
                    record_count=self._cached_count(info.path, int(info.size or 0), mtime_ns, fmt),
                )
            )
        found.sort(key=lambda f: (f.mtime, f.path))
        return found

    def _cached_count(self, path: str, size: int, mtime_ns: int, fmt: FileFormat) -> int | None:
        key = (path, size, mtime_ns)
        hit, value = self.count_cache.get(key)
        if hit:
            return value
        value = self.count_records(path, fmt, size)
        self.count_cache.put(key, value)
        return value

    def count_records(self, path: str, fmt: FileFormat, size: int | None = None) -> int | None:
        """Cheap record count: Parquet footer; newlines for JSONL/CSV (CSV header excluded).

        Approximate for text (blank lines and quoted newlines count); exact counts come from
        ``read``. None when the file can't be opened (it will fail in ``read`` and be
        quarantined there, with a reason).
        """
        try:
            if size == 0:
                return 0
            if fmt == "parquet":
                with self.fs.open_input_file(path) as handle:
                    return pq.ParquetFile(handle).metadata.num_rows
            lines = _count_lines(self.fs, path)
            return max(lines - 1, 0) if fmt == "csv" else lines
        except (OSError, pa.ArrowException):
            return None

    def describe(self, path: str) -> LandingFile:
        """A LandingFile for an explicit path (for callers that hold paths, not listings)."""
        info = self.fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(path)
        fmt = file_format(info.base_name)
        if fmt is None:
            raise ValueError(f"not an order file: {path}")
        size = int(info.size or 0)
        return LandingFile(
            path, size, _mtime_utc(info), fmt, self._cached_count(path, size, info.mtime_ns or 0, fmt)
        )

    # -- reading -----------------------------------------------------------------------------

    def read(self, files: Iterable[LandingFile | str], *, run_id: str | None = None) -> ReadResult:
        """Read a batch of files into one raw frame; see ``ReadResult`` for what comes back."""
        frames: list[pd.DataFrame] = []
        rejects: list[DeadLetter] = []
        bad_files: dict[str, str] = {}
        for item in files:
            path = item.path if isinstance(item, LandingFile) else str(item)
            fmt = item.format if isinstance(item, LandingFile) else file_format(path)
            try:
                if fmt is None:
                    raise _BadFile(f"unreadable: unknown file format for {path.rsplit('/', 1)[-1]}")
                frame, file_rejects = self._read_one(path, fmt, run_id)
            except _BadFile as exc:
                bad_files[path] = str(exc)
                continue
            except FileNotFoundError:
                bad_files[path] = "missing: the file no longer exists"
                continue
            except (OSError, ValueError, pa.ArrowException) as exc:
                bad_files[path] = f"unreadable: {type(exc).__name__}: {exc}"
                continue
            frames.append(frame)
            rejects.extend(file_rejects)
        frames = [f for f in frames if len(f)]
        if frames:
            frame = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
        else:
            frame = _empty_frame()
        return ReadResult(frame=frame, rejects=rejects, bad_files=bad_files)

    def _read_one(
        self, path: str, fmt: FileFormat, run_id: str | None
    ) -> tuple[pd.DataFrame, list[DeadLetter]]:
        if fmt == "parquet":
            frame, rejects = self._read_parquet(path), []
        else:
            with self.fs.open_input_stream(path) as handle:
                data = handle.read()
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
            if not data or data.isspace():
                raise _BadFile("empty: the file has no content")
            if fmt == "jsonl":
                frame, rejects = self._read_jsonl(path, data, run_id)
            else:
                frame, rejects = self._read_csv(path, data, run_id)
        if len(frame) == 0 and not rejects:
            raise _BadFile("empty: the file has no records")
        if "order_id" not in frame.columns:
            columns = [c for c in frame.columns if not c.startswith("_source")]
            # The whole file is a different export: quarantine it; per-line rejects would be noise.
            raise _BadFile(f"wrong_schema: no order_id column (columns: {', '.join(map(str, columns[:12]))})")
        return frame, rejects

    def _read_parquet(self, path: str) -> pd.DataFrame:
        with self.fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            names = parquet.schema_arrow.names
            if "order_id" not in names:
                raise _BadFile(f"wrong_schema: no order_id column (columns: {', '.join(names[:12])})")
            if parquet.metadata.num_rows == 0:
                raise _BadFile("empty: the file has no records")
            frame = parquet.read().to_pandas()
        frame["_source_file"] = path
        frame["_source_line"] = np.arange(1, len(frame) + 1, dtype=np.int64)
        return frame

    def _read_jsonl(
        self, path: str, data: bytes, run_id: str | None
    ) -> tuple[pd.DataFrame, list[DeadLetter]]:
        # Fast path: one vectorised parse. It fails on any corrupt line or on a column whose type
        # changes between lines; then (and only for this file) parse line by line, so one bad
        # line costs one record, not the file.
        try:
            table = pa_json.read_json(pa.py_buffer(data), parse_options=_JSON_PARSE_OPTIONS)
        except pa.ArrowInvalid:
            table = None
        if table is not None:
            lines = _nonblank_line_numbers(data, table.num_rows)
            if lines is not None:
                if b'"created_at"' not in data:
                    # The explicit schema adds the column; don't pretend the file had it.
                    table = table.drop_columns(["created_at"])
                frame = table.to_pandas()
                frame["_source_file"] = path
                frame["_source_line"] = lines
                return frame, []
            # Row count doesn't match the lines (several objects on one line?): the per-line
            # parser is the authority on what a line is.
        return self._read_jsonl_per_line(path, data, run_id)

    def _read_jsonl_per_line(
        self, path: str, data: bytes, run_id: str | None
    ) -> tuple[pd.DataFrame, list[DeadLetter]]:
        records: list[dict[str, object]] = []
        line_numbers: list[int] = []
        bad: list[tuple[int, bytes, str]] = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                bad.append((number, raw, f"{type(exc).__name__}: {exc}"))
                continue
            if not isinstance(value, dict):
                bad.append((number, raw, f"not a JSON object: {type(value).__name__}"))
                continue
            records.append(value)
            line_numbers.append(number)
        total = len(records) + len(bad)
        if bad and len(bad) > self.max_corrupt_fraction * total:
            first_line, _, first_error = bad[0]
            raise _BadFile(
                f"unreadable: {len(bad)} of {total} lines are not JSON objects "
                f"(first at line {first_line}: {first_error})"
            )
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        frame["_source_file"] = path
        frame["_source_line"] = np.asarray(line_numbers, dtype=np.int64)
        rejects = [self._line_reject(path, n, raw, "corrupt_json", error, run_id) for n, raw, error in bad]
        return frame, rejects

    def _read_csv(self, path: str, data: bytes, run_id: str | None) -> tuple[pd.DataFrame, list[DeadLetter]]:
        header_end = data.find(b"\n")
        header_line = data if header_end < 0 else data[:header_end]
        try:
            names = next(csv.reader(io.StringIO(header_line.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
            raise _BadFile(f"unreadable: bad CSV header: {exc}") from exc
        # Every column as text: type inference would turn postcode "02139" into 2139 and phone
        # numbers into integers, and a stray "abc" deep in an int column would fail the file.
        # Validation converts the numeric columns itself.
        convert = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=True,
            null_values=[""],
        )
        parse = pa_csv.ParseOptions(newlines_in_values=True)
        invalid: list[tuple[int | None, str, str]] = []
        try:
            table = pa_csv.read_csv(pa.py_buffer(data), parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid:
            # Retry single-threaded (only then does pyarrow report the row number) skipping and
            # recording rows with the wrong number of fields.
            def on_invalid(row: pa_csv.InvalidRow) -> str:
                error = f"expected {row.expected_columns} fields, got {row.actual_columns}"
                invalid.append((row.number, row.text, error))
                return "skip"

            parse = pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid)
            table = pa_csv.read_csv(
                pa.py_buffer(data),
                read_options=pa_csv.ReadOptions(use_threads=False),
                parse_options=parse,
                convert_options=convert,
            )
        frame = table.to_pandas()
        frame.columns = [str(c).strip() for c in frame.columns]
        frame["_source_file"] = path
        # Record numbers with the header as line 1; skipped rows keep their numbers.
        all_lines = np.arange(2, 2 + len(frame) + len(invalid), dtype=np.int64)
        skipped = np.asarray([n for n, _, _ in invalid if n is not None], dtype=np.int64)
        lines = np.setdiff1d(all_lines, skipped, assume_unique=True) if len(skipped) else all_lines
        frame["_source_line"] = lines[: len(frame)]
        rejects = [
            self._line_reject(
                path, n or 0, text.encode("utf-8", "replace"), "malformed_csv_row", error, run_id
            )
            for n, text, error in invalid
        ]
        return frame, rejects

    def _line_reject(
        self, path: str, line: int, raw: bytes, reason: str, error: str, run_id: str | None
    ) -> DeadLetter:
        # The raw text may hold personal data: the caller scrubs payloads before the warehouse.
        text = raw.decode("utf-8", "replace")
        payload = {
            "raw": text[:MAX_RAW_PAYLOAD_CHARS],
            "raw_truncated": len(text) > MAX_RAW_PAYLOAD_CHARS,
            "error": error,
            "_source_file": path,
            "_source_line": line,
        }
        name = path.rsplit("/", 1)[-1]
        # No order_id can be trusted from a line that didn't parse: the record key is file:line.
        return DeadLetter.from_payload(
            source=self.source, reason=reason, payload=payload, record_key=f"{name}:{line}", run_id=run_id
        )

    # -- moving ------------------------------------------------------------------------------

    def mark_processed(self, files: Iterable[LandingFile | str]) -> dict[str, str]:
        """Move files into ``processed/``; returns {old path: new path} for files moved.

        Safe to repeat: a file that is no longer pending is skipped. Never overwrites: a name
        already taken in ``processed/`` gets a ``__N`` suffix.
        """
        moved: dict[str, str] = {}
        for item in files:
            path = item.path if isinstance(item, LandingFile) else str(item)
            target = self._move(path, PROCESSED_DIR)
            if target is not None:
                moved[path] = target
        return moved

    def quarantine(self, path: LandingFile | str, reason: str) -> str | None:
        """Move a file into ``quarantine/`` and write ``<name>.reason.txt`` beside it.

        Returns the new path, or None when the file was already moved (safe to repeat).
        """
        source = path.path if isinstance(path, LandingFile) else str(path)
        target = self._move(source, QUARANTINE_DIR, companion_suffix=REASON_SUFFIX)
        if target is None:
            return None
        note = f"reason: {reason}\noriginal_path: {source}\nquarantined_at: {datetime.now(UTC).isoformat()}\n"
        with self.fs.open_output_stream(target + REASON_SUFFIX) as out:
            out.write(note.encode("utf-8"))
        return target

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _move(self, source: str, folder: str, *, companion_suffix: str | None = None) -> str | None:
        if self.fs.get_file_info(source).type != pafs.FileType.File:
            return None
        directory = self._join(folder)
        self.fs.create_dir(directory, recursive=True)
        name = source.rsplit("/", 1)[-1]
        stem, ext = os.path.splitext(name)
        candidate, n = f"{directory}/{name}", 0
        while self._exists(candidate) or (companion_suffix and self._exists(candidate + companion_suffix)):
            n += 1
            candidate = f"{directory}/{stem}__{n}{ext}"
        # Local: an atomic rename. S3: copy + delete (not atomic; a crash may leave both, and
        # the next attempt then finds the source and moves it under a suffixed name).
        self.fs.move(source, candidate)
        return candidate


# -- buffering -------------------------------------------------------------------------------


def decide_flush(
    pending: Sequence[LandingFile],
    *,
    now: datetime,
    buffer_count_records: int = 10_000,
    buffer_flush_seconds: float = 60,
) -> FlushDecision:
    """Flush when pending records reach ``buffer_count_records`` or the oldest file is older than
    ``buffer_flush_seconds`` (whichever first, like the Kafka connector's buffer).

    The batch is every pending file, oldest first. Files with an unknown record count count as
    0: they flush with the age rule and fail (and are quarantined) in the run.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    files = sorted(pending, key=lambda f: (f.mtime, f.path))
    records = sum(f.record_count or 0 for f in files)
    oldest_age = max((now - files[0].mtime).total_seconds(), 0.0) if files else 0.0
    reason: Literal["count", "age"] | None = None
    if files and records >= buffer_count_records:
        reason = "count"
    elif files and oldest_age >= buffer_flush_seconds:
        reason = "age"
    return FlushDecision(
        should_flush=reason is not None,
        reason=reason,
        files=files,
        records=records,
        oldest_age_s=oldest_age,
    )


def run_key_for(files: Iterable[LandingFile]) -> str:
    """A stable key for a batch: sha256 over the sorted (path, size, mtime) of its files.

    Independent of list order; changes when a file is added, removed, grown or touched.
    """
    digest = hashlib.sha256()
    for path, size, mtime in sorted(f.identity for f in files):
        digest.update(f"{path}\x1f{size}\x1f{mtime}\x1e".encode())
    return digest.hexdigest()[:32]


# -- helpers ---------------------------------------------------------------------------------


def _mtime_utc(info: pafs.FileInfo) -> datetime:
    mtime = info.mtime
    if mtime is None:
        return datetime.fromtimestamp(0, UTC)
    return mtime.replace(tzinfo=UTC) if mtime.tzinfo is None else mtime.astimezone(UTC)


def _count_lines(fs: pafs.FileSystem, path: str, chunk_size: int = 1 << 20) -> int:
    """Newlines in a file, plus one for a last line without a trailing newline."""
    count, last = 0, b"\n"
    with fs.open_input_stream(path) as handle:
        while chunk := handle.read(chunk_size):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


def _nonblank_line_numbers(data: bytes, n_rows: int) -> np.ndarray | None:
    """1-based line numbers of the non-blank lines, if there are exactly ``n_rows`` of them."""
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if n_lines == n_rows:
        return np.arange(1, n_rows + 1, dtype=np.int64)
    numbers = [i for i, line in enumerate(data.split(b"\n"), start=1) if line.strip()]
    return np.asarray(numbers, dtype=np.int64) if len(numbers) == n_rows else None


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": pd.Series(dtype=object),
            "_source_file": pd.Series(dtype=object),
            "_source_line": pd.Series(dtype=np.int64),
        }
    )
