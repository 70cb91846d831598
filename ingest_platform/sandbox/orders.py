"""Offline order-file generator with ground truth, for tests, demos and benchmarks.

``generate_orders`` builds deterministic, realistic-looking orders (international names,
emails, phones, addresses with postcodes, IPv4, birth dates, notes that sometimes carry an
email or phone). ``write_order_files`` writes them as landing-zone files and returns what a
correct pipeline must produce: the order ids that should land, the reject counts it should
report, and every raw personal value written (so a test can assert none reaches the warehouse).
``write_malformed_file`` writes the broken files a landing zone must survive.

All addresses use reserved example domains; phones and postcodes are random digits in real
formats. Generation is vectorised (a million orders take a few seconds).
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingest_platform.models import Order

OrderFileFormat = Literal["jsonl", "csv", "parquet"]
MalformedKind = Literal["corrupt_json", "empty", "wrong_schema", "truncated"]

ORDER_COLUMNS: tuple[str, ...] = tuple(Order.model_fields)
DEFAULT_START = datetime(2026, 11, 27, tzinfo=UTC)  # Black Friday 2026

# The 1-based line of the file written by write_malformed_file("corrupt_json") that is broken.
CORRUPT_JSON_LINE = 4
CORRUPT_JSON_ROWS = 10

# Each injected bad row breaks exactly one rule; the value is the reason validation must give.
BAD_ROW_KINDS: tuple[str, ...] = (
    "negative_amount",
    "invalid_currency",
    "missing_order_id",
    "invalid_created_at",
    "invalid_items",
    "invalid_email",
)
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "shop.example.org")


@dataclass(frozen=True)
class _Country:
    code: str
    weight: float
    currency: str
    amount_scale: float  # price level relative to USD
    utc_offset: str  # written on created_at in files ("Z" or "+01:00")
    offset_hours: int
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    streets: tuple[str, ...]


# fmt: off
_COUNTRIES: tuple[_Country, ...] = (
    _Country(
        "US", 0.34, "USD", 1.0, "Z", 0,
        ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "Aaliyah", "DeShawn", "Chloé", "Zoë"),
        ("Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "O'Brien", "Nguyen", "Lee", "Davis"),
        ("New York, NY", "San Francisco, CA", "Boston, MA", "Chicago, IL", "Seattle, WA"),
        ("Main Street", "Oak Avenue", "Maple Drive", "Elm Street", "Sunset Boulevard"),
    ),
    _Country(
        "GB", 0.16, "GBP", 0.8, "Z", 0,
        ("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Siobhán", "Rhys", "Niamh", "Arjun"),
        ("Jones", "Taylor", "Evans", "Wilson", "Thomas", "Roberts", "Patel", "McDonald", "Ó Briain",
         "Hughes"),
        ("London", "Manchester", "Birmingham", "Leeds", "Edinburgh"),
        ("High Street", "Station Road", "Church Lane", "Victoria Road", "Baker Street"),
    ),
    _Country(
        "DE", 0.14, "EUR", 0.92, "+01:00", 1,
        ("Lukas", "Mia", "Jürgen", "Sophie", "Maximilian", "Hannah", "Özlem", "Felix", "Lena", "Björn"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
         "Y\u0131lmaz", "Groß"),
        ("Berlin", "München", "Hamburg", "Köln", "Frankfurt am Main"),
        ("Hauptstraße", "Schulstraße", "Gartenweg", "Bahnhofstraße", "Lindenallee"),
    ),
    _Country(
        "FR", 0.12, "EUR", 0.92, "+01:00", 1,
        ("Léa", "Hugo", "Camille", "Louis", "Chloé", "Gabriel", "Inès", "Raphaël", "Manon", "François"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Lefèvre", "Benali", "Moreau",
         "Girard"),
        ("Paris", "Lyon", "Marseille", "Toulouse", "Bordeaux"),
        ("rue de Rivoli", "avenue Victor Hugo", "rue de la Paix", "boulevard Voltaire", "rue Lafayette"),
    ),
    _Country(
        "JP", 0.10, "JPY", 150.0, "+09:00", 9,
        ("Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Yuto", "Sakura", "Riku", "Mei"),
        ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi",
         "Kato"),
        ("Chiyoda-ku, Tokyo", "Kita-ku, Osaka", "Naka-ku, Yokohama", "Chuo-ku, Sapporo", "Sakyo-ku, Kyoto"),
        ("1-2-3 Marunouchi", "4-5-6 Umeda", "2-8-1 Nishi-Shinjuku", "3-1-1 Kita", "7-3-1 Hongo"),
    ),
    _Country(
        "IN", 0.08, "INR", 83.0, "Z", 0,
        ("Aarav", "Diya", "Vihaan", "Ananya", "Arjun", "Saanvi", "Ishaan", "Priya", "Rohan", "Kavya"),
        ("Sharma", "Verma", "Gupta", "Iyer", "Reddy", "Nair", "Singh", "Das", "Mehta", "Kapoor"),
        ("Mumbai", "Bengaluru", "New Delhi", "Chennai", "Kolkata"),
        ("MG Road", "Linking Road", "Park Street", "Anna Salai", "Brigade Road"),
    ),
    _Country(
        "BR", 0.06, "BRL", 5.0, "Z", 0,
        ("João", "Maria", "Pedro", "Ana", "Lucas", "Júlia", "Mateus", "Beatriz", "Gustavo", "Larissa"),
        ("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima",
         "Gonçalves"),
        ("São Paulo, SP", "Rio de Janeiro, RJ", "Belo Horizonte, MG", "Curitiba, PR", "Salvador, BA"),
        ("Avenida Paulista", "Rua Augusta", "Rua das Flores", "Avenida Atlântica", "Rua XV de Novembro"),
    ),
)
# fmt: on

_NOTE_PLAIN = (
    "Leave at the front door",
    "Gift wrap please",
    "Ring twice, flat 3B",
    "Deliver after 6pm",
    "Fragile: glassware",
)


@dataclass
class OrderFilesTruth:
    """What a correct pipeline must produce from the files written.

    ``order_ids``: ids of the valid rows (each must land exactly once). ``pii_values``: every
    raw email, phone (as written), name, address and IP in the files, including those inside
    notes and on bad rows. ``expected_reject_counts``: reason → rows validation must reject.
    """

    files: list[Path]
    order_ids: set[str]
    pii_values: set[str]
    bad_row_count: int
    rows_written: int = 0
    expected_reject_counts: dict[str, int] = field(default_factory=dict)


@functools.cache
def _padded(width: int) -> np.ndarray:
    """All zero-padded numbers of ``width`` (≤ 4) digits: indexing beats formatting per row."""
    return np.array([f"{i:0{width}d}" for i in range(10**width)], dtype=object)


_SMALL_NUMBERS = np.array([str(i) for i in range(1000)], dtype=object)


def _digits(rng: np.random.Generator, n: int, width: int) -> pd.Series:
    """n random zero-padded strings of ``width`` digits."""
    out: np.ndarray | None = None
    while width:
        step = min(width, 4)
        part = _padded(step)[rng.integers(0, 10**step, n)]
        out = part if out is None else out + part
        width -= step
    return pd.Series(out, dtype=object)


def _number_text(values: np.ndarray) -> pd.Series:
    """Decimal text of small non-negative integers (< 1000)."""
    return pd.Series(_SMALL_NUMBERS[values], dtype=object)


def _pick(rng: np.random.Generator, options: tuple[str, ...], n: int) -> pd.Series:
    return pd.Series(np.asarray(options, dtype=object)[rng.integers(0, len(options), n)], dtype=object)


def _ascii(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value.replace("ß", "ss").replace("\u0131", "i"))
    return "".join(c for c in folded if c.isascii() and c.isalnum()).lower()


def _ascii_of(values: pd.Series) -> pd.Series:
    # A dict lookup per row is C-speed; calling _ascii per row would dominate generation.
    return values.map({v: _ascii(v) for v in values.unique()}).astype(object)


def _phones(code: str, rng: np.random.Generator, n: int) -> pd.Series:
    """International numbers in each country's usual written form."""
    if code == "US":
        area = _pick(rng, ("212", "415", "617", "312", "206"), n)
        return "+1 (" + area + ") 555-" + _digits(rng, n, 4)
    if code == "GB":
        mobile = pd.Series(rng.random(n) < 0.5)
        return ("+44 7700 900" + _digits(rng, n, 3)).where(mobile, "+44 20 7946 " + _digits(rng, n, 4))
    if code == "DE":
        return "+49 30 " + _digits(rng, n, 7)
    if code == "FR":
        return (
            "+33 1 "
            + _digits(rng, n, 2)
            + " "
            + _digits(rng, n, 2)
            + " "
            + _digits(rng, n, 2)
            + " "
            + (_digits(rng, n, 2))
        )
    if code == "JP":
        return "+81 3-" + _digits(rng, n, 4) + "-" + _digits(rng, n, 4)
    if code == "IN":
        return "+91 98" + _digits(rng, n, 3) + " " + _digits(rng, n, 5)
    return "+55 11 9" + _digits(rng, n, 4) + "-" + _digits(rng, n, 4)


