"""Recall and precision of the text scrubber on a labelled set of short texts.

``data/pii_labelled.jsonl`` holds texts with personal data in many spellings (e-mails with
plus-addressing/subdomains/upper case; US/UK/DE/FR/IN/BR phones; cards of several networks
with spaces and dashes; IPv4/IPv6; IBANs) and near-misses that are not personal data
(version numbers, dates, order numbers, invalid-Luhn 16-digit numbers, prices, obfuscated
addresses, short numbers). Labels come from how each text was built, never from the scrubber.

Regenerate the file (deterministic) with ``python -m ingest_platform_tests.test_privacy_quality``.
"""

from __future__ import annotations

import json
import random
import string
import sys
from collections.abc import Callable
from pathlib import Path

import phonenumbers
import pytest

from ingest_platform.privacy.text_scrubber import TextScrubber, iban_ok, luhn_ok
from ingest_platform.privacy.tokens import Pseudonymizer

DATA = Path(__file__).parent / "data" / "pii_labelled.jsonl"
ASSERTED_TYPES = ("EMAIL", "PHONE", "CARD", "IP")
MIN_RECALL = 0.98
MIN_PRECISION = 0.95
Entity = dict[str, str]

# --- generator ----------------------------------------------------------------------------------

FIRST = ["jane", "john", "maria", "li", "ahmed", "sofia", "lukas", "chloe", "raj", "ana", "olu", "mei"]
LAST = ["doe", "smith", "garcia", "wang", "khan", "rossi", "muller", "martin", "patel", "silva", "okafor"]
DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "mail.example.org",
    "students.uni-berlin.de",
    "proton.me",
    "sub.mail.example.com",
    "shop-online.fr",
    "company.com.br",
    "edu.in",
]
US_AREAS = [212, 415, 312, 617, 202, 305, 512, 646, 718, 206, 303, 404, 702, 213, 310, 734]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def gen_email(rng: random.Random) -> str:
    first, last, domain = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    style = rng.randrange(6)
    if style == 0:
        return f"{first}.{last}@{domain}"
    if style == 1:
        return f"{first}+{rng.choice(['orders', 'news', 'tiktok', 'x1'])}@{domain}"
    if style == 2:
        return f"{first}.{last}@{domain}".upper()
    if style == 3:
        return f"{first}_{last}{rng.randint(1, 999)}@{domain}"
    if style == 4:
        return f"{first.capitalize()}-{last.capitalize()}@{domain}"
    return f"{first[0]}{last}{rng.randint(70, 99)}@{domain}"


