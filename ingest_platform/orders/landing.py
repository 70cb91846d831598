"""The order landing zone: list, read and move order files; decide when to flush the buffer.

A landing zone is a directory (local path) or an object-store prefix (``s3://bucket/prefix``),
reached through ``pyarrow.fs`` so both behave the same. Layout::

    <root>/orders_0001.jsonl      pending files (jsonl, csv or parquet)
    <root>/processed/...          files whose records were loaded
    <root>/quarantine/...         files that could not be read, each with ``<name>.reason.txt``

Writers must write under a temporary name (``*.tmp``, ``*.part``, ``.name`` or ``_name``) and
rename when done: those names are never listed, so a half-written file is never read.

Rules (see also docs/runbooks.md, "ORDERS landing zone"):

* **Formats.** ``.jsonl``/``.ndjson``/``.json`` (JSON Lines), ``.csv``, ``.parquet``/``.pq``, and
  the gzip forms ``.jsonl.gz``/``.ndjson.gz``/``.json.gz``/``.csv.gz``. A gzip file is read
  (decompressed up to ``MAX_DECOMPRESSED_BYTES``) or quarantined with a reason, never left
  pending.
* **Fingerprints.** Every file read gets a ``FileSnapshot``: size, ``mtime_ns`` and a content
  fingerprint (sha256 of the bytes, 32 hex). A file whose size/mtime changes while it is read
  is not used (``ReadResult.changed``) and stays pending. ``mark_processed`` moves a file only
  if it still has the size and mtime it was read with; after the (atomic, local) rename the
  moved file is checked again and, if a producer replaced the file in between, moved back to
  the landing root so the new content is loaded next time. Nothing read is ever lost, nothing
  unread is ever moved.
* **Ids are text.** ``order_id`` never goes through float: JSON integers keep every digit
  (Arrow int64 cast to text, or Python ints on the line-by-line path), floats arrive as
  ``Decimal`` so validation can reject a non-integral numeric id.
* **Hostile content never raises.** Invalid UTF-8, NUL bytes, deep nesting, 10 MB lines,
  ``1e400`` or 5000-digit numbers: a bad line (a CSV line that is not UTF-8 included) becomes a
  dead letter with a reason, a bad file
  is quarantined with a reason, and every line is accounted for (``ReadResult.lines``,
  ``bad_file_records`` for quarantined files, which count as rejected records).
* **Long names.** Names near the 255-byte filesystem limit are shortened (prefix + hash) when
  moved into ``processed/`` or ``quarantine/``; the original name is kept in the reason file
  (quarantine) or a ``.origin.txt`` sidecar (processed), so Errno 36 never wedges the zone.

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
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
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
# Text formats that may also arrive gzip-compressed (``orders.jsonl.gz``).
GZIP_SUFFIX = ".gz"
GZIP_FORMATS: frozenset[FileFormat] = frozenset({"jsonl", "csv"})
# A gzip bomb must not exhaust memory: beyond this the file is quarantined.
MAX_DECOMPRESSED_BYTES = 2 << 30
# Longest file name (bytes) most filesystems accept (ext4, xfs, APFS, NTFS: 255).
NAME_MAX_BYTES = 255
# Room kept for the ``__N`` collision suffix and the ``.reason.txt`` / ``.origin.txt`` companions.
_NAME_BUDGET_BYTES = NAME_MAX_BYTES - 8 - len(".reason.txt")
ORIGIN_SUFFIX = ".origin.txt"
# Names writers use while a file is still being written.
TEMP_SUFFIXES: tuple[str, ...] = (".tmp", ".part", ".partial", ".crdownload", ".inprogress")

# A dead-letter payload keeps the raw line for replay, but a multi-megabyte garbage "line"
# (a binary file, a missing newline) must not turn into a multi-megabyte warehouse row.
MAX_RAW_PAYLOAD_CHARS = 10_000

# JSON: created_at stays a string so validation parses it (pyarrow would otherwise infer a
# timestamp[s] and silently drop sub-second precision). Other columns are inferred.
_JSON_PARSE_OPTIONS = pa_json.ParseOptions(
    explicit_schema=pa.schema([pa.field("created_at", pa.string()), pa.field("updated_at", pa.string())]),
    unexpected_field_behavior="infer",
)
# Python's int() refuses more digits than this (sys.int_info.default_max_str_digits).
_MAX_INT_DIGITS = 4000


@dataclass(frozen=True)
class LandingFile:
    """One pending file. ``record_count`` is cheap and approximate (None if it can't be counted)."""

    path: str
    size_bytes: int
    mtime: datetime
    format: FileFormat
    record_count: int | None = None
    mtime_ns: int = 0

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def compressed(self) -> bool:
        return self.name.lower().endswith(GZIP_SUFFIX)

    @property
    def identity(self) -> tuple[str, int, str]:
        """(path, size, mtime): a file with the same identity has the same content."""
        mtime = f"{self.mtime.isoformat()}/{self.mtime_ns}" if self.mtime_ns else self.mtime.isoformat()
        return (self.path, self.size_bytes, mtime)


@dataclass(frozen=True)
class FileSnapshot:
    """What a file was when it was read: size, mtime and a content fingerprint.

    ``fingerprint`` is the first 32 hex digits of the content's sha256: the identity of the
    file's records (dead-letter ids, raw-store spool keys) whatever the file is called.
    ``lines`` counts the records the file held (non-blank JSON lines, CSV records, Parquet rows).
    """

    path: str
    size_bytes: int
    mtime_ns: int
    fingerprint: str
    lines: int = 0

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


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
    # path → snapshot for every file whose bytes were read (good and bad files alike).
    snapshots: dict[str, FileSnapshot] = field(default_factory=dict)
    # Files that changed (or vanished) while being read: not used, they stay pending.
    changed: list[str] = field(default_factory=list)
    # path → records of a quarantined file (counted as rejected, for dead_letter_rate).
    bad_file_records: dict[str, int] = field(default_factory=dict)


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
    """A whole file is unusable; the message is the bad_files reason.

    ``records``: how many records the file held, when known (else counted from its lines).
    """

    def __init__(self, reason: str, *, records: int | None = None) -> None:
        super().__init__(reason)
        self.records = records


def file_format(name: str) -> FileFormat | None:
    """The format of a file name, or None for names that are not order files."""
    lowered = name.lower()
    compressed = lowered.endswith(GZIP_SUFFIX)
    if compressed:
        lowered = lowered[: -len(GZIP_SUFFIX)]
    _, ext = os.path.splitext(lowered)
    fmt = FORMAT_BY_SUFFIX.get(ext)
    if compressed and fmt not in GZIP_FORMATS:
        return None
    return fmt


def fingerprint_bytes(data: bytes) -> str:
    """The content fingerprint of a file (sha256, 32 hex digits)."""
    return hashlib.sha256(data).hexdigest()[:32]


def short_name(name: str, budget: int = _NAME_BUDGET_BYTES) -> str:
    """``name`` itself if it fits ``budget`` UTF-8 bytes, else a prefix + ``~`` + hash + extension.

    The hash (of the whole name) keeps two long names that share a prefix apart.
    """
    if len(name.encode("utf-8")) <= budget:
        return name
    lowered = name.lower()
    ext_len = 0
    for suffix in sorted({*FORMAT_BY_SUFFIX, *(f"{e}{GZIP_SUFFIX}" for e in FORMAT_BY_SUFFIX)}, key=len):
        if lowered.endswith(suffix):
            ext_len = len(suffix)
    ext = name[len(name) - ext_len :] if ext_len else ""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    room = budget - len(ext.encode("utf-8")) - len(digest) - 1
    prefix = name[: len(name) - ext_len].encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore")
    return f"{prefix}~{digest}{ext}"


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
                    mtime_ns=mtime_ns,
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
            lines = _count_lines(self.fs, path, compressed=path.lower().endswith(GZIP_SUFFIX))
            return max(lines - 1, 0) if fmt == "csv" else lines
        except (OSError, pa.ArrowException, zlib.error, EOFError):
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
        mtime_ns = info.mtime_ns or 0
        return LandingFile(
            path, size, _mtime_utc(info), fmt, self._cached_count(path, size, mtime_ns, fmt), mtime_ns
        )

    # -- reading -----------------------------------------------------------------------------

    def read(self, files: Iterable[LandingFile | str], *, run_id: str | None = None) -> ReadResult:
        """Read a batch of files into one raw frame; see ``ReadResult`` for what comes back.

        Never raises on content: each file is read, quarantined-to-be (``bad_files``) or, if it
        changed while being read, left out (``changed``). The frame carries
        ``_source_fingerprint`` beside ``_source_file`` and ``_source_line``.
        """
        frames: list[pd.DataFrame] = []
        result = ReadResult(frame=_empty_frame())
        for item in files:
            path = item.path if isinstance(item, LandingFile) else str(item)
            fmt = item.format if isinstance(item, LandingFile) else file_format(path)
            try:
                before = self.fs.get_file_info(path)
                if before.type != pafs.FileType.File:
                    raise FileNotFoundError(path)
                data = self._read_bytes(path)
                after = self.fs.get_file_info(path)
            except FileNotFoundError:
                result.bad_files[path] = "missing: the file no longer exists"
                continue
            except OSError as exc:
                result.bad_files[path] = f"unreadable: {type(exc).__name__}: {exc}"
                continue
            if (
                after.type != pafs.FileType.File
                or (after.size, after.mtime_ns) != (before.size, before.mtime_ns)
                or len(data) != (before.size or 0)
            ):
                # Replaced or growing under us: what we hold may be neither version. Leave it
                # pending; the next run reads the settled file.
                result.changed.append(path)
                continue
            snapshot = FileSnapshot(path, len(data), before.mtime_ns or 0, fingerprint_bytes(data))
            try:
                if fmt is None:
                    raise _BadFile(f"unreadable: unknown file format for {path.rsplit('/', 1)[-1]}")
                frame, file_rejects, lines = self._parse(path, fmt, data, snapshot.fingerprint, run_id)
            except _BadFile as exc:
                result.bad_files[path] = str(exc)
                result.bad_file_records[path] = exc.records if exc.records is not None else _rough_lines(data)
                result.snapshots[path] = snapshot
                continue
            except (
                OSError,
                ValueError,
                OverflowError,
                RecursionError,
                MemoryError,
                pa.ArrowException,
                zlib.error,
            ) as exc:
                result.bad_files[path] = f"unreadable: {type(exc).__name__}: {str(exc)[:300]}"
                result.bad_file_records[path] = _rough_lines(data)
                result.snapshots[path] = snapshot
                continue
            result.snapshots[path] = FileSnapshot(
                path, snapshot.size_bytes, snapshot.mtime_ns, snapshot.fingerprint, lines
            )
            frames.append(frame)
            result.rejects.extend(file_rejects)
        frames = [f for f in frames if len(f)]
        if frames:
            result.frame = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
        return result

    def _read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path, compression=None) as handle:
            return handle.read()

    def _parse(
        self, path: str, fmt: FileFormat, raw: bytes, fingerprint: str, run_id: str | None
    ) -> tuple[pd.DataFrame, list[DeadLetter], int]:
        """Parse one file's bytes: (raw frame, line rejects, records the file held)."""
        data = _gunzip(raw) if path.lower().endswith(GZIP_SUFFIX) else raw
        if fmt == "parquet":
            frame, rejects = self._read_parquet(path, data), []
        else:
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
            if not data or data.isspace():
                raise _BadFile("empty: the file has no content", records=0)
            if fmt == "jsonl":
                frame, rejects = self._read_jsonl(path, data, fingerprint, run_id)
            else:
                frame, rejects = self._read_csv(path, data, fingerprint, run_id)
        lines = len(frame) + len(rejects)
        if len(frame) == 0 and not rejects:
            raise _BadFile("empty: the file has no records", records=0)
        if "order_id" not in frame.columns:
            columns = [c for c in frame.columns if not c.startswith("_source")]
            # The whole file is a different export: quarantine it; per-line rejects would be noise.
            listed = ", ".join(map(str, columns[:12]))
            raise _BadFile(f"wrong_schema: no order_id column (columns: {listed})", records=lines)
        frame["_source_fingerprint"] = fingerprint
        return frame, rejects, lines

    def _read_parquet(self, path: str, data: bytes) -> pd.DataFrame:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        names = parquet.schema_arrow.names
        rows = parquet.metadata.num_rows
        if "order_id" not in names:
            listed = ", ".join(names[:12])
            raise _BadFile(f"wrong_schema: no order_id column (columns: {listed})", records=rows)
        if rows == 0:
            raise _BadFile("empty: the file has no records", records=0)
        table = parquet.read()
        frame = _table_to_pandas(table)
        frame["_source_file"] = path
        frame["_source_line"] = np.arange(1, len(frame) + 1, dtype=np.int64)
        return frame

    def _read_jsonl(
        self, path: str, data: bytes, fingerprint: str, run_id: str | None
    ) -> tuple[pd.DataFrame, list[DeadLetter]]:
        # Fast path: one vectorised parse. It fails on any corrupt line or on a column whose type
        # changes between lines; then (and only for this file) parse line by line, so one bad
        # line costs one record, not the file. A float (or other non-integer) order_id also goes
        # line by line: Arrow would have turned 9007199254740993 into a double already.
        try:
            table = pa_json.read_json(pa.py_buffer(data), parse_options=_JSON_PARSE_OPTIONS)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            table = None
        if table is not None and "order_id" in table.column_names:
            id_type = table.schema.field("order_id").type
            if not (pa.types.is_string(id_type) or pa.types.is_integer(id_type) or pa.types.is_null(id_type)):
                table = None
        if table is not None:
            lines = _nonblank_line_numbers(data, table.num_rows)
            if lines is not None:
                for column in ("created_at", "updated_at"):
                    if f'"{column}"'.encode() not in data:
                        # The explicit schema adds the column; don't pretend the file had it.
                        table = table.drop_columns([column])
                frame = _table_to_pandas(table)
                frame["_source_file"] = path
                frame["_source_line"] = lines
                return frame, []
            # Row count doesn't match the lines (several objects on one line?): the per-line
            # parser is the authority on what a line is.
        return self._read_jsonl_per_line(path, data, fingerprint, run_id)

    def _read_jsonl_per_line(
        self, path: str, data: bytes, fingerprint: str, run_id: str | None
    ) -> tuple[pd.DataFrame, list[DeadLetter]]:
        records: list[dict[str, object]] = []
        line_numbers: list[int] = []
        bad: list[tuple[int, bytes, str]] = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw, parse_float=_json_decimal, parse_int=_json_int)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, deep nesting
                bad.append((number, raw, f"{type(exc).__name__}: {str(exc)[:200]}"))
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
                f"(first at line {first_line}: {first_error})",
                records=total,
            )
        frame = _records_frame(records)
        frame["_source_file"] = path
        frame["_source_line"] = np.asarray(line_numbers, dtype=np.int64)
        rejects = [
            self._line_reject(path, n, raw, "corrupt_json", error, run_id, fingerprint)
            for n, raw, error in bad
        ]
        return frame, rejects

    def _read_csv(
        self, path: str, data: bytes, fingerprint: str, run_id: str | None
    ) -> tuple[pd.DataFrame, list[DeadLetter]]:
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
        # A line that is not UTF-8 costs that line, not the file: it is swapped for a marker row
        # with one field too many, which the invalid-row handler below turns into a reject.
        originals: dict[int, bytes] = {}
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            data, originals = _mark_invalid_utf8_lines(data, len(names))
        parse = pa_csv.ParseOptions(newlines_in_values=True)
        invalid: list[tuple[int | None, str, str]] = []
        try:
            table = pa_csv.read_csv(pa.py_buffer(data), parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid:
            # Retry single-threaded (only then does pyarrow report the row number) skipping and
            # recording rows with the wrong number of fields.
            def on_invalid(row: pa_csv.InvalidRow) -> str:
                error = f"expected {row.expected_columns} fields, got {row.actual_columns}"
                if row.text.startswith(_INVALID_UTF8_MARKER):
                    number = int(row.text[len(_INVALID_UTF8_MARKER) :].split(",", 1)[0])
                    invalid.append((number, row.text, "invalid UTF-8"))
                    return "skip"
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
                path,
                n or 0,
                originals[n] if n in originals else text.encode("utf-8", "replace"),
                "malformed_csv_row",
                error,
                run_id,
                fingerprint,
            )
            for n, text, error in invalid
        ]
        return frame, rejects

    def _line_reject(
        self, path: str, line: int, raw: bytes, reason: str, error: str, run_id: str | None, fingerprint: str
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
            source=self.source,
            reason=reason,
            payload=payload,
            record_key=f"{name}:{line}",
            run_id=run_id,
            letter_id=DeadLetter.file_letter_id(self.source, fingerprint, line),
            source_file=path,
            source_fingerprint=fingerprint,
            source_line=line,
        )

    # -- moving ------------------------------------------------------------------------------

    def mark_processed(
        self,
        files: Iterable[LandingFile | str],
        *,
        expected: Mapping[str, FileSnapshot] | None = None,
    ) -> dict[str, str]:
        """Move files into ``processed/``; returns {old path: new path} for files moved.

        Safe to repeat: a file that is no longer pending is skipped. Never overwrites: a name
        already taken in ``processed/`` gets a ``__N`` suffix. With ``expected`` (the snapshots
        the files were read with), a file is moved only if it still has that size and mtime;
        a file replaced in the meantime stays pending (see the module docstring).
        """
        moved: dict[str, str] = {}
        for item in files:
            path = item.path if isinstance(item, LandingFile) else str(item)
            snapshot = expected.get(path) if expected is not None else None
            if expected is not None and snapshot is None:
                continue  # never read in this run: nothing loaded from it, so it must not move
            target = self._move(path, PROCESSED_DIR, expected=snapshot)
            if target is not None:
                moved[path] = target
        return moved

    def quarantine(
        self, path: LandingFile | str, reason: str, *, expected: FileSnapshot | None = None
    ) -> str | None:
        """Move a file into ``quarantine/`` and write ``<name>.reason.txt`` beside it.

        Returns the new path, or None when the file was already moved (safe to repeat) or, with
        ``expected``, no longer has the snapshot it was judged on (it stays pending).
        """
        source = path.path if isinstance(path, LandingFile) else str(path)
        note = f"reason: {reason}\noriginal_path: {source}\nquarantined_at: {datetime.now(UTC).isoformat()}\n"
        if expected is not None:
            note += f"fingerprint: {expected.fingerprint}\nsize_bytes: {expected.size_bytes}\n"
        return self._move(
            source, QUARANTINE_DIR, companion_suffix=REASON_SUFFIX, companion_text=note, expected=expected
        )

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _free_name(self, directory: str, name: str, companion_suffix: str | None) -> str:
        stem_ext = short_name(name)
        lowered = stem_ext.lower()
        ext = ""
        for suffix in sorted({*FORMAT_BY_SUFFIX, *(f"{e}{GZIP_SUFFIX}" for e in FORMAT_BY_SUFFIX)}, key=len):
            if lowered.endswith(suffix):
                ext = stem_ext[len(stem_ext) - len(suffix) :]
        stem = stem_ext[: len(stem_ext) - len(ext)]
        candidate, n = f"{directory}/{stem_ext}", 0
        while self._exists(candidate) or (companion_suffix and self._exists(candidate + companion_suffix)):
            n += 1
            candidate = f"{directory}/{stem}__{n}{ext}"
        return candidate

    def _move(
        self,
        source: str,
        folder: str,
        *,
        companion_suffix: str | None = None,
        companion_text: str | None = None,
        expected: FileSnapshot | None = None,
    ) -> str | None:
        """Move ``source`` into ``folder`` under a free (possibly shortened) name.

        The companion (``.reason.txt``; ``.origin.txt`` for a shortened name) is written
        *before* the rename: a crash in between leaves at worst an orphan note beside a file
        that is still pending, never a quarantined file without its reason.
        """
        info = self.fs.get_file_info(source)
        if info.type != pafs.FileType.File:
            return None
        if expected is not None and not _same_snapshot(info, expected):
            return None  # replaced since it was read: stays pending, loaded next time
        directory = self._join(folder)
        self.fs.create_dir(directory, recursive=True)
        name = source.rsplit("/", 1)[-1]
        candidate = self._free_name(directory, name, companion_suffix or ORIGIN_SUFFIX)
        notes: list[str] = []
        if companion_suffix and companion_text is not None:
            notes.append(candidate + companion_suffix)
            self._write_text(notes[-1], companion_text)
        if candidate.rsplit("/", 1)[-1] != name:
            notes.append(candidate + ORIGIN_SUFFIX)
            self._write_text(notes[-1], f"original_path: {source}\n")
        # Local: an atomic rename. S3: copy + delete (not atomic; a crash may leave both, and
        # the next attempt then finds the source and moves it under a suffixed name).
        self.fs.move(source, candidate)
        if expected is not None:
            moved = self.fs.get_file_info(candidate)
            # Object stores keep whole-second mtimes: there the content hash decides.
            coarse = expected.mtime_ns % 1_000_000_000 == 0
            if not _same_snapshot(moved, expected) or (
                coarse and self._fingerprint(candidate) != expected.fingerprint
            ):
                # A producer renamed a new version over the path between our check and our
                # rename: we moved the *new* file. Put it back, pending, under a free name.
                back = source if not self._exists(source) else self._free_name(self.root_dir, name, None)
                self.fs.move(candidate, back)
                for note in notes:
                    self.fs.delete_file(note)
                return None
        return candidate

    def _write_text(self, path: str, text: str) -> None:
        with self.fs.open_output_stream(path) as out:
            out.write(text.encode("utf-8"))

    @property
    def root_dir(self) -> str:
        return self.root.rstrip("/") if self.root not in ("", "/") else self.root

    def _fingerprint(self, path: str) -> str:
        return fingerprint_bytes(self._read_bytes(path))


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