def _postcodes(code: str, rng: np.random.Generator, n: int) -> pd.Series:
    if code == "GB":
        outward = _pick(rng, ("SW1A", "EC1A", "M1", "B33", "LS1", "EH1", "CR2"), n)
        letters = tuple("ABDEFGHJLNPQRSTUWXYZ")
        return outward + " " + _digits(rng, n, 1) + _pick(rng, letters, n) + _pick(rng, letters, n)
    if code == "JP":
        return _digits(rng, n, 3) + "-" + _digits(rng, n, 4)
    if code == "IN":
        return _number_text(rng.integers(110, 856, n)) + _digits(rng, n, 3)
    if code == "BR":
        return _digits(rng, n, 5) + "-" + _digits(rng, n, 3)
    # US (leading zeros happen: "02139"), DE, FR: five digits.
    return _digits(rng, n, 5)


def _addresses(country: _Country, rng: np.random.Generator, n: int, postcode: pd.Series) -> pd.Series:
    number = _number_text(rng.integers(1, 250, n))
    street = _pick(rng, country.streets, n)
    city = _pick(rng, country.cities, n)
    if country.code == "DE":
        return street + " " + number + ", " + postcode + " " + city + ", Germany"
    if country.code == "FR":
        return number + " " + street + ", " + postcode + " " + city + ", France"
    if country.code == "JP":
        return street + ", " + city + " " + postcode + ", Japan"
    if country.code == "IN":
        return number + " " + street + ", " + city + " " + postcode + ", India"
    if country.code == "BR":
        return street + ", " + number + ", " + city + ", " + postcode + ", Brazil"
    if country.code == "GB":
        return number + " " + street + ", " + city + " " + postcode + ", United Kingdom"
    return number + " " + street + ", " + city + " " + postcode + ", USA"