def _phone_candidate(rng: random.Random) -> str:
    country = rng.choice(["US", "US", "US", "GB", "DE", "FR", "IN", "BR"])
    if country == "US":
        area = rng.choice(US_AREAS)
        middle = rng.choice(["0", "2", "3", "4", "5", "6", "7", "8", "9"])  # no N11 service codes
        exchange = f"{rng.randint(2, 9)}{middle}{rng.randint(0, 9)}"
        line = _digits(rng, 4)
        return rng.choice(
            [
                f"({area}) {exchange}-{line}",
                f"{area}-{exchange}-{line}",
                f"{area}.{exchange}.{line}",
                f"+1 {area} {exchange} {line}",
                f"+1-{area}-{exchange}-{line}",
                f"+1 ({area}) {exchange}-{line}",
            ]
        )
    if country == "GB":
        london = f"{rng.randint(3, 8)}{_digits(rng, 3)} {_digits(rng, 4)}"
        mobile = f"7{rng.choice(['4', '5', '7', '8', '9'])}{_digits(rng, 2)} {_digits(rng, 6)}"
        return rng.choice(
            [f"+44 20 {london}", f"+44 (0)20 {london}", f"020 {london}", f"+44 {mobile}", f"0{mobile}",
             f"0044 20 {london}"]
        )  # fmt: skip
    if country == "DE":
        return rng.choice(
            [
                f"+49 30 {rng.randint(2, 9)}{_digits(rng, 7)}",
                f"+49 (0)170 {_digits(rng, 7)}",
                f"+49 151 {_digits(rng, 8)}",
                f"030 {rng.randint(2, 9)}{_digits(rng, 7)}",
                f"0049 89 {rng.randint(2, 9)}{_digits(rng, 6)}",
                f"0176 {_digits(rng, 8)}",
            ]
        )
    if country == "FR":
        pairs = " ".join(_digits(rng, 2) for _ in range(4))
        return rng.choice(
            [f"+33 1 {pairs}", f"+33 6 {pairs}", f"06 {pairs}", f"0033 7 {pairs}", f"+33 (0)6 {pairs}"]
        )
    if country == "IN":
        mobile = f"{rng.randint(7, 9)}{_digits(rng, 4)} {_digits(rng, 5)}"
        mumbai = f"+91 22 {rng.randint(2, 6)}{_digits(rng, 3)} {_digits(rng, 4)}"
        return rng.choice([f"+91 {mobile}", f"+91-{mobile.replace(' ', '-')}", mumbai, f"0091 {mobile}"])
    mobile = f"9{_digits(rng, 4)}-{_digits(rng, 4)}"
    area = rng.choice([11, 21, 31, 41, 51, 61, 71, 81])
    return rng.choice([f"+55 {area} {mobile}", f"+55 ({area}) {mobile}", f"({area}) {mobile}"])


def gen_phone(rng: random.Random) -> str:
    # Ground truth must be real, assigned-range numbers: regenerate anything libphonenumber
    # calls invalid in every plausible region (that only catches mistakes in the formats above).
    while True:
        candidate = _phone_candidate(rng)
        text = "+" + candidate[2:] if candidate.startswith("00") else candidate
        for region in ("US", "GB", "DE", "FR", "IN", "BR"):
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                    return candidate
            except phonenumbers.NumberParseException:
                pass


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    for check in string.digits:
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


CARD_NETWORKS: list[tuple[Callable[[random.Random], str], int, tuple[int, ...]]] = [
    (lambda r: "4", 16, (4, 4, 4, 4)),  # Visa
    (lambda r: "4", 13, (4, 4, 5)),  # Visa (old 13)
    (lambda r: str(r.randint(51, 55)), 16, (4, 4, 4, 4)),  # Mastercard
    (lambda r: str(r.randint(2221, 2720)), 16, (4, 4, 4, 4)),  # Mastercard 2-series
    (lambda r: r.choice(["34", "37"]), 15, (4, 6, 5)),  # Amex
    (lambda r: r.choice(["6011", "65"]), 16, (4, 4, 4, 4)),  # Discover
    (lambda r: str(r.randint(3528, 3589)), 16, (4, 4, 4, 4)),  # JCB
    (lambda r: "36", 14, (4, 6, 4)),  # Diners
    (lambda r: "62", 19, (4, 4, 4, 4, 3)),  # UnionPay
]


def gen_card(rng: random.Random) -> str:
    prefix_fn, length, groups = rng.choice(CARD_NETWORKS)
    number = _luhn_complete(prefix_fn(rng), length, rng)
    separator = rng.choice(["", " ", "-", " "])
    if not separator:
        return number
    parts, cursor = [], 0
    for size in groups:
        parts.append(number[cursor : cursor + size])
        cursor += size
    return separator.join(parts)


def gen_ip(rng: random.Random) -> str:
    style = rng.randrange(6)
    if style <= 2:
        first = rng.choice([8, 23, 31, 45, 62, 81, 93, 104, 142, 151, 172, 185, 192, 203, 217])
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if style == 3:
        return ":".join(groups)
    if style == 4:
        return (
            f"2001:db8:{groups[2]}::{groups[6]}:{groups[7]}".upper()
            if rng.random() < 0.3
            else (f"2a02:{groups[1]}:{groups[2]}::{groups[7]}")
        )
    return f"::ffff:{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


