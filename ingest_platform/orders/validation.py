"""Vectorised validation of raw order records into typed ``Order`` rows and dead letters.

Every rule is a boolean mask over the whole batch (numpy, or Arrow compute kernels for string
rules), so a million rows validate in seconds; there is no per-row Python on the valid path.
Only rejected rows are converted one by one, into ``DeadLetter`` objects.

Rules (in this order; a rejected row carries the first rule it breaks):

==================== ======================================================================
reason               rule
==================== ======================================================================
missing_order_id     ``order_id`` absent or blank
invalid_order_id     ``order_id`` a number that is not integral (``5.5``), a float beyond 2^53
                     (its digits are already lost), a boolean or an object, or longer than
                     ``MAX_ORDER_ID_CHARS``. Ids are text end to end: ``5``, ``5.0`` and
                     ``"5"`` are the same order ``"5"``; ``9007199254740993`` keeps every digit.
missing_created_at   ``created_at`` absent or blank
invalid_created_at   ``created_at`` not ISO 8601 (naive values are taken as UTC) nor a unix
                     epoch number (seconds, or milliseconds above 1e11). Ambiguous formats
                     such as ``27/11/2026`` are rejected rather than guessed.
invalid_updated_at   ``updated_at`` present but not a timestamp (same formats as created_at)
missing_amount       ``amount`` absent or blank
invalid_amount       ``amount`` not a finite number, or with more than 2 decimal places
                     (``12.345``, ``1e-320``): money is exact ``DECIMAL(18,2)``, never rounded
negative_amount      ``amount`` < 0
amount_out_of_range  ``amount`` > ``MAX_AMOUNT`` (1e12; ``1e308`` is not an order)
invalid_currency     ``currency`` present but not three upper-case letters (absent → "USD",
                     the ``Order`` default; "usd" is rejected, not silently fixed)
invalid_items        ``items`` present but not a whole number in 1..``MAX_ITEMS`` (absent → 1;
                     ``1e20`` is rejected, never wrapped to -9223372036854775808)
invalid_email        ``customer_email`` present and not shaped like ``local@domain.tld``
==================== ======================================================================

Versions: each valid row gets ``version_at`` = ``updated_at`` when present, else
``created_at``. Several valid rows with the same ``order_id`` in one batch are successive
versions of one order (an update, not an error). The one with the greatest ``version_at`` is
kept (on a tie, the one read last), the others are dropped and counted in ``superseded`` —
they are not dead-lettered. Only valid rows compete, so an invalid later version never hides a
valid one. Across batches the warehouse applies the same order: the MERGE on ``order_id``
replaces a stored row only with a version ``>=`` its own (a tie: the later load wins, like the
later row inside a batch), so an older version arriving late never overwrites a newer one.

Money: ``amount`` is an Arrow ``decimal128(18, 2)`` column (DuckDB ``DECIMAL(18,2)``,
Snowflake ``NUMBER(18,2)``); values are checked to have at most two decimals, so the
conversion never rounds.

Dead letters of rows read from a file carry ``letter_id`` = ``source:fingerprint:line``
(when the frame has ``_source_fingerprint`` and ``_source_line``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

from ingest_platform.models import DeadLetter, Order

ORDER_COLUMNS: tuple[str, ...] = tuple(Order.model_fields)
VERSION_COLUMNS: tuple[str, ...] = ("updated_at", "version_at")
OUTPUT_COLUMNS: tuple[str, ...] = (*ORDER_COLUMNS, *VERSION_COLUMNS, "_source_file")

REJECT_REASONS: tuple[str, ...] = (
    "missing_order_id",
    "invalid_order_id",
    "missing_created_at",
    "invalid_created_at",
    "invalid_updated_at",
    "missing_amount",
    "invalid_amount",
    "negative_amount",
    "amount_out_of_range",
    "invalid_currency",
    "invalid_items",
    "invalid_email",
)

MAX_AMOUNT = 1_000_000_000_000  # 1e12 per order: far above any real order, far inside NUMBER(18,2)
MAX_ITEMS = 1_000_000
MAX_ORDER_ID_CHARS = 256
AMOUNT_TYPE = pa.decimal128(18, 2)
# Exact float64 integers end at 2^53: a float id beyond it has already lost digits.
_FLOAT_EXACT_LIMIT = 2**53

# Free-text columns of ``Order`` carried through as-is (str or None).
_TEXT_COLUMNS: tuple[str, ...] = (
    "customer_name",
    "customer_email",
    "customer_phone",
    "shipping_address",
    "postcode",
    "customer_ip",
    "birth_date",
    "note",
)

_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_CURRENCY_PATTERN = r"[A-Z]{3}"
# An ISO timestamp that carries its own offset: "…10:00Z", "…10:00:00.123+01:00", "…-0500", "…+09".
_OFFSET_TAIL_PATTERN = r".*\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)"
# Epoch numbers above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 1e11
_UTC_NS = "datetime64[ns, UTC]"
# infer_dtype kinds that cannot contain booleans.
_NUMBER_LIKE_KINDS = frozenset({"string", "empty", "integer", "floating", "mixed-integer-float", "decimal"})


@dataclass
class ValidationResult:
    """``valid``: typed rows (``OUTPUT_COLUMNS``), one per order_id. ``rejects``: one dead letter
    per rejected row. ``counts``: rejects per reason (sums to ``len(rejects)``). ``superseded``:
    valid duplicate rows replaced by a later version of the same order."""

    valid: pd.DataFrame
    rejects: list[DeadLetter] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    superseded: int = 0
    # _source_file → valid rows of that file dropped as superseded inside the batch
    superseded_by_file: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len(self.rejects)


def validate_orders(frame: pd.DataFrame, *, source: str, run_id: str | None = None) -> ValidationResult:
    """Split raw order records into typed valid rows and dead letters (see module docstring).

    String rules run as Arrow compute kernels (RE2 regexes, C++ trims): pandas' ``.str`` methods
    on object columns call Python per cell and would dominate at a million rows.
    """
    n = len(frame)

    def column(name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name]
        return pd.Series(np.full(n, None, dtype=object), index=frame.index)

    order_id, bad_id = _order_ids(column("order_id"))
    order_id = _trimmed(order_id)
    created_raw = column("created_at")
    created_at = parse_utc(created_raw)
    updated_raw = column("updated_at")
    updated_missing = _is_blank(updated_raw)
    updated_at = parse_utc(updated_raw) if not updated_missing.all() else pd.Series(
        pd.NaT, index=frame.index, dtype=_UTC_NS
    )
    amount_raw = column("amount")
    amount = _numeric(amount_raw).to_numpy()
    with np.errstate(invalid="ignore", over="ignore"):
        cents = np.round(amount * 100)
        # At most two decimals, judged on the float nearest the text: 19.99*100 is 1998.9999…8,
        # 12.345*100 is 1234.4999…; the tolerance is relative so 1e-320 is not "0.00".
        two_decimals = np.abs(amount * 100 - cents) <= 1e-9 * np.abs(amount * 100)
    currency = _trimmed(_arrow_text(column("currency")))
    items_raw = column("items")
    items = _numeric(items_raw).to_numpy()
    email = _trimmed(_arrow_text(column("customer_email")))

    currency_missing = _blank(currency)
    items_missing = _is_blank(items_raw)
    email_present = ~_blank(email)
    with np.errstate(invalid="ignore"):
        rules: list[tuple[str, np.ndarray]] = [
            ("missing_order_id", _blank(order_id) & ~bad_id),
            ("invalid_order_id", bad_id | (pc.fill_null(pc.utf8_length(order_id), 0).to_numpy(
                zero_copy_only=False) > MAX_ORDER_ID_CHARS)),
            ("missing_created_at", _is_blank(created_raw)),
            ("invalid_created_at", created_at.isna().to_numpy()),
            ("invalid_updated_at", ~updated_missing & updated_at.isna().to_numpy()),
            ("missing_amount", _is_blank(amount_raw)),
            # Too many decimals is invalid; a huge value (1e308) is out of range, not "invalid".
            ("invalid_amount", ~np.isfinite(amount) | (~two_decimals & (np.abs(amount) <= MAX_AMOUNT))),
            ("negative_amount", amount < 0),
            ("amount_out_of_range", amount > MAX_AMOUNT),
            ("invalid_currency", ~currency_missing & ~_matches(currency, _CURRENCY_PATTERN)),
            (
                "invalid_items",
                ~items_missing & (~np.isfinite(items) | (items % 1 != 0) | (items < 1) | (items > MAX_ITEMS)),
            ),
            ("invalid_email", email_present & ~_matches(email, _EMAIL_PATTERN)),
        ]
    # Assign from the last rule to the first so each row ends up with its first failing rule.
    reasons = np.full(n, None, dtype=object)
    for name, mask in reversed(rules):
        reasons[mask] = name
    bad = pd.notna(reasons)
    ok = ~bad
    ok_arrow = pa.array(ok)

    currency_out = pc.if_else(pa.array(currency_missing), pa.scalar("USD"), currency).filter(ok_arrow)
    updated_ok = updated_at.array[ok]
    # Series.where stays in datetime64 (np.where on tz-aware arrays would go through objects).
    version_ok = updated_at.where(~updated_missing, created_at).array[ok]
    email_out = _to_objects(email.filter(ok_arrow))
    email_out[~email_present[ok]] = None
    valid = pd.DataFrame(
        {
            "order_id": _to_objects(order_id.filter(ok_arrow)),
            "created_at": created_at.array[ok],
            **{name: _text_out(column(name), ok) for name in _TEXT_COLUMNS if name != "customer_email"},
            "customer_email": email_out,
            "currency": _to_objects(currency_out),
            "amount": _cents_to_decimal(cents[ok]),
            "items": np.where(items_missing[ok], 1, items[ok]).astype(np.int64),
            "updated_at": updated_ok,
            "version_at": version_ok,
            "_source_file": _text_out(column("_source_file"), ok),
        },
        columns=list(OUTPUT_COLUMNS),
    )
    valid, superseded, superseded_by_file = _keep_latest(valid)

    counts = {reason: int(c) for reason, c in pd.Series(reasons[bad]).value_counts().items()}
    counts = {reason: counts[reason] for reason in REJECT_REASONS if reason in counts}
    rejects = _dead_letters(
        frame[bad], reasons[bad], order_id.filter(pa.array(bad)).to_pylist(), source=source, run_id=run_id
    )
    return ValidationResult(
        valid=valid,
        rejects=rejects,
        counts=counts,
        superseded=superseded,
        superseded_by_file=superseded_by_file,
    )


def _jsonable(value: object) -> object:
    """A payload value that re-validates the same way after a JSON round trip (replay).

    JSON numbers parsed as ``Decimal`` would otherwise be written as text ("5.5"), and text is
    a valid id: a replay would accept what validation rejected.
    """
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and value.adjusted() < 4000:
            return int(value)
        return float(value)
    return value


def _cents_to_decimal(cents: np.ndarray) -> pd.Series:
    """Whole cents (float64 holding integers, all within NUMBER(18,2)) → decimal128(18,2) Arrow column.

    Built from the unscaled integers directly: no per-row Decimal objects, no float rounding.
    """
    n = len(cents)
    unscaled = np.zeros((n, 2), dtype=np.int64)  # little-endian int128: low word, high word
    if n:
        low = cents.astype(np.int64)
        unscaled[:, 0] = low
        unscaled[:, 1] = np.where(low < 0, -1, 0)
    array = pa.Array.from_buffers(AMOUNT_TYPE, n, [None, pa.py_buffer(unscaled.tobytes())])
    return pd.Series(pd.arrays.ArrowExtensionArray(array))


def _order_ids(values: pd.Series) -> tuple[pa.StringArray, np.ndarray]:
    """``order_id`` cells as text, never through float; and a mask of ids that are not ids.

    Integers (any width) are rendered exactly; integral floats below 2^53 and integral
    Decimals as integers ("5.0" → "5"); anything else numeric, booleans and nested values are
    marked invalid.
    """
    n = len(values)
    invalid = np.zeros(n, dtype=bool)
    if ptypes.is_bool_dtype(values):
        return pa.nulls(n, pa.string()), values.notna().to_numpy()
    if ptypes.is_integer_dtype(values):
        return pa.array(values.astype("string"), type=pa.string(), from_pandas=True), invalid
    if ptypes.is_float_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            exact = np.isfinite(numbers) & (numbers % 1 == 0) & (np.abs(numbers) < _FLOAT_EXACT_LIMIT)
        present = ~np.isnan(numbers)
        text = pd.Series(np.where(exact, numbers, np.nan)).astype("Int64").astype("string")
        return pa.array(text, type=pa.string(), from_pandas=True), present & ~exact
    kind = ptypes.infer_dtype(values, skipna=True)
    if kind in ("string", "empty"):
        try:
            return pa.array(values, type=pa.string(), from_pandas=True), invalid
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            pass
    out = np.empty(n, dtype=object)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        text, bad = _one_id(value)
        out[i] = text
        invalid[i] = bad
    return pa.array(out, type=pa.string(), from_pandas=True), invalid


def _one_id(value: object) -> tuple[str | None, bool]:
    if value is None or value is pd.NA or value is pd.NaT:
        return None, False
    if isinstance(value, str):
        return value, False
    if isinstance(value, bool | np.bool_):
        return None, True
    if isinstance(value, int | np.integer):
        return str(int(value)), False
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None, False
        if np.isfinite(value) and value % 1 == 0 and abs(value) < _FLOAT_EXACT_LIMIT:
            return str(int(value)), False
        return None, True
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and value.adjusted() < MAX_ORDER_ID_CHARS:
            return str(int(value)), False
        return None, True
    return None, True


def parse_utc(values: pd.Series) -> pd.Series:
    """Parse timestamps to ``datetime64[ns, UTC]`` (NaT where unparseable), vectorised.

    Accepts datetime columns (naive → UTC), ISO 8601 strings with or without an offset (naive
    → UTC), unix epoch numbers (s, or ms above 1e11) and datetime objects.
    """
    if ptypes.is_datetime64_any_dtype(values):
        out = values.dt.tz_localize(UTC) if values.dt.tz is None else values.dt.tz_convert(UTC)
        return out.astype(_UTC_NS)
    if ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values):
        return _from_epoch(values)

    # Filled piecewise as naive UTC datetime64 (cheap numpy writes), localised once at the end.
    result = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    kind = ptypes.infer_dtype(values, skipna=True)
    if kind == "empty":
        return _utc_series(result, values.index)
    if kind == "string":
        is_str = values.notna().to_numpy()
    else:
        # Mixed column (e.g. parquet timestamps concatenated with JSON strings): classify per
        # cell. This is the slow path; homogeneous columns never reach it.
        is_str = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        is_num = values.map(lambda v: isinstance(v, int | float | np.number) and not isinstance(v, bool))
        is_num = is_num.to_numpy(dtype=bool) & values.notna().to_numpy()
        others = values.notna().to_numpy() & ~is_str & ~is_num
        if others.any():
            result[others] = _naive_utc(pd.to_datetime(values[others], utc=True, errors="coerce"))
        if is_num.any():
            result[is_num] = _naive_utc(_from_epoch(values[is_num]))
    if is_str.any():
        strings = pc.utf8_trim_whitespace(pa.array(values[is_str], type=pa.string(), from_pandas=True))
        # pandas 2.x, format="ISO8601": a naive string after an offset string inherits that
        # offset ("10:00+01:00" then "10:00" both become 09:00 UTC). Parse the two groups
        # separately so naive values are always read as UTC.
        aware = _matches(strings, _OFFSET_TAIL_PATTERN)
        positions = np.flatnonzero(is_str)
        for group in (aware, ~aware):
            if group.any():
                result[positions[group]] = _parse_iso(strings.filter(pa.array(group)), aware=group is aware)
    return _utc_series(result, values.index)


def _parse_iso(strings: pa.StringArray, *, aware: bool) -> np.ndarray:
    """ISO 8601 strings → naive-UTC datetime64[ns]; all with an offset (aware) or none."""
    # Arrow's C++ ISO parser is ~10x faster than pandas on offset strings, but a cast is all
    # or nothing: on any unparseable value the group goes through pandas, which yields NaT for
    # the bad cells (and accepts a few more ISO forms, e.g. the basic "20261127T100000").
    try:
        if aware:
            parsed = pc.cast(strings, pa.timestamp("ns", tz="UTC"))
            return parsed.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)
        return pc.cast(strings, pa.timestamp("ns")).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        texts = pd.Series(_to_objects(strings), dtype=object)
        return _naive_utc(pd.to_datetime(texts, utc=True, format="ISO8601", errors="coerce"))


def _naive_utc(values: pd.Series) -> np.ndarray:
    return values.astype(_UTC_NS).dt.tz_convert(None).to_numpy()


def _utc_series(naive_utc: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(naive_utc, index=index).dt.tz_localize(UTC).astype(_UTC_NS)


def _from_epoch(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    scale = np.where(np.abs(numbers) >= _EPOCH_MS_THRESHOLD, 1e6, 1e9)
    nanos = numbers * scale
    # Beyond ±2262 the ns representation overflows: NaT (→ invalid_created_at), not garbage.
    nanos = nanos.where(np.isfinite(nanos) & (np.abs(nanos) < 9.2e18))
    out = pd.to_datetime(nanos.astype("Int64"), unit="ns", utc=True)
    return out.astype(_UTC_NS)


def _text(values: pd.Series) -> pd.Series:
    """Each cell as ``str`` (or None), whatever the column's dtype."""
    if values.dtype == object and ptypes.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.where(values.notna(), None)
    if ptypes.is_float_dtype(values):
        finite = values.dropna()
        # Integer columns with nulls arrive as float: 12345.0 must read back as "12345".
        if len(finite) and bool(np.all(np.mod(finite, 1) == 0)) and bool((finite.abs() < 2**53).all()):
            values = values.astype("Int64")
    as_string = values.astype("string")
    return as_string.astype(object).where(as_string.notna(), None)