def _count_lines(
    fs: pafs.FileSystem, path: str, chunk_size: int = 1 << 20, *, compressed: bool = False
) -> int:
    """Newlines in a file, plus one for a last line without a trailing newline (gzip: decompressed)."""
    count, last = 0, b"\n"
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS) if compressed else None
    total = 0
    with fs.open_input_stream(path, compression=None) as handle:
        while chunk := handle.read(chunk_size):
            if decompressor is not None:
                chunk = decompressor.decompress(chunk)
                total += len(chunk)
                if total > MAX_DECOMPRESSED_BYTES:
                    raise OSError("gzip content larger than MAX_DECOMPRESSED_BYTES")
                if not chunk:
                    continue
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


_INVALID_UTF8_MARKER = "\x1finvalid-utf8:"


def _mark_invalid_utf8_lines(data: bytes, n_fields: int) -> tuple[bytes, dict[int, bytes]]:
    """Swap each non-UTF-8 line for a marker row (``n_fields + 1`` fields, so always invalid).

    Returns the new bytes and {line number (header = 1): original line}. Linear in the size.
    """
    lines = data.split(b"\n")
    originals: dict[int, bytes] = {}
    for index, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            number = index + 1
            originals[number] = line
            lines[index] = f"{_INVALID_UTF8_MARKER}{number}".encode() + b"," * n_fields
    return b"\n".join(lines), originals


