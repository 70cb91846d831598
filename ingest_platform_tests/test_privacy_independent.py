"""Issue #13: PII detection measured on text nobody here wrote, and each weakness class fixed.

The corpus (``pii_corpus.py``) is generated from Faker, phonenumbers and schwifty; the targets
are recall >= 0.99 and precision >= 0.97 per type and not one leaked digit run or local part,
on the development seed and on seeds the detector was not tuned on. ``HYPOTHESIS_PROFILE=long``
(the repo's switch for longer runs) adds more seeds.
"""

from __future__ import annotations

import functools
import os

import phonenumbers
import pytest

from ingest_platform.privacy.text_scrubber import TextScrubber
from ingest_platform.privacy.tokens import Pseudonymizer
from ingest_platform_tests import pii_corpus

MIN_RECALL = 0.99
MIN_PRECISION = 0.97
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
SEEDS = [pii_corpus.DEFAULT_SEED, 7] + ([42, 2026, 99991] if LONG else [])
NBSP_IBAN = "GB82\u00a0WEST\u00a01234\u00a05698\u00a07654\u00a032"


corpus = functools.cache(pii_corpus.generate)


@pytest.fixture(scope="module")
def scrubber() -> TextScrubber:
    return TextScrubber(Pseudonymizer(b"independent-corpus-key-0123456789", "ind"))


def test_corpus_is_large_deterministic_and_drawn_from_other_libraries() -> None:
    records = corpus(pii_corpus.DEFAULT_SEED)
    again = pii_corpus.generate(pii_corpus.DEFAULT_SEED)
    assert len(records) >= 5000
    assert [r.text for r in records] == [r.text for r in again]
    assert [r.text for r in records] != [r.text for r in corpus(7)]
    sources = {r.source for r in records}
    assert len({s.split(":")[1] for s in sources if s.startswith("faker:") and s.count(":") == 2}) >= 20
    # every region x number type with an example, in all four formats
    example_sources = {s for s in sources if s.startswith("phonenumbers:")}
    regions = {s.split(":")[1] for s in example_sources}
    assert regions == set(phonenumbers.SUPPORTED_REGIONS)
    assert {s.rsplit(":", 1)[1] for s in example_sources} == {"0", "1", "2", "3"}
    ibans = {s.split(":")[1] for s in sources if s.startswith("schwifty:")}
    assert {"LY", "RU", "DE", "BR", "SV"} <= ibans and len(ibans) >= 100
    types = {e.type for r in records for e in r.entities}
    assert set(pii_corpus.ASSERTED_TYPES) <= types
    assert sum(1 for r in records if not r.entities) >= 1000  # negatives


@pytest.mark.parametrize("seed", SEEDS)
def test_independent_corpus_meets_the_targets(scrubber: TextScrubber, seed: int) -> None:
    table, problems = pii_corpus.score(scrubber.find, corpus(seed))
    print(f"\nseed {seed}\n" + pii_corpus.format_scores(table))
    failures = [
        (kind, row)
        for kind in pii_corpus.ASSERTED_TYPES
        for row in [table[kind]]
        if row.recall < MIN_RECALL or row.precision < MIN_PRECISION
    ]
    leaks = sum(row.leaks for row in table.values())
    assert not failures and leaks == 0, (failures, leaks, problems[:40])


def test_span_scoring_counts_partial_cover_as_a_miss_and_a_leak() -> None:
    """The scorer itself: a finding that leaves digits of the value visible is no detection."""

    class F:
        def __init__(self, kind: str, start: int, end: int) -> None:
            self.type, self.start, self.end = kind, start, end

    text = "call 415-555-0123 212-555-0188"
    record = pii_corpus._fill("call {} {}", [("PHONE", "415-555-0123"), ("PHONE", "212-555-0188")], "t")
    assert record.text == text
    merged_card = [F("CARD", 5, 25)]  # the old failure: one "card" leaving "-0188" visible
    table, _ = pii_corpus.score(lambda _: merged_card, [record])
    assert table["PHONE"].found == 0 and table["PHONE"].leaks == 1 and table["CARD"].precision == 0.0
    exact = [F("PHONE", 5, 17), F("PHONE", 18, 30)]
    table, problems = pii_corpus.score(lambda _: exact, [record])
    assert table["PHONE"].recall == 1.0 and table["PHONE"].leaks == 0 and not problems


# --- the weakness classes of the issue, each with its own examples --------------------------------