def _emails(rng: np.random.Generator, first: pd.Series, last: pd.Series) -> pd.Series:
    fa = _ascii_of(first)
    la = _ascii_of(last)
    n = len(first)
    domain = _pick(rng, _EXAMPLE_DOMAINS, n)
    number = _number_text(rng.integers(1, 100, n))
    style = rng.integers(0, 3, n)
    dotted = fa + "." + la
    underscored = fa + "_" + la + number
    initial = fa.str[0] + la + number
    local = dotted.where(style == 0, underscored.where(style == 1, initial))
    return local + "@" + domain


@functools.cache
def _birth_dates() -> np.ndarray:
    days = pd.Timestamp("1950-01-01") + pd.to_timedelta(np.arange(20_500), unit="D")
    return np.asarray(days.strftime("%Y-%m-%d"), dtype=object)


def _ip_addresses(rng: np.random.Generator, n: int) -> pd.Series:
    first = np.array([23, 31, 45, 62, 81, 92, 103, 151, 176, 203])[rng.integers(0, 10, n)]
    rest = rng.integers(1, 255, size=(3, n))
    return (
        _number_text(first)
        + "."
        + _number_text(rest[0])
        + "."
        + _number_text(rest[1])
        + "."
        + (_number_text(rest[2]))
    )