def _same_snapshot(info: pafs.FileInfo, snapshot: FileSnapshot) -> bool:
    return (
        info.type == pafs.FileType.File
        and int(info.size or 0) == snapshot.size_bytes
        and (info.mtime_ns or 0) == snapshot.mtime_ns
    )


def _gunzip(data: bytes) -> bytes:
    """Decompress gzip bytes (concatenated members too), bounded by ``MAX_DECOMPRESSED_BYTES``."""
    out: list[bytes] = []
    total = 0
    rest = data
    while rest:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = decompressor.decompress(rest, MAX_DECOMPRESSED_BYTES + 1 - total)
        except zlib.error as exc:
            raise _BadFile(f"unreadable: not a valid gzip file: {exc}") from exc
        total += len(chunk)
        out.append(chunk)
        if total > MAX_DECOMPRESSED_BYTES or decompressor.unconsumed_tail:
            raise _BadFile(f"unreadable: gzip content larger than {MAX_DECOMPRESSED_BYTES} bytes")
        if not decompressor.eof:
            raise _BadFile("unreadable: truncated gzip file")
        rest = decompressor.unused_data
        if rest and not rest.lstrip(b"\x00"):
            break  # zero padding after the last member
    return b"".join(out)


def _rough_lines(data: bytes) -> int:
    """Records in a file that could not be parsed: its non-blank lines (at least 1)."""
    return max(sum(1 for line in data.split(b"\n") if line.strip()), 1) if data.strip() else 0