IBAN_BBAN: dict[str, Callable[[random.Random], str]] = {
    "DE": lambda r: _digits(r, 18),
    "GB": lambda r: r.choice(["NWBK", "BARC", "LOYD", "HBUK"]) + _digits(r, 14),
    "FR": lambda r: _digits(r, 23),
    "NL": lambda r: r.choice(["ABNA", "INGB", "RABO"]) + _digits(r, 10),
    "ES": lambda r: _digits(r, 20),
    "IT": lambda r: r.choice(string.ascii_uppercase) + _digits(r, 22),
}


def gen_iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_BBAN))
    bban = IBAN_BBAN[country](rng)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    assert iban_ok(iban)
    if rng.random() < 0.5:
        return iban
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": gen_email,
    "PHONE": gen_phone,
    "CARD": gen_card,
    "IP": gen_ip,
    "IBAN": gen_iban,
}

TEMPLATES: dict[str, list[str]] = {
    "EMAIL": [
        "contact me at {} for collabs",
        "my email is {}.",
        "Send the invoice to {} please",
        "business inquiries: {} 💌 #fyp",
        "(email: {})",
        "mailto:{}?subject=hello",
        "Jane <{}> wrote:",
    ],
    "PHONE": [
        "call me at {} after 6pm",
        "Tel: {}.",
        "whatsapp {} for orders 📦",
        "please ring {} on arrival",
        "reach us on {}, thanks!",
        "tel:{}",
        "my # is {}",
    ],
    "CARD": [
        "paid with card {} exp 12/27",
        "my card number is {}",
        "charge {} again please",
        "card: {}; cvv on request",
    ],
    "IP": [
        "login from {} failed twice",
        "client ip {} was blocked",
        "seen from address {}.",
        "request origin={} ua=Mozilla",
    ],
    "IBAN": [
        "refund to IBAN {} please",
        "bank: {} (sepa)",
        "pay into {} by Friday",
    ],
}

NEAR_MISSES = [
    "Updated to version 1.2.3.4.5 today",
    "build 10.0.19045.3693 is out",
    "release v2.10.3 ships with python 3.11.7",
    "Delivered on 2024-05-17 14:30:00",
    "due 17/05/2024, paid 05.17.2024",
    "see you on 2023-12-31 at 23:59",
    "Order ORD-2024-118823 confirmed",
    "order #100234567 shipped",
    "Ref: INV-88231-22",
    "tracking 1Z999AA10123456784",
    "order number 4412 9981 3321",
    "invoice 2024001234 attached",
    "total $1,299.99 incl. tax",
    "price €2.499,00 or USD 12000",
    "only £ 45.50 today!!",
    "email me @ home tonight",
    "retina icon@2x.png looks sharp",
    "call 911 or room 1204, PIN 4821",
    "code 12345 for 15% off",
    "3-2 win, 1200000 views, likes: 2500000",
    "time 12:30:45 and ratio 16:9",
    "mac 00:1A:2B:3C:4D:5E on std::vector",
    "coords 51.5074, -0.1278",
    "ISBN 978-3-16-148410-0",
    "zip 94103 and SW1A 1AA",
    "IBAN DE00 1234 5678 9012 3456 78 is not valid",
    "serial 4000-1234-5678-9011",
    "batch 20240517-001",
    "population 1,234,567 in 2024",
    "top 10 tips 1.2.3 go",
    "score 7-1-2-3-4-5-6",
    "temperature 21.5, humidity 45.2, 1013 hPa",
    "Tracking number: 9400 1000 0000 0000 0000 00",
    "Meeting ID: 845 1234 5678",
    "Account 12345678 closed",
    "hash 4a7d1ed414474e4033ac29ccb8653d9b",
    "ETH 0x32Be343B94f860124dC4fEe278FDCBD38C102D88",
    "UUID 123e4567-e89b-12d3-a456-426614174000",
    "lat/long 40.7128,-74.0060",
    "not an address: 256.1.1.1",
    "Version 4.0.0.1 released",
    "Price: 1 234 567",
    "ISBN-13: 9783161484100",
    "Order 2024-05-17-0042",
    "GTIN 00012345600012",
    "see https://example.com/path/123456789 ok",
    "instagram.com/explore/tags/food and x.com/home",
]