def _arrow_text(values: pd.Series) -> pa.StringArray:
    """Cells as an Arrow string array (null where missing)."""
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # Not all strings (numeric ids, dates, mixed cells): render each as text first.
        return pa.array(_text(values), type=pa.string(), from_pandas=True)


def _trimmed(values: pa.StringArray) -> pa.StringArray:
    return pc.utf8_trim_whitespace(values)


def _blank(values: pa.StringArray) -> np.ndarray:
    """Null or empty string → True (pass trimmed values so whitespace-only counts as empty)."""
    return pc.fill_null(pc.equal(values, ""), True).to_numpy(zero_copy_only=False)


def _matches(values: pa.StringArray, pattern: str) -> np.ndarray:
    """RE2 full match per cell; null → False."""
    return pc.fill_null(pc.match_substring_regex(values, f"^(?:{pattern})$"), False).to_numpy(
        zero_copy_only=False
    )


def _to_objects(values: pa.Array) -> np.ndarray:
    """Arrow strings → numpy object array of str / None (the dtype warehouses load)."""
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)


def _text_out(values: pd.Series, ok: np.ndarray) -> np.ndarray:
    """Optional text column for the valid rows: str, or None for null and empty values."""
    if values.dtype == object:
        out = values.to_numpy()[ok]  # boolean indexing copies: safe to write into
        if ptypes.infer_dtype(out, skipna=True) in ("string", "empty"):
            out[pd.isna(out) | (out == "")] = None
            return out
    out = _text(values[ok]).to_numpy(dtype=object, copy=True)
    out[out == ""] = None
    return out