def _json_decimal(text: str) -> Decimal:
    """JSON floats as exact decimals (1e400 stays a number; validation bounds it)."""
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the JSON grammar only hands over numbers
        return Decimal("NaN")


def _json_int(text: str) -> int | Decimal:
    """JSON integers exactly: int64-sized as int, larger as Decimal.

    pandas cannot hold a Python int beyond 64 bits in a column (OverflowError), and int() refuses
    more than 4300 digits; a Decimal keeps every digit and validation renders ids from it.
    """
    if len(text) <= 18:
        return int(text)
    value = int(text) if len(text) <= _MAX_INT_DIGITS else None
    if value is not None and -(2**63) <= value < 2**64:
        return value
    return Decimal(text)


def _records_frame(records: list[dict[str, object]]) -> pd.DataFrame:
    """Parsed JSON objects → frame; ``order_id`` kept as text (ints) or Decimal (floats), never float64."""
    if not records:
        return pd.DataFrame()
    ids = np.empty(len(records), dtype=object)
    for i, record in enumerate(records):
        value = record.pop("order_id", None) if "order_id" in record else _MISSING
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        ids[i] = value
    has_ids = any(v is not _MISSING for v in ids)
    frame = pd.DataFrame.from_records(records) if any(records) else pd.DataFrame(index=range(len(records)))
    if has_ids:
        ids[ids == _MISSING] = None
        frame["order_id"] = ids
    return frame


_MISSING = object()


def _table_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas with ``order_id`` as text whenever it is an integer (no float64 detour)."""
    if "order_id" in table.column_names:
        index = table.column_names.index("order_id")
        column = table.column(index)
        # Integers only: a decimal id (5.00) arrives as Decimal and validation judges it.
        if pa.types.is_integer(column.type):
            table = table.set_column(index, "order_id", column.cast(pa.string()))
            # pandas metadata would turn the text column back into Int64 on the way out.
            table = table.replace_schema_metadata(None)
    return table.to_pandas()


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
