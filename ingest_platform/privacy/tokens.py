"""Keyed pseudonymisation: HMAC-SHA256 tokens over normalised values.

A token is ``"{key_id}:{hex}"`` where ``hex`` is the first 32 hex digits (128 bits) of
``HMAC-SHA256(key, normalised value)``. The same value always gives the same token under one
key, so tables pseudonymised separately (posts, orders) still join; without the key nobody
can brute-force the small value spaces (phones, IPs). The key id travels with every token so
that after a key rotation each token says which key made it (``Pseudonymizer.with_keys``).

Normalisation makes equal values equal before hashing: e-mails trimmed and lower-cased,
phones in E.164, handles without a leading ``@`` and lower-cased, other strings trimmed.

``tokenize_series`` is the hot path (whole columns). With numba installed (a base dependency)
a column is hashed in one native call by ``fast_hmac.BatchHmacSha256``: SHA-256 over many
values side by side, ~2.5x the Python loop below. Without numba (or with
``USE_BATCH_KERNEL = False``) a Python loop avoids the ``hmac`` module's wrapper instead: the
HMAC inner and outer states (key XOR ipad / opad, one SHA-256 block each) are hashed once, and
every value only copies those two midstates - about 2x a plain ``hmac.new`` loop. Both are
exactly HMAC-SHA256 (RFC 2104) and give identical tokens. Normalisation runs as list
comprehensions over str methods, and when a sample shows the column repeats (one customer,
many orders) each distinct value is hashed once; on mostly-unique columns that dict would
cost more than it saves, so it is skipped.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd
import phonenumbers

from ingest_platform.privacy import fast_hmac

TokenKind = Literal["email", "phone", "handle", "name", "ip", "card", "iban", "generic"]
TOKEN_KINDS: tuple[str, ...] = ("email", "phone", "handle", "name", "ip", "card", "iban", "generic")

#: Hex digits of the HMAC kept in a column token: 128 bits, collision-free at any realistic scale.
TOKEN_HEX_CHARS = 32
_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104's B)
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_PHONE_JUNK_RE = re.compile(r"[\s\-.()/\u00a0]")
_NON_DIGIT_RE = re.compile(r"\D")
_MISSING = object()

#: Hash columns with the compiled batch kernel (``fast_hmac``) when numba can be imported.
#: False forces the pure-Python loop: same tokens, for comparisons and as an escape hatch.
USE_BATCH_KERNEL = True
#: Below this many values the kernel's fixed cost per call (packing, buffers, the HMAC key
#: states) exceeds what it saves, and tiny columns need not load numba at all.
_BATCH_KERNEL_MIN_VALUES = 64


class TokenError(ValueError):
    """A token could not be parsed or its key id is unknown."""


def token_key_id(token: str) -> str:
    """The key id a token was made with (the part before the first ``:``)."""
    key_id, sep, digest = token.partition(":")
    if not sep or not key_id or not digest:
        raise TokenError("not a pseudonymisation token (expected 'key_id:hex')")
    return key_id


# --- normalisation ------------------------------------------------------------------------


def valid_e164(
    text: str, regions: tuple[str, ...] | list[str], *, possible_ok: bool = False, min_digits: int = 7
) -> str | None:
    """E.164 of a phone number in a clean spelling if libphonenumber deems it valid, else None.

    ``phonenumbers.parse`` costs ~20 us, mostly normalisation machinery that clean spellings
    ("+44 20 7946 0958", "(415) 555-0123", "030 12345678") do not need. Here separators are
    dropped, the country code is read off the prefix table (or the region's trunk prefix is
    stripped) and only libphonenumber's own validity check runs (~3-10 us). For every number
    it accepts, the result equals ``format_number(parse(text, region), E164)`` (tested).

    ``possible_ok`` also accepts numbers of a possible length that are not in an assigned
    range (fictional "+44 7700 900xxx" numbers, new ranges the metadata does not know yet)
    when the spelling itself says "phone": a country code, or a trunk "0" of one of
    ``regions``. Scrubbing errs towards removing such numbers.

    ``min_digits`` admits shorter national numbers (4-6 digits: small islands, some UANs) when
    the caller has other evidence that this is a phone number (a "tel."/"call" cue).
    """
    compact = _PHONE_JUNK_RE.sub("", text.replace("(0)", ""))
    plus = compact.startswith("+")
    if compact.startswith("00"):
        compact, plus = compact[2:], True
    digits = compact[1:] if plus else compact
    if not digits.isdigit() or not min_digits <= len(digits) <= 17:
        return None
    if plus:
        for size in (1, 2, 3):
            country_code = int(digits[:size])
            regions_for_code = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
            if regions_for_code:
                national = digits[size:]
                e164 = _checked_e164(country_code, national, regions_for_code[0], international=True)
                if e164 is None and possible_ok:
                    e164 = _possible_e164(country_code, national[1:] if national[:1] == "0" else national)
                return e164
        return None
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        national = digits
        trunk = metadata.national_prefix
        if trunk and national.startswith(trunk):
            national = national[len(trunk) :]
        e164 = _checked_e164(metadata.country_code, national, region, international=False)
        if e164 is not None:
            return e164
    if possible_ok and digits[0] == "0":
        for region in regions:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if metadata is not None and metadata.national_prefix == "0":
                e164 = _possible_e164(metadata.country_code, digits[1:])
                if e164 is not None:
                    return e164
    return None


def _possible_e164(country_code: int, national: str) -> str | None:
    if not national or national[0] == "0":
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return f"+{country_code}{national}" if phonenumbers.is_possible_number(number) else None


def _checked_e164(country_code: int, national: str, region: str | None, *, international: bool) -> str | None:
    if not national:
        return None
    if national[0] == "0":
        # A significant leading zero (Italian landlines: +39 06 ...) or, after a country code,
        # a trunk "0" written anyway (+44 020 ...): try both, as phonenumbers.parse does. In a
        # national spelling the region's own trunk prefix was already stripped by the caller.
        zeros = len(national) - len(national.lstrip("0"))
        number = phonenumbers.PhoneNumber(
            country_code=country_code,
            national_number=int(national),
            italian_leading_zero=True,
            number_of_leading_zeros=zeros if zeros > 1 else None,
        )
        if _valid(number, region):
            return f"+{country_code}{national}"
        if international and zeros == 1:
            return _checked_e164(country_code, national[1:], region, international=True)
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return f"+{country_code}{national}" if _valid(number, region) else None


def _valid(number: phonenumbers.PhoneNumber, region: str | None) -> bool:
    # The region we assumed first: is_valid_number alone walks all 25 NANP regions for +1.
    if region is not None and phonenumbers.is_valid_number_for_region(number, region):
        return True
    return phonenumbers.is_valid_number(number)


def normalise_phone(value: str, default_region: str = "US") -> str:
    """E.164 when phonenumbers can parse it, else the bare digits (keeping a leading ``+``).

    Possible-but-unassigned numbers (fictional 555 numbers in test data) still get E.164, so
    two spellings of one number always agree; the fallback keeps garbage deterministic.
    """
    cleaned = value.strip()
    if not cleaned:
        return ""
    fast = valid_e164(cleaned, (default_region,))
    if fast is not None:
        return fast
    compact = _PHONE_JUNK_RE.sub("", cleaned)
    if compact.startswith("00"):
        # "00" is the international prefix nearly everywhere but in North America ("011").
        compact = "+" + compact[2:]
    try:
        number = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = _NON_DIGIT_RE.sub("", compact)
    return ("+" + digits) if compact.startswith("+") and digits else digits


def normalise_ip(value: str) -> str:
    text = value.strip()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text.lower()


def _normalise_one(value: str, kind: str, default_region: str) -> str:
    if kind == "email":
        return value.strip().lower()
    if kind == "handle":
        return value.strip().lstrip("@").strip().lower()
    if kind == "phone":
        return normalise_phone(value, default_region)
    if kind == "name":
        return " ".join(value.split()).casefold()
    if kind == "ip":
        return normalise_ip(value)
    if kind == "card":
        return _NON_DIGIT_RE.sub("", value)
    if kind == "iban":
        return "".join(value.split()).upper()
    if kind == "generic":
        return value.strip()
    raise ValueError(f"unknown token kind {kind!r}; expected one of {TOKEN_KINDS}")


def _bulk_normaliser(kind: str, default_region: str) -> Callable[[list[str]], list[str]]:
    """Normalise a list of strings for hashing.

    List comprehensions over str methods beat pandas' ``.str`` accessors (which loop in
    Python too and build intermediate Series). Values stay str: the batch kernel packs a column
    with one ``str.join``, and the Python loop encodes each value as it hashes it.
    """
    if kind == "email":
        return lambda values: [v.strip().lower() for v in values]
    if kind == "handle":
        return lambda values: [v.strip().lstrip("@").strip().lower() for v in values]
    if kind == "generic":
        return lambda values: [v.strip() for v in values]
    if kind in TOKEN_KINDS:
        # Expensive normalisers (phonenumbers, ipaddress) run once per distinct raw value.
        def normalise(values: list[str]) -> list[str]:
            seen: dict[str, str] = {}
            out = []
            for v in values:
                n = seen.get(v)
                if n is None:
                    n = seen[v] = _normalise_one(v, kind, default_region)
                out.append(n)
            return out

        return normalise
    raise ValueError(f"unknown token kind {kind!r}; expected one of {TOKEN_KINDS}")


# --- the HMAC ------------------------------------------------------------------------------


class _KeyState:
    """Precomputed HMAC-SHA256 inner/outer midstates for one key (RFC 2104)."""

    __slots__ = ("batch", "inner", "key_id", "outer", "prefix")

    def __init__(self, key: bytes, key_id: str) -> None:
        self.batch = fast_hmac.BatchHmacSha256(key)  # no numba until it first hashes a column
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_BLOCK, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        self.key_id = key_id
        self.prefix = key_id + ":"

    def hexdigest(self, message: str) -> str:
        inner = self.inner.copy()
        inner.update(message.encode("utf-8"))
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def batch_tokens(self, normalised: list[str]) -> list[str | None]:
        """Tokens for normalised values ('' -> None) through the compiled kernel.

        Deduplicating costs ~75 ns a value (``dict.fromkeys`` plus a lookup back) against
        ~300 ns for packing, hashing and making a token string, so it pays from ~25% repeats.
        """
        if not _worth_deduplicating(normalised, distinct_share=0.75):
            return self.batch.tokens(normalised, self.prefix, TOKEN_HEX_CHARS)
        distinct = list(dict.fromkeys(normalised))
        tokens = dict(zip(distinct, self.batch.tokens(distinct, self.prefix, TOKEN_HEX_CHARS), strict=True))
        return list(map(tokens.__getitem__, normalised))

    def tokens(self, normalised: list[str]) -> list[str | None]:
        """Tokens for normalised values ('' -> None), hashed in a Python loop.

        Real columns repeat (one customer, many orders): then a dict makes every distinct
        value cost one HMAC. On mostly-unique columns that dict costs more than it saves, so
        a small sample decides (``_worth_deduplicating``).
        """
        if _worth_deduplicating(normalised):
            return self._tokens_deduplicated(normalised)
        inner_copy = self.inner.copy
        outer_copy = self.outer.copy
        prefix = self.prefix
        out: list[str | None] = []
        append = out.append
        for value in normalised:
            if not value:
                append(None)
                continue
            inner = inner_copy()
            inner.update(value.encode())
            outer = outer_copy()
            outer.update(inner.digest())
            append(prefix + outer.hexdigest()[:TOKEN_HEX_CHARS])
        return out

    def _tokens_deduplicated(self, normalised: list[str]) -> list[str | None]:
        cache: dict[str, str | None] = {"": None}
        get = cache.get
        inner_copy = self.inner.copy
        outer_copy = self.outer.copy
        prefix = self.prefix
        out: list[str | None] = []
        append = out.append
        for value in normalised:
            token = get(value, _MISSING)
            if token is _MISSING:
                inner = inner_copy()
                inner.update(value.encode())
                outer = outer_copy()
                outer.update(inner.digest())
                token = cache[value] = prefix + outer.hexdigest()[:TOKEN_HEX_CHARS]
            append(token)
        return out


def _worth_deduplicating(
    values: list[bytes] | list[str], sample_size: int = 4096, *, distinct_share: float = 0.85
) -> bool:
    """Estimate from a strided sample whether the values repeat enough to pay for a dict.

    In the Python loop a dict lookup+insert costs roughly a sixth of one HMAC, so
    deduplicating pays once about 15% of the values are repeats (``distinct_share`` 0.85).
    Birthday estimate: a sample of ``s`` drawn from ``D`` distinct values holds about
    ``s*(s-1)/(2*D)`` colliding pairs.
    """
    n = len(values)
    if n <= sample_size:
        return len(set(values)) < distinct_share * n
    # Random positions, not a stride: a stride can walk in step with a periodic column and
    # see no repeats at all. Seeded, so the same column always takes the same path.
    sample = [values[i] for i in random.Random(n).sample(range(n), sample_size)]
    collisions = len(sample) - len(set(sample))
    if collisions == 0:
        return False
    distinct_estimate = len(sample) * (len(sample) - 1) / (2 * collisions)
    return distinct_estimate < distinct_share * n


class Pseudonymizer:
    """Deterministic keyed tokens for personal values.

    ``Pseudonymizer(key, key_id)`` signs with one key; ``Pseudonymizer.with_keys`` holds
    older keys too so ``matches`` can verify tokens made before a rotation.
    """

    def __init__(self, key: bytes, key_id: str, *, default_region: str = "US") -> None:
        self._states: dict[str, _KeyState] = {}
        self._add_key(key_id, key)
        self._active = self._states[key_id]
        self.default_region = default_region
        self._short_cache: dict[tuple[str, str], str] = {}

    @classmethod
    def with_keys(
        cls, keys: Mapping[str, bytes], active: str, *, default_region: str = "US"
    ) -> Pseudonymizer:
        if active not in keys:
            raise ValueError(f"active key id {active!r} is not among the keys given")
        pseudonymizer = cls(keys[active], active, default_region=default_region)
        for key_id, key in keys.items():
            if key_id != active:
                pseudonymizer._add_key(key_id, key)
        return pseudonymizer

    def _add_key(self, key_id: str, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or not key:
            raise ValueError("an HMAC key must be non-empty bytes")
        if not _KEY_ID_RE.match(key_id):
            raise ValueError("key id must be 1-32 characters of [A-Za-z0-9_.-] (it is stored in tokens)")
        self._states[key_id] = _KeyState(bytes(key), key_id)

    def __repr__(self) -> str:  # never show key material
        return f"Pseudonymizer(key_id={self.key_id!r}, keys={sorted(self._states)!r})"

    @property
    def key_id(self) -> str:
        return self._active.key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._states)

    # --- single values -------------------------------------------------------------------

    def normalise(self, value: object, kind: TokenKind = "generic") -> str | None:
        """The string that gets hashed, or None for a missing/empty value."""
        if value is None or (isinstance(value, float) and value != value):
            return None
        normalised = _normalise_one(str(value), kind, self.default_region)
        return normalised or None

    def token(self, value: object, kind: TokenKind = "generic") -> str | None:
        normalised = self.normalise(value, kind)
        if normalised is None:
            return None
        return self._active.prefix + self._active.hexdigest(normalised)[:TOKEN_HEX_CHARS]

    def matches(self, value: object, kind: TokenKind, token: str) -> bool:
        """Whether ``token`` was made from ``value`` by any key this pseudonymizer holds."""
        state = self._states.get(token_key_id(token))
        if state is None:
            raise TokenError(f"unknown key id {token_key_id(token)!r}")
        normalised = self.normalise(value, kind)
        if normalised is None:
            return False
        digest = token.partition(":")[2]
        return hmac.compare_digest(state.hexdigest(normalised)[: len(digest)], digest)

    def short_token(self, normalised: str, kind: str, length: int = 8) -> str:
        """Short hex tag for an already-normalised value (free-text replacements).

        It is the prefix of the column token's hex, so ``[EMAIL:ab12cd34]`` in a scrubbed
        note points at the ``customer_email_token`` that starts ``key_id:ab12cd34``.
        """
        cache_key = (kind, normalised)
        tag = self._short_cache.get(cache_key)
        if tag is None:
            if len(self._short_cache) > 100_000:  # bounded: texts carry unbounded distinct values
                self._short_cache.clear()
            tag = self._short_cache[cache_key] = self._active.hexdigest(normalised)
        return tag[:length]

    # --- columns -----------------------------------------------------------------------------

    def tokenize_values(self, values: Iterable[object], kind: TokenKind = "generic") -> list[str | None]:
        """Tokens for any iterable of values (None/NaN/empty -> None)."""
        return self.tokenize_series(pd.Series(list(values), dtype=object), kind).tolist()

    def tokenize_series(self, series: pd.Series, kind: TokenKind = "generic") -> pd.Series:
        """Vectorised ``token`` over a column; same index and name, object dtype, None for missing."""
        raw = series.to_numpy(dtype=object)  # no copy for object columns
        if pd.api.types.infer_dtype(raw, skipna=False) == "string":
            # Fast path: every cell is a str (no None/NaN), nothing to mask.
            tokens = self._hash_column(raw.tolist(), kind)
            # Via fromiter: pd.Series(list) spends ~5x longer converting the list itself.
            out = np.fromiter(tokens, dtype=object, count=len(tokens))
            return pd.Series(out, index=series.index, name=series.name, dtype=object, copy=False)
        present = pd.notna(raw)
        values = [v if isinstance(v, str) else _stringify(v) for v in raw[present].tolist()]
        out = np.full(len(raw), None, dtype=object)
        if values:
            out[present] = np.fromiter(self._hash_column(values, kind), dtype=object, count=len(values))
        return pd.Series(out, index=series.index, name=series.name, dtype=object, copy=False)

    def _hash_column(self, values: list[str], kind: str) -> list[str | None]:
        """Tokens for raw strings of one kind: normalised, then the batch kernel or the Python loop."""
        normalised = _bulk_normaliser(kind, self.default_region)(values)
        if USE_BATCH_KERNEL and len(values) >= _BATCH_KERNEL_MIN_VALUES and fast_hmac.available():
            return self._active.batch_tokens(normalised)
        return self._active.tokens(normalised)

    def tokenize_lists(self, series: pd.Series, kind: TokenKind = "handle") -> pd.Series:
        """A column of lists (e.g. mentions) -> a column of lists of tokens, hashed in one batch."""
        lengths: list[int] = []
        flat: list[object] = []
        for cell in series.tolist():
            items = _as_list(cell)
            lengths.append(-1 if items is None else len(items))
            if items:
                flat.extend(items)
        tokens = self.tokenize_series(pd.Series(flat, dtype=object), kind).tolist()
        out: list[list[str] | None] = []
        position = 0
        for length in lengths:
            if length < 0:
                out.append(None)
                continue
            chunk = tokens[position : position + length]
            position += length
            out.append([t for t in chunk if t is not None])
        return pd.Series(out, index=series.index, name=series.name, dtype=object)


def _stringify(value: object) -> str:
    # Integral floats come from pandas upcasting int ids with NaNs: "123.0" would not join "123".
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _as_list(cell: object) -> list[object] | None:
    if cell is None:
        return None
    if isinstance(cell, float) and cell != cell:
        return None
    if isinstance(cell, str):
        # Tolerate a single value or a comma-separated string where a list was expected.
        return [part for part in (p.strip() for p in cell.split(",")) if part]
    if isinstance(cell, list | tuple | np.ndarray | pd.Series):
        return list(cell)
    return [cell]