OBFUSCATED_EMAILS = [
    ("write to user at example dot com", "user at example dot com"),
    ("jane[at]example[.]com is my handle", "jane[at]example[.]com"),
]


def _invalid_luhn_16(rng: random.Random) -> str:
    while True:
        number = rng.choice("3456") + _digits(rng, 15)
        if not luhn_ok(number):
            return rng.choice(["{} {} {} {}", "{}-{}-{}-{}", "{}{}{}{}"]).format(
                number[:4], number[4:8], number[8:12], number[12:]
            )


def generate(seed: int = 20261128, per_type: int = 40) -> list[dict[str, object]]:
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    for entity_type, generator in GENERATORS.items():
        for _ in range(per_type):
            value = generator(rng)
            text = rng.choice(TEMPLATES[entity_type]).format(value)
            records.append({"text": text, "entities": [{"type": entity_type, "value": value}]})
    for _ in range(40):  # mixed texts: several entities, mentions and profile URLs among them
        picks = rng.sample(["EMAIL", "PHONE", "CARD", "IP", "IBAN"], 2)
        values = [(t, GENERATORS[t](rng)) for t in picks]
        handle = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 99)}"
        extra = rng.choice(
            [
                (f"DM @{handle}", "MENTION", f"@{handle}"),
                (f"see tiktok.com/@{handle}", "URL_HANDLE", f"tiktok.com/@{handle}"),
                (f"ig: instagram.com/{handle}", "URL_HANDLE", f"instagram.com/{handle}"),
                ("no socials", None, None),
            ]
        )
        text = f"hi! {picks[0].lower()} {values[0][1]} and {picks[1].lower()} {values[1][1]}; {extra[0]} #ad"
        entities = [{"type": t, "value": v} for t, v in values]
        if extra[1]:
            entities.append({"type": extra[1], "value": extra[2]})
        records.append({"text": text, "entities": entities})
    for text in NEAR_MISSES:
        records.append({"text": text, "entities": []})
    # Obfuscated addresses are addresses (issue #13): these two were near-misses before.
    for text, value in OBFUSCATED_EMAILS:
        records.append({"text": text, "entities": [{"type": "EMAIL", "value": value}]})
    for _ in range(20):
        records.append({"text": f"card test {_invalid_luhn_16(rng)} declined", "entities": []})
    for _ in range(10):  # a near-miss and a real value in one text
        value = gen_phone(rng)
        miss = rng.choice(NEAR_MISSES)
        records.append(
            {"text": f"{miss} — questions? {value}", "entities": [{"type": "PHONE", "value": value}]}
        )
    return records


def write_labelled(path: Path = DATA) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in generate():
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# --- evaluation ---------------------------------------------------------------------------------


def load_labelled(path: Path = DATA) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _spans(text: str, entities: list[Entity]) -> list[tuple[str, int, int]]:
    spans = []
    for entity in entities:
        start = text.find(entity["value"])
        assert start >= 0, (text, entity)
        spans.append((entity["type"], start, start + len(entity["value"])))
    return spans


def _same(a: tuple[int, int], b: tuple[int, int]) -> bool:
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    union = max(a[1], b[1]) - min(a[0], b[0])
    return overlap > 0 and overlap / union >= 0.75


