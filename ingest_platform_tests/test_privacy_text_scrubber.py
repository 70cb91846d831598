"""Free-text scrubbing: each entity type, stable keyed tags, near-misses, series/batch path, CLI lines."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pandas as pd
import pytest

from ingest_platform.privacy.text_scrubber import TextScrubber, scrub_lines
from ingest_platform.privacy.tokens import Pseudonymizer

TAG = re.compile(r"\[([A-Z_]+):([0-9a-f]{8})\]")


@pytest.fixture(scope="module")
def pseudo() -> Pseudonymizer:
    return Pseudonymizer(b"text-scrubber-test-key-0123456789", "t1")


@pytest.fixture
def scrubber(pseudo: Pseudonymizer) -> TextScrubber:
    return TextScrubber(pseudo)


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("write to Jane.Doe+shop@Mail.Example.COM today", "Jane.Doe+shop@Mail.Example.COM", "EMAIL"),
        ("call +1 (415) 555-0123 now", "+1 (415) 555-0123", "PHONE"),
        ("call (415) 555-0123 now", "(415) 555-0123", "PHONE"),
        ("uk +44 20 7946 0958.", "+44 20 7946 0958", "PHONE"),
        ("de 0049 30 12345678", "0049 30 12345678", "PHONE"),
        ("fr +33 6 12 34 56 78", "+33 6 12 34 56 78", "PHONE"),
        ("in +91 98765 43210", "+91 98765 43210", "PHONE"),
        ("br +55 11 91234-5678", "+55 11 91234-5678", "PHONE"),
        ("tel:+14155550123", "+14155550123", "PHONE"),
        ("card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111", "CARD"),
        ("amex 3782-822463-10005!", "3782-822463-10005", "CARD"),
        ("pay DE89 3704 0044 0532 0130 00 now", "DE89 3704 0044 0532 0130 00", "IBAN"),
        ("pay GB82WEST12345698765432", "GB82WEST12345698765432", "IBAN"),
        ("from 81.2.69.160:443", "81.2.69.160", "IP"),
        ("from 2001:db8::8a2e:370:7334 ok", "2001:db8::8a2e:370:7334", "IP"),
        ("mapped ::ffff:192.0.2.128", "::ffff:192.0.2.128", "IP"),
        ("see https://www.tiktok.com/@jane.doe/video/1", "https://www.tiktok.com/@jane.doe", "URL_HANDLE"),
        ("ig instagram.com/jane_doe.", "instagram.com/jane_doe", "URL_HANDLE"),
        ("fb facebook.com/profile.php?id=100012345", "facebook.com/profile.php?id=100012345", "URL_HANDLE"),
        ("thanks @jane.doe!", "@jane.doe", "MENTION"),
    ],
)
def test_each_type_is_replaced_by_a_typed_tag(
    scrubber: TextScrubber, text: str, secret: str, kind: str
) -> None:
    result = scrubber.scrub(text)
    assert secret not in result.text
    assert result.found == {kind: 1}
    assert [m.group(1) for m in TAG.finditer(result.text)] == [kind]
    before, _, after = text.partition(secret)
    assert result.text.startswith(before) and result.text.endswith(after)


@pytest.mark.parametrize(
    "text",
    [
        "Updated to version 1.2.3.4.5, build 10.0.19045.3693",
        "Version 4.0.0.1 released",
        "Delivered on 2024-05-17 14:30:00 (17/05/2024)",
        "Order ORD-2024-118823, order #100234567, order number 4412 9981 3321",
        "card 4111 1111 1111 1112 declined",  # fails Luhn
        "total $1,299.99 or €2.499,00",
        # Issue #13: "user at example dot com" is an obfuscated address and is scrubbed now.
        "icon@2x.png, email me @ home, meet at home.Then, npm i @babel/core",
        "call 911, room 1204, PIN 4821",
        "IBAN DE00 1234 5678 9012 3456 78 is not valid",
        "instagram.com/explore and x.com/home and tiktok.com/@",
        "time 12:30:45, mac 00:1A:2B:3C:4D:5E, std::vector, ::1",
        "3-2 win, 1200000 views, score 7-1-2-3-4-5-6",
        "no digits, no at-signs, nothing personal",
        "",
    ],
)
def test_near_misses_are_left_alone(scrubber: TextScrubber, text: str) -> None:
    assert scrubber.scrub(text) == (text, {})


def test_equal_values_get_equal_tags_matching_column_tokens(
    scrubber: TextScrubber, pseudo: Pseudonymizer
) -> None:
    result = scrubber.scrub("mail JANE@x.com or jane@X.com; call (415) 555-0123 or +1 415 555 0123")
    tags = TAG.findall(result.text)
    assert result.found == {"EMAIL": 2, "PHONE": 2}
    assert tags[0] == tags[1] and tags[2] == tags[3] and tags[0] != tags[2]
    email_token = pseudo.token("jane@x.com", "email")
    phone_token = pseudo.token("+1 (415) 555-0123", "phone")
    assert email_token is not None and email_token.split(":")[1].startswith(tags[0][1])
    assert phone_token is not None and phone_token.split(":")[1].startswith(tags[2][1])
    mention = scrubber.scrub("@Jane_Doe").text
    url = scrubber.scrub("tiktok.com/@jane_doe").text
    assert TAG.findall(mention)[0][1] == TAG.findall(url)[0][1]  # one person, one tag


def test_tags_depend_on_the_key(pseudo: Pseudonymizer) -> None:
    other = TextScrubber(Pseudonymizer(b"another-key-entirely-0123456789ab", "t2"))
    text = "mail jane@x.com"
    assert TextScrubber(pseudo).scrub(text).text != other.scrub(text).text


def test_scrubbing_is_idempotent(scrubber: TextScrubber) -> None:
    once = scrubber.scrub("mail jane@x.com, call (415) 555-0123, card 4111111111111111, @bob")
    assert scrubber.scrub(once.text) == (once.text, {})
    numeric_tag = "[PHONE:02079460] and [CARD:41111111]"  # tags made only of digits
    assert scrubber.scrub(numeric_tag) == (numeric_tag, {})


def test_phone_runs_are_split_and_trimmed_sensibly(scrubber: TextScrubber) -> None:
    result = scrubber.scrub("on 2024-05-17 415-555-0123 called; qty 2 415 555 0199")
    assert result.found == {"PHONE": 2}
    assert result.text.startswith("on 2024-05-17 [PHONE:")
    assert "qty 2 [PHONE:" in result.text


def test_reference_numbers_after_context_words_are_not_phones(scrubber: TextScrubber) -> None:
    assert scrubber.scrub("invoice 4155550123")[1] == {}
    assert scrubber.scrub("call 4155550123")[1] == {"PHONE": 1}


def test_scrub_series_matches_per_text_scrub_and_keeps_missing(scrubber: TextScrubber) -> None:
    texts = [
        "hi @jane",
        None,
        "mail a@b.com",
        np.nan,
        "",
        "nothing here",
        "order",  # the context word must not leak into the next text of the joined column
        "4155550123 is my number",
        "ip 10.1.2.3 and 2001:db8::1",
        "ends with a digit 7",
        "12345678 starts with digits",
    ]
    series = pd.Series(texts, index=range(100, 100 + len(texts)), name="note", dtype=object)
    out, totals = scrubber.scrub_series(series)
    assert out.index.tolist() == series.index.tolist() and out.name == "note"
    assert out[101] is None and np.isnan(out[103]) and out[104] == ""
    expected_totals: dict[str, int] = {}
    for index, text in series.items():
        if isinstance(text, str) and text:
            single = scrubber.scrub(text)
            assert out[index] == single.text, text
            for kind, count in single.found.items():
                expected_totals[kind] = expected_totals.get(kind, 0) + count
    assert totals == expected_totals == {"MENTION": 1, "EMAIL": 1, "PHONE": 1, "IP": 2}


def test_scrub_series_with_nul_in_a_text_falls_back_correctly(scrubber: TextScrubber) -> None:
    series = pd.Series(["a\x00mail a@b.com", "call (415) 555-0123"])
    out, totals = scrubber.scrub_series(series)
    assert totals == {"EMAIL": 1, "PHONE": 1}
    assert out[0].startswith("a\x00mail [EMAIL:")


def test_scrub_lines_emits_one_json_object_per_line(scrubber: TextScrubber) -> None:
    lines = ["mail a@b.com\n", "nothing\r\n", "ünïcödé @jane"]
    out = [json.loads(line) for line in scrub_lines(lines, scrubber)]
    assert [o["found"] for o in out] == [{"EMAIL": 1}, {}, {"MENTION": 1}]
    assert out[1]["text"] == "nothing" and out[2]["text"].startswith("ünïcödé [MENTION:")


def test_scrub_series_counts_every_type_over_a_large_column(pseudo: Pseudonymizer) -> None:
    # Speed (and the Presidio comparison) is measured by benchmarks/privacy_throughput.py.
    rng = random.Random(3)
    words = [
        "love",
        "this",
        "new",
        "drop",
        "so",
        "good",
        "today",
        "vibes",
        "with",
        "friends",
        "check",
        "link",
        "in",
        "bio",
    ]
    texts = []
    for i in range(20_000):
        text = " ".join(rng.choice(words) for _ in range(10))
        if i % 10 == 0:
            text += f" call ({rng.choice([212, 415, 617])}) {rng.randint(200, 989)}-{rng.randint(1000, 9999)}"
        elif i % 10 == 1:
            text += f" @user{i} mail user{i}@example.com"
        texts.append(text)
    fresh = TextScrubber(pseudo)
    _, totals = fresh.scrub_series(pd.Series(texts))
    assert totals["PHONE"] >= 1_900 and totals["EMAIL"] == 2_000 and totals["MENTION"] == 2_000


def test_scrub_series_output_is_always_object_dtype(scrubber: TextScrubber) -> None:
    for series in (
        pd.Series(["plain", "text"], dtype="string"),
        pd.Series(["a@b.com"]),
        pd.Series([], dtype=object),
    ):
        out, _ = scrubber.scrub_series(series)
        assert out.dtype == object and len(out) == len(series)