def _customers_of(country: _Country, rng: np.random.Generator, n: int) -> pd.DataFrame:
    first = _pick(rng, country.first_names, n)
    last = _pick(rng, country.last_names, n)
    # Japanese orders are often written family name first.
    name = (last + " " + first) if country.code == "JP" else (first + " " + last)
    postcode = _postcodes(country.code, rng, n)
    return pd.DataFrame(
        {
            "customer_name": name,
            "customer_email": _emails(rng, first, last),
            "customer_phone": _phones(country.code, rng, n),
            "shipping_address": _addresses(country, rng, n, postcode),
            "postcode": postcode,
            "customer_ip": _ip_addresses(rng, n),
            "birth_date": pd.Series(_birth_dates()[rng.integers(0, 20_500, n)], dtype=object),
            "currency": country.currency,
            "_first_ascii": _ascii_of(first),
            "_alt_phone": _phones(country.code, rng, n),
            "_amount_scale": country.amount_scale,
            "_offset": country.utc_offset,
            "_offset_hours": country.offset_hours,
        }
    )


def _customers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    weights = np.array([c.weight for c in _COUNTRIES])
    country_idx = rng.choice(len(_COUNTRIES), size=n, p=weights / weights.sum())
    parts = []
    for i, country in enumerate(_COUNTRIES):
        rows = np.flatnonzero(country_idx == i)
        if not len(rows) and parts:
            continue
        part = _customers_of(country, rng, len(rows))
        part.index = rows
        parts.append(part)
    return pd.concat(parts).sort_index()


