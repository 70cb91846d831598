"""``TextScrubber`` under hostile input: it returns, never raises, and its work grows linearly.

Content is never a reason to fail a load: NUL bytes, lone surrogates, other scripts' digits,
10 MB lines, long digit runs, long runs of ``@``/``.``/``-`` and repeated near-matches built to
make a regex backtrack all have to come back as text. Every pattern's quantifiers are bounded or
over one character class with a fixed end (see ``text_scrubber``); here the number of validator
calls (libphonenumber, Luhn, mod-97) is counted and must stay proportional to the input size,
which a quadratic scan would break long before any clock would notice. Speed lives in
``benchmarks/privacy_throughput.py``.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_platform.privacy import text_scrubber
from ingest_platform.privacy.text_scrubber import TextScrubber
from ingest_platform.privacy.tokens import Pseudonymizer

EXAMPLES = 400 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 60

# Characters every detector branch reacts to, plus the awkward ones.
HOSTILE_ALPHABET = [
    *"0123456789 +-.()/:@%&#;[]<>_ \t\nat dot xn--ABCDEFabcdef",
    *["\x00", "\u00a0", "\uff20", "\ud800", "\udfff", "\u0663", "\u00b2", "\u0301", "\u200b"],
    *["📞", "tel ", "call "],
]

hostile_text = st.lists(st.sampled_from(HOSTILE_ALPHABET), max_size=400).map("".join)
# Near-matches repeated: each piece almost completes some pattern.
NEAR_MATCHES = [
    "a@a.", "@", ".", "-", "1-", "1 ", "12 ", "1234 ", "0", "+1 (", "tel 12 34 ", "a:", "::", "1.2.",
    "%40", "&#64;", " at ", "(at)", "x dot ", "DE89 ", "de89-", "4111 ", "xn--", "/@", "github.com/",
    "\x00", "\ud800", "9" * 7,
]  # fmt: skip
repeated_near_match = st.tuples(
    st.lists(st.sampled_from(NEAR_MATCHES), min_size=1, max_size=3), st.integers(1, 1500)
).map(lambda t: "".join(t[0]) * t[1])


@pytest.fixture(scope="module")
def scrubber() -> TextScrubber:
    return TextScrubber(Pseudonymizer(b"hostile-input-key-0123456789abcdef", "h"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(hostile_text, repeated_near_match, st.text(max_size=300)))
def test_scrub_returns_text_for_any_input(scrubber: TextScrubber, text: str) -> None:
    result = scrubber.scrub(text)
    assert isinstance(result.text, str)
    assert all(count > 0 for count in result.found.values())
    if not result.found:
        assert result.text == text


@settings(
    max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.one_of(st.none(), hostile_text, repeated_near_match), max_size=8))
def test_scrub_series_returns_one_text_per_row_for_any_input(scrubber: TextScrubber, texts: list) -> None:
    series = pd.Series(texts, dtype=object)
    scrubbed, totals = scrubber.scrub_series(series)
    assert len(scrubbed) == len(series)
    assert [v is None for v in scrubbed] == [v is None for v in texts]
    # The joined scan and the per-text scan agree, NUL bytes in a text or not.
    one_by_one: dict[str, int] = {}
    for text in texts:
        if text is not None:
            for kind, count in scrubber.scrub(text).found.items():
                one_by_one[kind] = one_by_one.get(kind, 0) + count
    assert totals == one_by_one


def _count_validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    for name in ("_parse_phone", "_parse_phone_anywhere", "card_ok", "_iban_end", "_ipv4", "_ipv6"):
        original = getattr(text_scrubber, name)

        def counted(*args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            calls[0] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(text_scrubber, name, counted)
    return calls


@pytest.mark.parametrize("piece", NEAR_MATCHES)
def test_validator_work_grows_linearly_with_repeated_near_matches(
    monkeypatch: pytest.MonkeyPatch, piece: str
) -> None:
    """Twice the input costs at most about twice the validations: no quadratic rescans."""
    scrubber = TextScrubber(Pseudonymizer(b"hostile-input-key-0123456789abcdef", "h"))
    calls = _count_validations(monkeypatch)
    counts = []
    for repeat in (2000, 4000):
        scrubber._phone_cache.clear()
        calls[0] = 0
        scrubber.scrub(piece * repeat)
        counts.append(calls[0])
    assert counts[0] <= 4 * len(piece) * 2000 + 16
    assert counts[1] <= 2 * counts[0] + 16, counts


def test_a_ten_megabyte_line_of_hostile_runs_comes_back(scrubber: TextScrubber) -> None:
    mb = 1_000_000
    text = (
        "\x00start "
        + "9" * (3 * mb)
        + " "
        + "@" * mb
        + "." * mb
        + "-" * mb
        + "\ud800" * mb
        + "a" * (2 * mb)
        + " mail jane@example.com"
        + ":" * mb
    )
    assert len(text) > 10 * mb
    result = scrubber.scrub(text)
    assert result.found == {"EMAIL": 1}
    assert len(result.text) == len(text) - len("jane@example.com") + len("[EMAIL:12345678]")