def evaluate(scrubber: TextScrubber, records: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Per type: labelled, detected, true positives, recall, precision (span IoU >= 0.75)."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        text = str(record["text"])
        labels = _spans(text, record["entities"])  # type: ignore[arg-type]
        findings = scrubber.find(text)
        for entity_type, start, end in labels:
            row = counts.setdefault(
                entity_type, {"labelled": 0, "detected": 0, "tp_recall": 0, "tp_precision": 0}
            )
            row["labelled"] += 1
            if any(f.type == entity_type and _same((f.start, f.end), (start, end)) for f in findings):
                row["tp_recall"] += 1
        for finding in findings:
            row = counts.setdefault(
                finding.type, {"labelled": 0, "detected": 0, "tp_recall": 0, "tp_precision": 0}
            )
            row["detected"] += 1
            if any(t == finding.type and _same((finding.start, finding.end), (s, e)) for t, s, e in labels):
                row["tp_precision"] += 1
    table: dict[str, dict[str, float]] = {}
    for entity_type, row in sorted(counts.items()):
        table[entity_type] = {
            "labelled": row["labelled"],
            "detected": row["detected"],
            "recall": row["tp_recall"] / row["labelled"] if row["labelled"] else 1.0,
            "precision": row["tp_precision"] / row["detected"] if row["detected"] else 1.0,
        }
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    lines = [f"{'type':<11} {'labelled':>8} {'detected':>8} {'recall':>7} {'precision':>9}"]
    for entity_type, row in table.items():
        lines.append(
            f"{entity_type:<11} {row['labelled']:>8.0f} {row['detected']:>8.0f} "
            f"{row['recall']:>7.3f} {row['precision']:>9.3f}"
        )
    return "\n".join(lines)


def misses(scrubber: TextScrubber, records: list[dict[str, object]]) -> list[str]:
    """Human-readable false negatives/positives, for debugging a failing threshold."""
    out = []
    for record in records:
        text = str(record["text"])
        labels = _spans(text, record["entities"])  # type: ignore[arg-type]
        findings = scrubber.find(text)
        for t, s, e in labels:
            if not any(f.type == t and _same((f.start, f.end), (s, e)) for f in findings):
                out.append(f"FN {t}: {text[s:e]!r} in {text!r}")
        for f in findings:
            if not any(t == f.type and _same((f.start, f.end), (s, e)) for t, s, e in labels):
                out.append(f"FP {f.type}: {text[f.start : f.end]!r} in {text!r}")
    return out


# --- tests --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scrubber() -> TextScrubber:
    return TextScrubber(Pseudonymizer(b"quality-test-key-0123456789abcdef", "qt"))


def test_labelled_file_is_large_varied_and_reproducible() -> None:
    records = load_labelled()
    assert len(records) >= 200
    assert records == json.loads(json.dumps(generate())), (
        "regenerate: python -m ingest_platform_tests.test_privacy_quality"
    )
    types = {e["type"] for r in records for e in r["entities"]}  # type: ignore[attr-defined]
    assert {"EMAIL", "PHONE", "CARD", "IP", "IBAN"} <= types
    assert sum(1 for r in records if not r["entities"]) >= 50  # near-misses


def test_recall_and_precision_per_type(scrubber: TextScrubber) -> None:
    records = load_labelled()
    table = evaluate(scrubber, records)
    print("\n" + format_table(table))
    problems = misses(scrubber, records)
    for entity_type in ASSERTED_TYPES:
        row = table[entity_type]
        assert row["recall"] >= MIN_RECALL, (entity_type, row, problems)
        assert row["precision"] >= MIN_PRECISION, (entity_type, row, problems)


if __name__ == "__main__":
    write_labelled()
    records = load_labelled()
    print(f"wrote {len(records)} records to {DATA}", file=sys.stderr)
    scr = TextScrubber(Pseudonymizer(b"quality-test-key-0123456789abcdef", "qt"))
    print(format_table(evaluate(scr, records)))
    for line in misses(scr, records):
        print(line)
