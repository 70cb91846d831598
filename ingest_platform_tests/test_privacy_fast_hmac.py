"""The numba batch HMAC kernel: byte-identical to ``hmac.new(key, value, sha256)``, and to the Python path."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import subprocess
import sys

import pandas as pd
import pytest

from ingest_platform.privacy import fast_hmac, tokens
from ingest_platform.privacy.fast_hmac import BatchHmacSha256
from ingest_platform.privacy.tokens import Pseudonymizer
from ingest_platform_tests.conftest import REPO_ROOT, modules_loaded_by

KEY = b"0123456789abcdef0123456789abcdef"
BLOCK_BOUNDARIES = (55, 56, 63, 64, 119, 120)  # one/two blocks of padding either side


def expected(key: bytes, values: list[bytes], prefix: str = "k:", hex_chars: int = 32) -> list[str | None]:
    return [prefix + hmac.new(key, v, hashlib.sha256).hexdigest()[:hex_chars] if v else None for v in values]


def random_bytes(rng: random.Random, length: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(length))


def test_numba_is_installed_so_columns_take_the_kernel() -> None:
    # numba is a base dependency: a broken install should fail here, not silently run 2.5x slower.
    assert fast_hmac.available()


def test_every_length_up_to_300_bytes_matches_hmac() -> None:
    rng = random.Random(1)
    values = [random_bytes(rng, length) for length in range(301) for _ in range(3)]
    rng.shuffle(values)  # lanes of one batch then need different numbers of blocks
    assert BatchHmacSha256(KEY).tokens(values, "k:", 32) == expected(KEY, values)


@pytest.mark.parametrize("length", BLOCK_BOUNDARIES)
def test_padding_block_boundaries_match_hmac(length: int) -> None:
    rng = random.Random(length)
    values = [random_bytes(rng, length) for _ in range(70)] + [b"\x00" * length, b"\xff" * length]
    assert BatchHmacSha256(KEY).tokens(values, "k:", 64) == expected(KEY, values, hex_chars=64)


@pytest.mark.parametrize("key_length", [0, 1, 32, 64, 65, 200])  # empty, short, block-sized, hashed down
def test_all_key_lengths_match_hmac(key_length: int) -> None:
    rng = random.Random(key_length)
    key = random_bytes(rng, key_length)
    values = [random_bytes(rng, rng.randrange(0, 140)) for _ in range(200)]
    assert BatchHmacSha256(key).tokens(values, "k:", 32) == expected(key, values)


def test_str_values_are_hashed_as_utf8_ascii_or_not() -> None:
    ascii_values = ["jane@example.com", "", "bob", "x" * 56]
    mixed = ["ünïcödé ✓", "jane@example.com", "日本語のテキスト" * 5, "", "emoji 🙂🙂", "plain"]
    batch = BatchHmacSha256(KEY)
    for values in (ascii_values, mixed):
        assert batch.tokens(values, "k:", 32) == expected(KEY, [v.encode() for v in values])


@pytest.mark.parametrize("prefix", ["", "k1:", "2026-rotated_key.v2:"])
@pytest.mark.parametrize("hex_chars", [1, 7, 8, 9, 32, 63, 64])
def test_prefixes_and_token_lengths(prefix: str, hex_chars: int) -> None:
    values = [f"value {i}".encode() for i in range(100)]
    assert BatchHmacSha256(KEY).tokens(values, prefix, hex_chars) == expected(KEY, values, prefix, hex_chars)


def test_a_large_batch_matches_hmac_value_for_value(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [f" user{i}@example{i % 97}.com".encode() for i in range(100_000)]
    values[12_345] = b""
    want = expected(KEY, values)
    assert BatchHmacSha256(KEY).tokens(values, "k:", 32) == want
    monkeypatch.setattr(fast_hmac, "_CHUNK_VALUES", 7_777)  # long columns go through in chunks
    assert BatchHmacSha256(KEY).tokens(values, "k:", 32) == want


def test_empty_batch_and_empty_values() -> None:
    batch = BatchHmacSha256(KEY)
    assert batch.tokens([], "k:", 32) == []
    assert batch.tokens([b""], "k:", 32) == [None]
    assert batch.tokens(["", "a", ""], "k:", 32) == [None, *expected(KEY, [b"a"]), None]


def test_bad_arguments_are_refused_and_the_key_never_shown() -> None:
    batch = BatchHmacSha256(KEY)
    for hex_chars in (0, 65):
        with pytest.raises(ValueError, match="hex_chars"):
            batch.tokens([b"a"], "k:", hex_chars)
    for prefix in ("line\nbreak:", "clé:"):
        with pytest.raises(ValueError, match="prefix"):
            batch.tokens([b"a"], prefix, 32)
    assert KEY.decode() not in repr(batch)


def test_importing_tokens_does_not_import_numba() -> None:
    # The Dagster code location imports the privacy package; numba (~0.5 s) loads on first hash.
    loaded = modules_loaded_by(
        ["ingest_platform.privacy", "ingest_platform.privacy.tokens"], ["numba", "llvmlite"]
    )
    assert loaded == {"numba": [], "llvmlite": []}


def test_without_numba_columns_fall_back_to_the_python_loop() -> None:
    # In a subprocess: a None entry in sys.modules makes ``import numba`` fail there only.
    code = (
        "import sys, json\n"
        "sys.modules['numba'] = None\n"
        "from ingest_platform.privacy import fast_hmac, tokens\n"
        "pseudo = tokens.Pseudonymizer(b'k' * 32, 'k')\n"
        "values = [f'value {i}' for i in range(500)]\n"
        "print(json.dumps([fast_hmac.available(), pseudo.tokenize_values(values)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    available, fallback = json.loads(result.stdout.strip().splitlines()[-1])
    assert available is False
    assert fallback == expected(b"k" * 32, [f"value {i}".encode() for i in range(500)])


# --- Pseudonymizer: kernel and Python loop agree ---------------------------------------------


def column(kind: str, n: int, repeat: int | None = None) -> pd.Series:
    rng = random.Random(n)
    samples = {
        "email": lambda i: f" {rng.choice(['Jane', 'BOB', 'zoë'])}.{i}@Example.COM ",
        "handle": lambda i: f"@User_{i}",
        "phone": lambda i: f"(415) 555-{i % 10_000:04d}",
        "name": lambda i: f"  Zoë   Müller {i}",
        "ip": lambda i: f"10.{i % 256}.{i // 256 % 256}.1",
        "generic": lambda i: f"  value {i} ✓ " if i % 7 else "   ",  # some normalise to ''
    }
    values: list[object] = [samples[kind](i if repeat is None else i % repeat) for i in range(n)]
    values[3] = None  # missing values take the masked path
    return pd.Series(values, dtype=object)


@pytest.mark.parametrize("kind", ["email", "handle", "phone", "name", "ip", "generic"])
@pytest.mark.parametrize("repeat", [None, 50], ids=["unique", "repeated"])
def test_tokenize_series_is_identical_with_kernel_and_python_loop(
    kind: str, repeat: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pseudo = Pseudonymizer(b"pseudonymizer-test-key-0123456789", "k1")
    series = column(kind, 5_000, repeat)
    calls: list[int] = []
    batch_tokens = tokens._KeyState.batch_tokens

    def counted(self: tokens._KeyState, normalised: list[str]) -> list[str | None]:
        calls.append(len(normalised))
        return batch_tokens(self, normalised)

    monkeypatch.setattr(tokens._KeyState, "batch_tokens", counted)
    with_kernel = pseudo.tokenize_series(series, kind)  # type: ignore[arg-type]
    assert calls, "the kernel was not used"
    monkeypatch.setattr(tokens, "USE_BATCH_KERNEL", False)
    with_loop = pseudo.tokenize_series(series, kind)  # type: ignore[arg-type]
    assert len(calls) == 1, "USE_BATCH_KERNEL = False still used the kernel"
    assert with_kernel.tolist() == with_loop.tolist()
    assert with_kernel.index.equals(with_loop.index) and with_kernel.dtype == object
    assert with_kernel[3] is None
    assert with_kernel[5] == pseudo.token(series[5], kind)  # type: ignore[arg-type]