@pytest.mark.parametrize(
    ("text", "values"),
    [
        # a number right before a phone; two phones separated by a space
        ("Suite 400 415-555-0123", [("PHONE", "415-555-0123")]),
        ("Austin, TX 78701 512-974-2000", [("PHONE", "512-974-2000")]),
        ("call 415-555-0123 212-555-0188", [("PHONE", "415-555-0123"), ("PHONE", "212-555-0188")]),
        ("call 415 555 0123 212 555 0188", [("PHONE", "415 555 0123"), ("PHONE", "212 555 0188")]),
        # IPv4 right after "("
        ("login from (203.0.113.5)", [("IP", "203.0.113.5")]),
        # national mobiles of other regions, with a cue; "089/12345678"; country code without "+"
        ("WeChat/tel: 138 0013 8000", [("PHONE", "138 0013 8000")]),
        ("電話 090-1234-5678", [("PHONE", "090-1234-5678")]),
        ("mobile 050-234-5678", [("PHONE", "050-234-5678")]),
        ("cell (604) 555-0199 or 0412 345 678", [("PHONE", "(604) 555-0199"), ("PHONE", "0412 345 678")]),
        ("Tel. 089/12345678", [("PHONE", "089/12345678")]),
        ("whatsapp 4915123456789", [("PHONE", "4915123456789")]),
        # cards with dots or no-break spaces
        ("card 4111.1111.1111.1111", [("CARD", "4111.1111.1111.1111")]),
        ("card 5555\u00a05555\u00a05555\u00a04444", [("CARD", "5555\u00a05555\u00a05555\u00a04444")]),
        # IBANs: registry countries, lower case, dashes, no-break spaces
        ("to LY83002048000020100120361", [("IBAN", "LY83002048000020100120361")]),
        ("to RU0204452560040702810412345678901", [("IBAN", "RU0204452560040702810412345678901")]),
        ("to de89 3704 0044 0532 0130 00", [("IBAN", "de89 3704 0044 0532 0130 00")]),
        ("to DE89-3704-0044-0532-0130-00", [("IBAN", "DE89-3704-0044-0532-0130-00")]),
        (f"to {NBSP_IBAN}", [("IBAN", NBSP_IBAN)]),
        # e-mails: IDN, Unicode local parts, obfuscations
        ("write to jane@bücher.de", [("EMAIL", "jane@bücher.de")]),
        ("write to jane@xn--bcher-kva.de", [("EMAIL", "jane@xn--bcher-kva.de")]),
        ("write to даша@пример.рф", [("EMAIL", "даша@пример.рф")]),
        ("write to jane at example dot com", [("EMAIL", "jane at example dot com")]),
        ("write to jane(at)example.com", [("EMAIL", "jane(at)example.com")]),
        ("write to jane＠example.com", [("EMAIL", "jane＠example.com")]),
        ("write to jane%40example.com", [("EMAIL", "jane%40example.com")]),
        ("write to jane&#64;example.com", [("EMAIL", "jane&#64;example.com")]),
        ("https://x.example/confirm?email=jane%40example.com&x=1", [("EMAIL", "jane%40example.com")]),
        # IPv6 with a zone or a prefix length
        ("via fe80::1ff:fe23:4567:890a%eth0 now", [("IP", "fe80::1ff:fe23:4567:890a%eth0")]),
        ("net 2001:db8:85a3::8a2e:370:7334/64 ok", [("IP", "2001:db8:85a3::8a2e:370:7334/64")]),
        # profile URLs of more sites
        ("see github.com/janedoe", [("URL_HANDLE", "janedoe")]),
        ("see https://www.reddit.com/user/jane_doe", [("URL_HANDLE", "jane_doe")]),
        ("see t.me/janedoe", [("URL_HANDLE", "janedoe")]),
        ("see https://vk.com/janedoe", [("URL_HANDLE", "janedoe")]),
        ("see https://medium.com/@janedoe", [("URL_HANDLE", "janedoe")]),
        ("see https://mastodon.social/@janedoe", [("URL_HANDLE", "janedoe")]),
    ],
)
def test_each_weakness_class_of_the_issue_is_fixed(
    scrubber: TextScrubber, text: str, values: list[tuple[str, str]]
) -> None:
    findings = scrubber.find(text)
    for kind, value in values:
        start = text.index(value)
        entity = pii_corpus.Entity(kind, start, start + len(value), value)
        assert any(f.type == kind and pii_corpus._covers((f.start, f.end), entity, text) for f in findings), (
            text,
            findings,
        )
    assert len(findings) == len(values), findings


@pytest.mark.parametrize(
    "text",
    [
        "Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36",
        "upgraded to 2.0.0.1 today",
        "IMEI 356938035643809",
        "bank ref 2024 0517 1234 0000",
        "npm i @babel/core --save",
        "ISBN 978-0-306-40615-7, EAN 4006381333931",
        "USPS 9400 1000 0000 0000 0000 00",
        "at 51.5074, -0.1278",
        "meet at home.Then we go",
    ],
)
def test_lookalikes_from_the_issue_are_not_personal_data(scrubber: TextScrubber, text: str) -> None:
    assert scrubber.find(text) == []


def test_phone_regions_are_configurable_and_checked() -> None:
    pseudo = Pseudonymizer(b"independent-corpus-key-0123456789", "ind")
    japan = TextScrubber(pseudo, default_region="JP", extra_phone_regions=["AU"])
    # A Japanese mobile written nationally with no cue is read in the configured regions only.
    assert [f.type for f in japan.find("ping 090-1234-5678")] == ["PHONE"]
    assert TextScrubber(pseudo, "US", extra_phone_regions=()).find("ping 090-1234-5678") == []
    assert japan.find("ping 090-1234-5678")[0].normalised == "+819012345678"
    with pytest.raises(ValueError, match="unknown phone region"):
        TextScrubber(pseudo, default_region="XX")


@pytest.mark.usefixtures("dagster_home")
def test_privacy_resource_passes_its_phone_regions_to_the_scrubber() -> None:
    from ingest_platform.dagster_layer.resources import PrivacyResource

    resource = PrivacyResource(hmac_key="r" * 48, default_phone_region="JP", extra_phone_regions=["AU"])
    assert (resource.scrubber.default_region, resource.scrubber.extra_phone_regions) == ("JP", ("AU",))
    assert [f.normalised for f in resource.scrubber.find("ping 0412 345 678")] == ["+61412345678"]