def _generate_with_extras(n: int, seed: int, start: datetime) -> pd.DataFrame:
    """Orders plus helper columns (``_…``) the file writers need; ``generate_orders`` drops them.

    Orders are placed by a pool of customers (one per order up to 2,000 orders, then repeat
    customers, a quarter as many as orders): realistic, and it keeps a million orders cheap.
    """
    rng = np.random.default_rng(seed)
    n_customers = n if n <= 2_000 else max(2_000, n // 4)
    customers = _customers(rng, n_customers)
    chosen = rng.permutation(n) if n_customers == n else rng.integers(0, n_customers, n)
    frame = customers.iloc[chosen].reset_index(drop=True)

    # Orders arrive over one day, in order; millisecond timestamps.
    offsets_ms = np.sort(rng.integers(0, 86_400_000, n))
    created = pd.Timestamp(start).tz_convert(UTC) + pd.to_timedelta(offsets_ms, unit="ms")
    frame.insert(0, "created_at", pd.Series(created, dtype="datetime64[ns, UTC]"))
    index = np.arange(n)
    order_id = f"ORD-{seed}-" + pd.Series(_padded(4)[(index // 10_000) % 10_000] + _padded(4)[index % 10_000])
    frame.insert(0, "order_id", order_id)

    amount = np.round(rng.lognormal(mean=3.6, sigma=0.8, size=n) * frame["_amount_scale"].to_numpy(), 2)
    frame["amount"] = np.where(frame["currency"].to_numpy() == "JPY", np.round(amount), amount)
    frame["items"] = (1 + rng.poisson(0.8, n)).astype(np.int64)

    # Notes: mostly empty; some carry the customer's phone or email, someone else's phone,
    # or another email of theirs — free-text PII the privacy layer must catch.
    kind = rng.choice(6, size=n, p=[0.62, 0.2, 0.05, 0.05, 0.04, 0.04])
    notes = np.full(n, None, dtype=object)
    note_email = np.full(n, None, dtype=object)
    note_phone = np.full(n, None, dtype=object)
    sel = kind == 1
    notes[sel] = _pick(rng, _NOTE_PLAIN, int(sel.sum())).to_numpy()
    sel = kind == 2
    notes[sel] = ("Call me on " + frame["customer_phone"][sel] + " if I'm out").to_numpy()
    sel = kind == 3
    alt = frame["_first_ascii"][sel] + ".work" + _number_text(rng.integers(1, 100, int(sel.sum()))).to_numpy()
    note_email[sel] = (alt + "@example.net").to_numpy()
    notes[sel] = "Send the invoice to " + note_email[sel]
    sel = kind == 4
    note_phone[sel] = frame["_alt_phone"][sel].to_numpy()
    notes[sel] = "Neighbour will collect, her number is " + note_phone[sel]
    sel = kind == 5
    notes[sel] = ("Questions? " + frame["customer_email"][sel]).to_numpy()
    frame["note"] = notes
    frame["_note_email"] = note_email
    frame["_note_phone"] = note_phone
    return frame


def generate_orders(n: int, *, seed: int = 11, start: datetime = DEFAULT_START) -> pd.DataFrame:
    """``n`` deterministic orders with the ``Order`` columns (created_at tz-aware UTC)."""
    return _generate_with_extras(n, seed, start)[list(ORDER_COLUMNS)]


def _pii_of(frame: pd.DataFrame) -> set[str]:
    values: set[str] = set()
    for column in ("customer_name", "customer_email", "customer_phone", "shipping_address", "customer_ip"):
        values.update(v for v in frame[column].dropna().tolist() if v)
    for column in ("_note_email", "_note_phone"):
        values.update(frame[column].dropna().tolist())
    return values


def _inject_bad_rows(
    chunk: pd.DataFrame, rng: np.random.Generator, count: int, first_kind: int
) -> list[tuple[int, str]]:
    """Break ``count`` rows of ``chunk`` in place, one rule each; returns (index label, reason)."""
    positions = sorted(rng.choice(len(chunk), size=min(count, len(chunk)), replace=False))
    broken = []
    for j, position in enumerate(positions):
        kind = BAD_ROW_KINDS[(first_kind + j) % len(BAD_ROW_KINDS)]
        label = chunk.index[position]
        if kind == "negative_amount":
            chunk.at[label, "amount"] = -abs(float(chunk.at[label, "amount"])) - 1.0
        elif kind == "invalid_currency":
            chunk.at[label, "currency"] = "DOLLARS"
        elif kind == "missing_order_id":
            chunk.at[label, "order_id"] = None
        elif kind == "invalid_created_at":
            # Typed parquet can't hold "not-a-date": it becomes null there (missing_created_at).
            chunk.at[label, "created_at"] = "not-a-date"
        elif kind == "invalid_items":
            chunk.at[label, "items"] = 0
        elif kind == "invalid_email":
            local = str(chunk.at[label, "customer_email"]).split("@")[0]
            chunk.at[label, "customer_email"] = f"{local}(at)example.com"
        broken.append((label, kind))
    return broken


def _created_text(frame: pd.DataFrame) -> pd.Series:
    """created_at as written in text files: ISO 8601 in the customer's local offset."""
    created = pd.to_datetime(frame["created_at"], utc=True, errors="coerce")
    local = created + pd.to_timedelta(frame["_offset_hours"], unit="h")
    text = local.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + frame["_offset"]
    # Rows broken on purpose keep their raw text.
    return text.where(created.notna(), frame["created_at"].astype(object))


def _write_frame(frame: pd.DataFrame, path: Path, fmt: OrderFileFormat) -> None:
    """Write atomically: a temp name the landing zone ignores, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        out = frame[list(ORDER_COLUMNS)].copy()
        out["created_at"] = pd.to_datetime(out["created_at"], utc=True, errors="coerce")
        table = pa.Table.from_pandas(out, preserve_index=False)
        pq.write_table(table, tmp)
    else:
        out = frame[list(ORDER_COLUMNS)].copy()
        out["created_at"] = _created_text(frame)
        if fmt == "jsonl":
            out.to_json(tmp, orient="records", lines=True, force_ascii=False)
        elif fmt == "csv":
            out.to_csv(tmp, index=False)
        else:
            raise ValueError(f"unknown format {fmt!r}")
    tmp.replace(path)


def write_order_files(
    directory: str | Path,
    *,
    n_files: int,
    rows_per_file: int,
    fmt: OrderFileFormat = "jsonl",
    seed: int = 11,
    bad_rows_per_file: int = 0,
    start: datetime = DEFAULT_START,
) -> OrderFilesTruth:
    """Write ``n_files`` order files of ``rows_per_file`` rows each, with ground truth.

    Order ids are unique across the files. ``bad_rows_per_file`` rows per file each break one
    validation rule (cycling through ``BAD_ROW_KINDS``). File names: ``orders_<seed>_<i>.<fmt>``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frame = _generate_with_extras(n_files * rows_per_file, seed, start)
    frame["created_at"] = frame["created_at"].astype(object)  # bad rows may hold text
    rng = np.random.default_rng([seed, 1])
    files: list[Path] = []
    order_ids: set[str] = set()
    pii: set[str] = set()
    expected: dict[str, int] = {}
    bad_total = 0
    for i in range(n_files):
        chunk = frame.iloc[i * rows_per_file : (i + 1) * rows_per_file].copy()
        good_ids = set(chunk["order_id"])
        for label, reason in _inject_bad_rows(chunk, rng, bad_rows_per_file, first_kind=i):
            good_ids.discard(frame.at[label, "order_id"])
            if fmt == "parquet" and reason == "invalid_created_at":
                reason = "missing_created_at"
            expected[reason] = expected.get(reason, 0) + 1
            bad_total += 1
        path = directory / f"orders_{seed}_{i:04d}.{fmt}"
        _write_frame(chunk, path, fmt)
        files.append(path)
        order_ids |= good_ids
        pii |= _pii_of(chunk)
    return OrderFilesTruth(
        files=files,
        order_ids=order_ids,
        pii_values=pii,
        bad_row_count=bad_total,
        rows_written=len(frame),
        expected_reject_counts=expected,
    )


def write_malformed_file(
    directory: str | Path, kind: MalformedKind, *, seed: int = 11, name: str | None = None
) -> Path:
    """Write one broken file a landing zone must survive.

    - ``corrupt_json``: ``CORRUPT_JSON_ROWS`` JSONL orders, line ``CORRUPT_JSON_LINE`` cut in
      half (one reject; the other rows are kept).
    - ``empty``: a zero-byte ``.jsonl``.
    - ``wrong_schema``: JSONL from another export (``id``/``total``/``ts``; no ``order_id``).
    - ``truncated``: a Parquet file cut in half (unreadable).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    orders = _generate_with_extras(CORRUPT_JSON_ROWS, seed + 1000, DEFAULT_START)
    text = orders[list(ORDER_COLUMNS)].copy()
    text["created_at"] = _created_text(orders)
    if kind == "corrupt_json":
        path = directory / (name or "orders_corrupt.jsonl")
        lines = text.to_json(orient="records", lines=True, force_ascii=False).splitlines()
        broken = lines[CORRUPT_JSON_LINE - 1]
        lines[CORRUPT_JSON_LINE - 1] = broken[: len(broken) // 2]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "empty":
        path = directory / (name or "orders_empty.jsonl")
        path.write_bytes(b"")
    elif kind == "wrong_schema":
        path = directory / (name or "orders_wrong_schema.jsonl")
        other = pd.DataFrame({"id": text["order_id"], "total": orders["amount"], "ts": text["created_at"]})
        other.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "truncated":
        path = directory / (name or "orders_truncated.parquet")
        sink = pa.BufferOutputStream()
        frame = orders[list(ORDER_COLUMNS)]
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
        data = sink.getvalue().to_pybytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return path
