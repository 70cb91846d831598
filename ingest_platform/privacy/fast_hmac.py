"""Batch HMAC-SHA256 tokens for many short values in one native call (numba).

``Pseudonymizer.tokenize_series`` hashes whole columns: a million e-mails is a million
HMAC-SHA256s. Through ``hashlib`` each value pays for Python objects and method calls far
more than for SHA-256 itself, so even the pre-keyed loop in ``tokens.py`` stays under a
million values per CPU-second. Here a whole column is one compiled call:

* The values come packed in one uint8 buffer plus offsets (one ``join``), not as objects.
* SHA-256 runs on uint32 words for ``_LANES`` messages side by side, lane-major (word ``j``
  of every message is contiguous), so LLVM compiles each round to SIMD instructions over
  all lanes - the multi-buffer layout OpenSSL uses. One message at a time was ~5x slower.
* The HMAC inner and outer chaining states (RFC 2104: key hashed down if longer than a
  block, zero-padded, XOR ipad 0x36 / opad 0x5c) are computed once per call, so a value of
  up to 55 bytes costs two compressions. Longer values take more blocks; they are grouped
  by block count first, so one long value does not make 63 short neighbours wait for it.
* Tokens leave as one ASCII buffer, ``prefix + hex + "\\n"`` per value, that one ``decode``
  and one ``split`` turn into strings. Making those strings is now a large part of the cost.

numba is imported on first use, never at import: the Dagster code location imports this
package and must start fast. ``available()`` says whether it can be loaded; callers keep a
pure-Python path for when it cannot. The kernel is compiled with ``cache=True`` (into
``__pycache__``, or numba's user-wide cache where that is read-only): only the first process
after a change to this file pays the compile (~6 s); later ones load it in well under 1 s.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

#: Messages hashed side by side. 16 fill one AVX-512 register of uint32; 64 give every round
#: four independent vectors, which hides latency (about half the time per block of 16).
_LANES = 64
_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104's B)
_MAX_HEX_CHARS = 64  # a whole SHA-256 digest in hex
_CHUNK_VALUES = 1 << 20  # values per kernel call (bounds the transient buffers)

# fmt: off
_K = np.array([
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
], dtype=np.uint32)
_IV = np.array([
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
], dtype=np.uint32)
# fmt: on

# --- the kernel: plain Python functions until _kernel() hands them to numba ------------------
#
# numba widens uint32 arithmetic to 64 bits; every expression is cast back with np.uint32 so
# that LLVM keeps 32-bit lanes (vpaddd, vprold) rather than 64-bit ones at half the width.
# Arrays are filled with loops, not slice assignment: ``v[:] = s`` alone costs ~3 s of compile.
# No type hints: numba infers the types from the one signature given in _kernel().

# name -> (the Python function, inline it into callers at numba IR level)
_HELPERS: dict[str, tuple[Callable[..., Any], bool]] = {}


def _helper(func: Callable[..., Any] | None = None, *, inline: bool = True) -> Any:
    """Mark a function the kernel calls; ``_kernel()`` compiles it with numba first."""
    if func is None:
        return functools.partial(_helper, inline=inline)
    _HELPERS[func.__name__] = (func, inline)
    return func


@_helper(inline=False)  # tiny: LLVM inlines it anyway, and numba-level inlining is slow to compile
def _rotr(x, n):
    return np.uint32((x >> n) | (x << (32 - n)))


@_helper
def _round(v, w, t, ia, ib, ic, id_, ie, if_, ig, ih):
    # Row indices are literals at every call site: a..h rotate through the rows of v instead of
    # being moved, and LLVM sees eight distinct rows. Inlined, or LLVM would not see literals.
    lanes = _LANES
    k = _K[t]
    for lane in range(lanes):
        a = v[ia * lanes + lane]
        b = v[ib * lanes + lane]
        c = v[ic * lanes + lane]
        d = v[id_ * lanes + lane]
        e = v[ie * lanes + lane]
        f = v[if_ * lanes + lane]
        g = v[ig * lanes + lane]
        h = v[ih * lanes + lane]
        s1 = np.uint32(_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25))
        ch = np.uint32((e & f) ^ (~e & g))
        t1 = np.uint32(h + s1 + ch + k + w[t * lanes + lane])
        s0 = np.uint32(_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22))
        maj = np.uint32((a & b) ^ (a & c) ^ (b & c))
        v[ih * lanes + lane] = np.uint32(t1 + s0 + maj)
        v[id_ * lanes + lane] = np.uint32(d + t1)


@_helper(inline=False)  # called from four places; one copy keeps the compile time down
def _compress(s, w, v, active):
    """One SHA-256 block in every lane whose ``active`` is set (the others keep their state).

    ``s``: chaining state, 8 rows of lanes; ``w``: message schedule, 64 rows, the first 16
    filled; ``v``: scratch for the working variables.
    """
    lanes = _LANES
    for t in range(16, 64):
        for lane in range(lanes):
            x = w[(t - 15) * lanes + lane]
            y = w[(t - 2) * lanes + lane]
            s0 = np.uint32(_rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3))
            s1 = np.uint32(_rotr(y, 17) ^ _rotr(y, 19) ^ (y >> 10))
            w[t * lanes + lane] = np.uint32(w[(t - 16) * lanes + lane] + s0 + w[(t - 7) * lanes + lane] + s1)
    for i in range(8 * lanes):
        v[i] = s[i]
    for t in range(0, 64, 8):
        _round(v, w, t, 0, 1, 2, 3, 4, 5, 6, 7)
        _round(v, w, t + 1, 7, 0, 1, 2, 3, 4, 5, 6)
        _round(v, w, t + 2, 6, 7, 0, 1, 2, 3, 4, 5)
        _round(v, w, t + 3, 5, 6, 7, 0, 1, 2, 3, 4)
        _round(v, w, t + 4, 4, 5, 6, 7, 0, 1, 2, 3)
        _round(v, w, t + 5, 3, 4, 5, 6, 7, 0, 1, 2)
        _round(v, w, t + 6, 2, 3, 4, 5, 6, 7, 0, 1)
        _round(v, w, t + 7, 1, 2, 3, 4, 5, 6, 7, 0)
    for r in range(8):
        for lane in range(lanes):
            if active[lane]:
                s[r * lanes + lane] = np.uint32(s[r * lanes + lane] + v[r * lanes + lane])


@_helper
def _key_state(key_block, pad, s, w, v, active, state):
    """``state`` := SHA-256 chaining state after the one block ``key_block XOR pad``."""
    lanes = _LANES
    for j in range(16):
        word = np.uint32(0)
        for k in range(4):
            word = np.uint32((word << 8) | (key_block[4 * j + k] ^ pad))
        for lane in range(lanes):
            w[j * lanes + lane] = word
    for r in range(8):
        for lane in range(lanes):
            s[r * lanes + lane] = _IV[r]
    for lane in range(lanes):
        active[lane] = True
    _compress(s, w, v, active)
    for r in range(8):
        state[r] = s[r * lanes]


@_helper
def _load_block(data, starts, lengths, nblocks, blk, w):
    """Block ``blk`` of every lane's padded message into rows 0-15 of ``w``, as big-endian words."""
    lanes = _LANES
    for lane in range(lanes):
        rem = lengths[lane] - blk * _BLOCK  # message bytes from this block on (< 0: ended before)
        base = starts[lane] + blk * _BLOCK
        full = min(max(rem, 0) // 4, 16)
        for j in range(full):
            i = base + 4 * j
            w[j * lanes + lane] = np.uint32(
                (np.uint32(data[i]) << 24)
                | (np.uint32(data[i + 1]) << 16)
                | (np.uint32(data[i + 2]) << 8)
                | np.uint32(data[i + 3])
            )
        if full < 16:
            # The word where the message ends: its last 0-3 bytes, then the 0x80 padding byte
            # (unless the message ended in an earlier block: then all zeros).
            word = np.uint32(0)
            tail = rem - 4 * full
            if tail >= 0:
                for k in range(tail):
                    word = np.uint32(word | (np.uint32(data[base + 4 * full + k]) << (24 - 8 * k)))
                word = np.uint32(word | (np.uint32(0x80) << (24 - 8 * tail)))
            w[full * lanes + lane] = word
            for j in range(full + 1, 16):
                w[j * lanes + lane] = 0
        if blk == nblocks[lane] - 1:
            # Message length in bits, counting the ipad block already in the inner state.
            bits = (lengths[lane] + _BLOCK) * 8
            w[14 * lanes + lane] = np.uint32(bits >> 32)
            w[15 * lanes + lane] = np.uint32(bits & 0xFFFFFFFF)


@_helper
def _hex8(word):
    """Lower-case hex of a uint32 as 8 ASCII bytes in a uint64, the first digit in the top byte."""
    x = np.uint64(word)
    # Spread the nibbles into bytes (nibble i -> byte i), then add '0', or 'a' - 10 for 10-15:
    # bit 4 of (nibble + 6) is set exactly for 10-15, and no byte carries into the next.
    x = (x | (x << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    letters = ((x + np.uint64(0x0606060606060606)) >> np.uint64(4)) & np.uint64(0x0101010101010101)
    return x + np.uint64(0x3030303030303030) + letters * np.uint64(ord("a") - ord("0") - 10)


@_helper
def _by_block_count(offsets, n):
    """Value indices grouped by SHA-256 block count (stable), or an empty array if all take one."""
    counts = np.empty(n, np.int64)
    most = 1
    for i in range(n):
        counts[i] = (offsets[i + 1] - offsets[i] + 9 + _BLOCK - 1) // _BLOCK  # + 0x80 + 64-bit length
        most = max(most, counts[i])
    if most == 1:
        return np.empty(0, np.int64)
    position = np.zeros(most + 2, np.int64)  # counting sort
    for i in range(n):
        position[counts[i] + 1] += 1
    for b in range(1, most + 2):
        position[b] += position[b - 1]
    order = np.empty(n, np.int64)
    for i in range(n):
        order[position[counts[i]]] = i
        position[counts[i]] += 1
    return order


def _hmac_hex_kernel(key_block, data, offsets, prefix, hex_chars, out):
    """Row ``i`` of ``out`` := prefix + the first ``hex_chars`` hex digits of HMAC(key, value i) + "\\n".

    ``key_block`` is the key as RFC 2104 pads it (64 bytes); value ``i`` is
    ``data[offsets[i]:offsets[i + 1]]``; ``out`` has shape (n, len(prefix) + hex_chars + 1).
    """
    lanes = _LANES
    n = offsets.shape[0] - 1
    p = prefix.shape[0]
    w = np.zeros(64 * lanes, np.uint32)
    v = np.empty(8 * lanes, np.uint32)
    s = np.empty(8 * lanes, np.uint32)
    words = (hex_chars + 7) // 8
    hexed = np.empty(words * lanes, np.uint64)
    active = np.ones(lanes, np.bool_)
    rows = np.zeros(lanes, np.int64)
    starts = np.zeros(lanes, np.int64)
    lengths = np.zeros(lanes, np.int64)
    nblocks = np.ones(lanes, np.int64)
    inner = np.empty(8, np.uint32)
    outer = np.empty(8, np.uint32)
    _key_state(key_block, 0x36, s, w, v, active, inner)
    _key_state(key_block, 0x5C, s, w, v, active, outer)
    order = _by_block_count(offsets, n)
    grouped = order.shape[0] > 0

    for first in range(0, n, lanes):
        count = min(lanes, n - first)
        most_blocks = 1
        for lane in range(lanes):
            if lane < count:
                row = order[first + lane] if grouped else first + lane
                rows[lane] = row
                starts[lane] = offsets[row]
                lengths[lane] = offsets[row + 1] - offsets[row]
            else:  # past the end: hash an empty message, write nothing
                starts[lane] = 0
                lengths[lane] = 0
            nblocks[lane] = (lengths[lane] + 9 + _BLOCK - 1) // _BLOCK
            most_blocks = max(most_blocks, nblocks[lane])

        # Inner hash: H((key ^ ipad) || value); lanes with fewer blocks sit out the extra ones.
        for r in range(8):
            for lane in range(lanes):
                s[r * lanes + lane] = inner[r]
        for blk in range(most_blocks):
            _load_block(data, starts, lengths, nblocks, blk, w)
            for lane in range(lanes):
                active[lane] = blk < nblocks[lane]
            _compress(s, w, v, active)

        # Outer hash: H((key ^ opad) || inner digest), always one block: 32 bytes + padding.
        for r in range(8):
            for lane in range(lanes):
                w[r * lanes + lane] = s[r * lanes + lane]
                s[r * lanes + lane] = outer[r]
        for lane in range(lanes):
            w[8 * lanes + lane] = 0x80000000
            for r in range(9, 15):
                w[r * lanes + lane] = 0
            w[15 * lanes + lane] = (_BLOCK + 32) * 8
            active[lane] = True
        _compress(s, w, v, active)

        # Hex: eight digits per digest word as one uint64, for all lanes at once (vectorised);
        # then each row takes whole 8-byte groups rather than single nibbles.
        for q in range(words):
            for lane in range(lanes):
                hexed[q * lanes + lane] = _hex8(s[q * lanes + lane])
        for lane in range(count):
            row = rows[lane]
            for j in range(p):
                out[row, j] = prefix[j]
            for q in range(words):
                digits = hexed[q * lanes + lane]
                for k in range(min(8, hex_chars - 8 * q)):
                    out[row, p + 8 * q + k] = np.uint8(digits >> np.uint64(56 - 8 * k))
            out[row, p + hex_chars] = 10


# --- loading and the Python API ----------------------------------------------------------------

_lock = threading.Lock()
_compiled: Callable[..., None] | None = None
_import_error: ImportError | None = None


def _kernel() -> Callable[..., None]:
    """The compiled kernel: imports numba and compiles it (or loads it from cache) on first call."""
    global _compiled, _import_error
    with _lock:
        if _compiled is not None:
            return _compiled
        if _import_error is not None:
            raise _import_error
        try:
            import numba
        except ImportError as exc:  # remembered, so callers fall back without retrying each time
            _import_error = exc
            raise
        # The kernel calls its helpers by their global names: compile those first. They are
        # only ever called from compiled code, so they need no Python-callable wrappers.
        namespace = globals()
        for name, (func, inline) in _HELPERS.items():
            namespace[name] = numba.njit(
                inline="always" if inline else "never",
                error_model="numpy",  # no ZeroDivisionError checks
                no_cpython_wrapper=True,
                no_cfunc_wrapper=True,
            )(func)
        read_only_bytes = numba.types.Array(numba.types.uint8, 1, "C", readonly=True)
        signature = numba.types.void(
            read_only_bytes,  # key_block
            read_only_bytes,  # data (np.frombuffer over bytes is read-only)
            numba.types.Array(numba.types.int64, 1, "C"),  # offsets
            read_only_bytes,  # prefix
            numba.types.int64,  # hex_chars
            numba.types.Array(numba.types.uint8, 2, "C"),  # out
        )
        # One explicit signature: compiled (or loaded) here, once, never again per argument type.
        options = {"nogil": True, "error_model": "numpy"}
        try:
            _compiled = numba.njit(signature, cache=True, **options)(_hmac_hex_kernel)
        except RuntimeError:  # no writable cache dir (read-only install and home): compile anyway
            _compiled = numba.njit(signature, **options)(_hmac_hex_kernel)
        return _compiled


def available() -> bool:
    """Whether the compiled kernel can be used (numba importable); loads it on the first call."""
    try:
        _kernel()
    except ImportError:
        return False
    return True


def pack(values: Sequence[bytes] | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Values as one uint8 buffer and ``n + 1`` int64 offsets; str values are UTF-8 encoded.

    For str one ``"".join`` plus ``encode`` is ~5x cheaper than ``b"".join`` of encoded
    values (bytes.join takes a buffer view of every item), but ``len`` only counts bytes when
    the text is ASCII: anything else is encoded value by value.
    """
    n = len(values)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.uint8), offsets
    if isinstance(values[0], str):
        text = "".join(cast("Sequence[str]", values))
        if text.isascii():
            buffer = text.encode("ascii")
        else:
            values = [value.encode("utf-8") for value in cast("Sequence[str]", values)]
            buffer = b"".join(values)
    else:
        buffer = b"".join(cast("Sequence[bytes]", values))
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=n), out=offsets[1:])
    return np.frombuffer(buffer, dtype=np.uint8), offsets


class BatchHmacSha256:
    """HMAC-SHA256 under one key over whole batches of values, as hex tokens.

    ``tokens(values, prefix, hex_chars)[i]`` is
    ``prefix + hmac.new(key, values[i], "sha256").hexdigest()[:hex_chars]``, or None where
    the value is empty. Making one is cheap and needs no numba; ``tokens`` needs it.
    """

    __slots__ = ("_key_block",)

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        self._key_block = np.frombuffer(bytes(key).ljust(_BLOCK, b"\0"), dtype=np.uint8)

    def __repr__(self) -> str:  # never show key material
        return "BatchHmacSha256(<key>)"

    def tokens(
        self, values: Sequence[bytes] | Sequence[str], prefix: str, hex_chars: int
    ) -> list[str | None]:
        """Tokens for ``values`` (all bytes, or all str hashed as UTF-8); empty values give None."""
        if not 1 <= hex_chars <= _MAX_HEX_CHARS:
            raise ValueError(f"hex_chars must be 1..{_MAX_HEX_CHARS}, got {hex_chars}")
        if not prefix.isascii() or "\n" in prefix:
            raise ValueError("the token prefix must be ASCII without line breaks")
        prefix_bytes = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
        if len(values) <= _CHUNK_VALUES:
            return self._tokens(values, prefix_bytes, hex_chars)
        # In chunks, so the packed values, the output rows and their decoded text stay ~100 MB
        # at most however long the column (they would be ~110 bytes a value at once).
        tokens: list[str | None] = []
        for start in range(0, len(values), _CHUNK_VALUES):
            tokens += self._tokens(values[start : start + _CHUNK_VALUES], prefix_bytes, hex_chars)
        return tokens

    def _tokens(
        self, values: Sequence[bytes] | Sequence[str], prefix: np.ndarray, hex_chars: int
    ) -> list[str | None]:
        data, offsets = pack(values)
        n = len(offsets) - 1
        if n == 0:
            return []
        out = np.empty((n, len(prefix) + hex_chars + 1), dtype=np.uint8)
        _kernel()(self._key_block, data, offsets, prefix, hex_chars, out)
        # One decode and one split make all n strings in C. The memoryview slice leaves off the
        # final "\n" (so split gives exactly n parts) without copying the buffer.
        text = str(memoryview(out.reshape(-1))[:-1], "ascii")
        tokens = cast("list[str | None]", text.split("\n"))
        for i in np.flatnonzero(offsets[1:] == offsets[:-1]).tolist():
            tokens[i] = None
        return tokens