def _is_blank(values: pd.Series) -> np.ndarray:
    """True where a raw value is missing: null/NaN/NaT or a whitespace-only string."""
    missing = values.isna().to_numpy()
    if values.dtype != object or missing.all():
        return missing
    try:
        strings = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # Mixed cells (numbers and strings): per-cell check, only for odd inputs.
        blank = values.map(lambda v: isinstance(v, str) and not v.strip())
        return missing | blank.to_numpy(dtype=bool)
    return _blank(_trimmed(strings))


def _numeric(values: pd.Series) -> pd.Series:
    if ptypes.is_bool_dtype(values):
        # true/false is not an amount or a count.
        return pd.Series(np.nan, index=values.index)
    if ptypes.is_numeric_dtype(values):
        return values.astype(np.float64)
    kind = ptypes.infer_dtype(values, skipna=True)
    if kind == "string":
        # Text numbers (CSV): Arrow's cast is much faster than to_numeric; all or nothing, so
        # any bad cell sends the column through to_numeric (NaN for the bad cells).
        try:
            strings = pa.array(values, type=pa.string(), from_pandas=True)
            return pd.Series(
                pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False), index=values.index
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    elif kind not in _NUMBER_LIKE_KINDS:
        # A mixed column may hide JSON booleans, which to_numeric would read as 1.0 / 0.0.
        values = values.where(~values.map(lambda v: isinstance(v, bool | np.bool_)).astype(bool))
    try:
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    except (OverflowError, TypeError, ValueError):
        # A Python int beyond float range (a 400-digit "amount"): per cell, ±inf → rejected.
        return pd.Series([_to_float(v) for v in values], index=values.index, dtype=np.float64)


def _to_float(value: object) -> float:
    if value is None or isinstance(value, bool | np.bool_):
        return np.nan
    try:
        return float(value.strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except OverflowError:
        return np.inf if not str(value).lstrip().startswith("-") else -np.inf
    except (TypeError, ValueError):
        return np.nan


def _keep_latest(valid: pd.DataFrame) -> tuple[pd.DataFrame, int, dict[str, int]]:
    duplicated = valid["order_id"].duplicated(keep=False)
    if not duplicated.any():
        return valid, 0, {}
    # Stable sort: among equal versions the row read last (later file, later line) wins.
    latest = valid.sort_values("version_at", kind="stable").drop_duplicates("order_id", keep="last")
    dropped = valid.drop(index=latest.index)
    by_file = {str(k): int(v) for k, v in dropped["_source_file"].value_counts(dropna=True).items()}
    latest = latest.sort_index()
    return latest.reset_index(drop=True), len(valid) - len(latest), by_file


def _dead_letters(
    rows: pd.DataFrame,
    reasons: np.ndarray,
    order_ids: list[str | None],
    *,
    source: str,
    run_id: str | None,
) -> list[DeadLetter]:
    if rows.empty:
        return []
    # NOTE: payloads hold the raw record, personal data included (names, emails, phones,
    # addresses, IPs). The caller must scrub them (ingest_platform.privacy) before dead letters
    # reach the warehouse; the raw form stays in the raw store only, identified by payload_sha256.
    clean = rows.astype(object).where(rows.notna(), None)
    records = [{k: _jsonable(v) for k, v in record.items()} for record in clean.to_dict("records")]
    rejected_at = datetime.now(UTC)
    letters = []
    for record, reason, key in zip(records, reasons, order_ids, strict=True):
        fingerprint = record.pop("_source_fingerprint", None)
        line = record.get("_source_line")
        position: dict[str, object] = {}
        if fingerprint is not None and line is not None:
            position = {
                "letter_id": DeadLetter.file_letter_id(source, str(fingerprint), int(line)),
                "source_file": record.get("_source_file"),
                "source_fingerprint": str(fingerprint),
                "source_line": int(line),
            }
        letters.append(
            DeadLetter.from_payload(
                source=source,
                reason=str(reason),
                payload=record,
                record_key=key or None,
                run_id=run_id,
                rejected_at=rejected_at,
                **position,
            )
        )
    return letters
