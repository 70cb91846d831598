"""Free-text PII scrubbing: one trigger-anchored regex pass plus validators, typed keyed tokens.

``TextScrubber.scrub("mail jane@x.com")`` gives ``"mail [EMAIL:ab12cd34]"``. The tag is the
start of the same keyed HMAC the column tokens use (over the same normalised value), so equal
values map to equal tags across texts and tables, and nothing can be reversed without the key.

Detected, and the rules (issue #13; measured on ``ingest_platform_tests/pii_corpus.py``, text
from Faker, phonenumbers and schwifty rather than from us):

* EMAIL: ASCII, Unicode and punycode (``xn--``) domains and local parts; obfuscated spellings
  ``jane at example dot com``, ``(at)``/``[at]``, full-width ``＠``, ``%40`` (query strings),
  ``&#64;``. A plain `` at `` with a real dot needs a common TLD ("meet at home.Then" is not).
* PHONE: libphonenumber-validated. A run of digits and separators is split into groups and
  read left to right, so a number before a phone ("Suite 400 415-555-0123") or two phones side
  by side are separate. National spellings are read in ``default_region`` (``PRIVACY_PHONE_
  REGION``) and, when they open with a trunk "0" or a bracket, in ``extra_phone_regions``
  (``PRIVACY_PHONE_REGIONS``). After a cue word ("tel.", "call", "WhatsApp", "Handy", "電話",
  a phone emoji) every region is tried, numbers may be 4-6 digits (small islands) and a
  country code may come without "+". After "order", "invoice", "ISBN", "IMEI"... the first
  number of the run is a reference, not a phone.
* CARD: 12-19 digits, Luhn, *and* an issued IIN range with that network's length (IMEIs and
  date-led bank references pass Luhn but no range). Written as one run or in 4-led groups with
  one separator (space, dash, dot, no-break space); never the head or tail of a longer
  4-4-4... number (parcel numbers), except two 16-digit numbers side by side.
* IBAN: any case, separators space/dash/no-break space; the country length comes from the
  SWIFT registry schwifty ships (every country it knows), then ISO 7064 mod-97.
* IP: IPv4 (not after "Product/" as in ``Chrome/120.0.0.0``; all-one-digit "2.0.0.1" only
  after an IP cue word), IPv6 via ``ipaddress``, with a ``%zone`` and ``/prefix`` covered.
* URL_HANDLE: profile URLs of TikTok, Instagram, Facebook, X, LinkedIn, GitHub, Reddit,
  Telegram (``t.me``), VK, Medium, and ``/@name`` on any host (Mastodon). MENTION: ``@name``,
  not ``@scope/package``.

Speed is the point (captions and notes arrive by the million; Presidio runs one regex pass per
entity type plus a phonenumbers matcher per region over every text):

* every entity has a rare trigger character: ``@`` (e-mail, mention), ``/`` (profile URLs),
  a digit or ``+`` (IPv4, runs of digits, IBAN check digits). The combined pattern *consumes*
  that character first, so ``re`` skips everything else in a tight C loop; the parts before the
  trigger (an e-mail's local part, an IBAN's country code, a URL's domain) are checked with
  look-behinds. Runs need 4 digits (a bounded look-ahead) before any Python runs;
* IPv6 gets its own pass, only when the text contains ``:``; obfuscated e-mails are found from
  literal pieces (``str.find``) confirmed by a regex;
* validators (Luhn + IIN, mod-97, ipaddress, phonenumbers) run only on candidates; a window of
  digit groups is validated only if some configured region has numbers of that many digits;
* ``scrub_series`` joins a whole column with NUL separators and scans it once, so texts with
  nothing to scrub cost no Python code at all.

Hostile input: every quantifier is bounded or over one character class with a fixed end, runs
are at most 59 characters and a phone window at most 8 groups, and the every-region check of a
cue applies to the number right after the cue only, so work per character is bounded and no
input raises (``test_privacy_hostile_scrub.py``; MB/s in ``benchmarks/privacy_throughput.py``).
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import pandas as pd
import phonenumbers

from ingest_platform.privacy.tokens import Pseudonymizer, valid_e164

ENTITY_TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "CARD", "IBAN", "IP", "URL_HANDLE", "MENTION")

_TOKEN_KIND = {
    "EMAIL": "email",
    "PHONE": "phone",
    "CARD": "card",
    "IBAN": "iban",
    "IP": "ip",
    "URL_HANDLE": "handle",
    "MENTION": "handle",
}

# --- candidate patterns ----------------------------------------------------------------------

_B = r"(?<![\w\-])"  # a domain must not be the tail of a longer word ("notx.com")
# Profile URLs: "<domain>/@name" and "<domain>/name" (the domain is checked by look-behind).
_URL_AT_DOMAINS = (r"tiktok\.com", r"threads\.net", r"youtube\.com", r"medium\.com")
_URL_PLAIN_DOMAINS = (
    r"instagram\.com", r"facebook\.com", r"fb\.com", r"twitter\.com", r"x\.com", r"linkedin\.com/in",
    r"snapchat\.com/add", r"pinterest\.com", r"github\.com", r"t\.me", r"telegram\.me", r"vk\.com",
    r"reddit\.com/user", r"reddit\.com/u",
)  # fmt: skip
_URL_AT = "|".join(f"(?<={_B}(?i:{d})/)" for d in _URL_AT_DOMAINS)
_URL_PLAIN = "|".join(f"(?<={_B}(?i:{d})/)" for d in _URL_PLAIN_DOMAINS)
# Each branch starts *after* the consumed trigger character; look-behinds see the trigger.
# Branches are grouped under one cheap look-behind per trigger kind, and digit branches only
# fire at the start of a digit run, so the many digits inside dates and counts cost one check.
# Every quantifier is bounded or over one character class with a fixed end, so no input makes
# the engine backtrack more than a constant per trigger character (see test_privacy_hostile).
_MAIN = re.compile(
    r"[@/\d+](?:"
    r"(?<=@)(?:"
    r"(?<=[\w.%+\-\u0300-\u036f\u0900-\u0dff\u0e00-\u0e7f]@)"
    r"(?P<EMAIL>(?:[^\W_](?:[\w\-\u0300-\u036f\u0900-\u0dff\u0e00-\u0e7f]{0,61}[^\W_])?\.){1,8}"
    r"(?:[^\W\d_]{2,24}|[Xx][Nn]--[A-Za-z0-9\-]{1,59})(?![\w\-]|\.[^\W_]))"
    # "@babel/core" is an npm scope, not a person.
    r"|(?<![\w@.\-/+]@)(?P<MENTION>[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?)(?!\w|/\w))"
    rf"|(?<=/)(?:(?:{_URL_AT})(?P<URL_AT>@[A-Za-z0-9_.\-]{{1,64}})"
    rf"|(?:{_URL_PLAIN})(?P<URL_PLAIN>@?[A-Za-z0-9_.\-]{{1,64}}(?:\?id=\d+)?)"
    # "/@name" on any other host: Mastodon instances, self-hosted blogs.
    r"|(?<=[\w\-]/)(?P<URL_ANY>@[A-Za-z0-9_.\-]{1,64}))"
    r"|(?<=[\d+])(?<!\d.)(?:"
    # "Chrome/120.0.0.0" is a product version (RFC 9110 product token), not an address.
    r"(?<=\d)(?<![\w.].)(?<![^\W\d_]/.)(?P<IPV4>\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d))"
    r"(?:/\d{1,2}(?!\w|\.\d))?"
    # IBAN: two letters (any case), two check digits; the rest is checked in Python, so the
    # branch only looks ahead and the digits after it stay visible to the other branches.
    r"|(?<=(?<![^\W\d_])[A-Za-z]{2}\d)(?=(?P<IBAN>(?:[ \-\u00a0]?[A-Za-z0-9]){10,34}))"
    # A run of digits and phone/card separators. Python splits it into cards, phones and
    # addresses ("Suite 400 415-555-0123", two phones side by side, a date then a phone).
    # (at least 4 digits: shorter numbers are never personal data on their own)
    r"|(?<![\w+\-/.#,%&].)(?=(?:[ \-.()/\u00a0]{0,3}\d){3})(?P<RUN>[\d \-.()/\u00a0]{0,58})"
    r"))"
)
# Anchored at a candidate start found from a ":" (see _find_ipv6), so no trigger character.
# A zone ("%eth0") or prefix length ("/64") is part of the written address.
_IPV6 = re.compile(
    r"(?<![\w.])(?<![0-9A-Fa-f:]:)(?P<address>(?:[0-9A-Fa-f]{1,4}:|::)[0-9A-Fa-f:]{2,40}"
    r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?)(?![\w:]|\.\d)(?:%[\w.\-]{1,15})?(?:/\d{1,3}(?!\d))?"
)
_HEX = frozenset("0123456789abcdefABCDEF")
_URL_PREFIX = re.compile(
    r"(?i)(?<![\w.\-])(?:https?://)?(?:(?:www|m|vm|mobile|web|mbasic|old|new)\.)?"
    rf"(?:{'|'.join(_URL_AT_DOMAINS + _URL_PLAIN_DOMAINS)})\Z"
)
# Combining marks (Devanagari, Thai... vowel signs) are not \w but belong to the word.
_MARKS = "\u0300-\u036f\u0900-\u0dff\u0e00-\u0e7f\u1000-\u109f"
_EMAIL_LOCAL_REVERSED = re.compile(rf"[\w.%+\-{_MARKS}]{{1,64}}")
_OUR_TAG = re.compile(r"\[(?:EMAIL|PHONE|CARD|IBAN|IP|URL_HANDLE|MENTION):\Z")
_SEPARATOR = "\x00"  # joins a column for one scan; no pattern can match across it

# Obfuscated e-mail addresses: "jane at example dot com", "jane(at)example.com", "jane＠x.com",
# "jane%40x.com" (URL-encoded, query strings), "jane&#64;x.com" (HTML). The marker is found
# first; the local part is read backwards from it and the domain forwards.
_OBFUSCATED_AT = re.compile(
    r"(?<=[\w.])(?:%40|&#0{0,3}64;|&commat;|\uff20|\ufe6b"
    r"|[ \t]{0,2}[(\[{<][ \t]{0,2}(?:at|AT|At)[ \t]{0,2}[)\]}>][ \t]{0,2}"
    r"|[ \t]{1,2}(?:at|AT)[ \t]{1,2})(?=[^\W_])"
)
# Where a marker can be: ``str.find`` on literal pieces skips text at memory speed (a regex
# without a literal prefix tries every position, ~9 MB/s), brackets are rare enough for a
# character-set-led regex. Each hit is confirmed by _OBFUSCATED_AT at or just before it.
_OBFUSCATED_LITERALS = (" at ", " AT ", "%40", "&", "\t", "\uff20", "\ufe6b")
_BRACKETED_AT = re.compile(r"[(\[{<][ \t]{0,2}(?:at|AT|At)[ \t]{0,2}[)\]}>]")


def _obfuscated_markers(text: str) -> list[re.Match[str]]:
    """The obfuscated "@" markers in ``text``, in order."""
    hits: set[int] = set()
    for literal in _OBFUSCATED_LITERALS:
        hit = text.find(literal)
        while hit >= 0:
            # " at " needs a word before and after it ("mail jane at x dot com"), which most
            # English "at"s also have, but a cheap look saves the regex for the rest.
            if literal[0] != " " or (hit > 0 and text[hit + 4 : hit + 5].isalnum()):
                hits.add(hit)
            hit = text.find(literal, hit + 1)
    if "(" in text or "[" in text or "{" in text or "<" in text:
        hits.update(match.start() for match in _BRACKETED_AT.finditer(text))
    markers: list[re.Match[str]] = []
    for hit in sorted(hits):
        # The marker starts at the hit or up to 3 blanks before it (" [at] ", "\tat\t").
        for candidate in range(hit, max(-1, hit - 4), -1):
            if candidate < hit and text[candidate] not in " \t":
                break
            if markers and candidate < markers[-1].end():
                break
            match = _OBFUSCATED_AT.match(text, candidate)
            if match is not None:
                markers.append(match)
                break
    return markers


_OBFUSCATED_DOT = (
    r"(?:\.|[ \t]{0,2}[(\[{<][ \t]{0,2}(?:dot|DOT|\.)[ \t]{0,2}[)\]}>][ \t]{0,2}"
    r"|[ \t]{1,2}(?:dot|DOT)[ \t]{1,2})"
)
_LABEL = r"[^\W_](?:[\w\-]{0,61}[^\W_])?"
_OBFUSCATED_DOMAIN = re.compile(rf"{_LABEL}(?:{_OBFUSCATED_DOT}{_LABEL}){{1,6}}(?![\w\-])")
_DOT_SPLIT = re.compile(_OBFUSCATED_DOT)
# Top-level domains common enough that "jane at example.com" (a plain " at ", a real dot) is read
# as an address; with a spelled-out "dot" or a bracketed "(at)" any alphabetic TLD is.
# fmt: off
_COMMON_TLDS = frozenset((
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "co", "me", "app", "dev",
    "ai", "ly", "tv", "cc", "us", "uk", "de", "fr", "es", "it", "nl", "be", "ch", "at", "ru", "ua",
    "pl", "cz", "se", "no", "dk", "fi", "br", "mx", "ar", "in", "cn", "jp", "kr", "au", "ca", "nz",
    "ie", "pt", "gr", "tr", "il", "za", "eu", "asia", "online", "site", "xyz", "email", "mail",
    "shop", "store",
))
# fmt: on

# Path segments that are site features, not people ("instagram.com/explore").
# fmt: off
_URL_RESERVED = frozenset((
    "p", "reel", "reels", "explore", "stories", "story", "tv", "groups", "group", "pages", "events",
    "watch", "share", "sharer", "sharer.php", "hashtag", "tag", "tags", "video", "videos", "photo",
    "photos", "login", "signup", "about", "help", "legal", "privacy", "terms", "search", "home",
    "intent", "i", "music", "discover", "live", "channel", "c", "user", "shorts", "feed",
    "notifications", "settings", "accounts", "direct", "marketplace", "gaming", "business", "ads",
    "jobs", "company", "school", "pub", "plugins", "dialog", "l.php", "profile.php", "permalink.php",
    "watch.php", "messages", "orgs", "topics", "features", "pricing", "sponsors", "trending",
    "collections", "joinchat", "s", "addstickers", "r", "u", "wall", "im", "tagged", "new",
))
# fmt: on
_FILE_TLDS = frozenset(
    ["png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "js", "css", "mp4", "mov", "pdf"]
)

# Calendar dates only (years 1900-2099, real day/month numbers): "54-11-2345" is part of a phone.
_DATE = re.compile(
    r"(?<!\d)(?:(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|[12]\d|3[01])[-./](?:19|20)\d\d)(?!\d)"
)
_RUN_GROUP = re.compile(r"\d+")
_IPV4_IN_RUN = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d])(?!\.\d)(?:/\d{1,2}(?!\d))?")
# The words before a run of digits, read once per run (a regex per question would cost more
# than the rest of the run's handling). Words are letters only, so "reorder" is not "order".
_REVERSED_WORD = re.compile(r"[^\w]{0,4}([^\W\d_]{1,30})")
# Digits right after these words are references, not phone numbers (unless written +CC).
# fmt: off
_NOT_A_PHONE_WORDS = frozenset((
    "order", "invoice", "inv", "ref", "reference", "tracking", "track", "sku", "ticket", "case",
    "account", "acct", "po", "id", "serial", "batch", "lot", "item", "product", "model", "isbn", "ean",
    "gtin", "upc", "iban", "card", "views", "likes", "followers", "imei", "meid", "iccid", "usps",
    "ups", "fedex", "dhl", "awb", "parcel", "shipment", "receipt", "txn", "transaction", "device",
    "coord", "coords", "lat", "lon", "lng", "latitude", "longitude",
))
# fmt: on
# ... and article, parcel or device numbers even when they pass Luhn.
# fmt: off
_NOT_A_CARD_WORDS = frozenset((
    "isbn", "ean", "gtin", "upc", "imei", "meid", "iccid", "tracking", "track", "usps", "ups", "fedex",
    "dhl", "awb", "serial", "sn", "parcel", "shipment", "ref", "reference", "invoice", "order",
))
# fmt: on
# fmt: off
_NUMBER_WORDS = frozenset((
    "no", "nr", "num", "number", "id", "code",
))
# fmt: on
# Words that say "a phone number follows": with one of them, a number written nationally is
# tried against every region's numbering plan, shorter numbers (4-6 digits, small islands)
# and country codes without "+" ("WhatsApp 4915123456789") count too.
# fmt: off
_CUE_WORDS = frozenset((
    "ring", "fax", "wa", "sms", "text", "viber", "signal", "handy", "hotline", "dial", "number", "ph",
    "tlf", "tfn", "gsm", "cel", "celular",
    "nummer", "numero", "numéro", "téléphone", "telefono", "teléfono", "телефон", "тел",
))
# fmt: on
_CUE_STEMS = ("tel", "phone", "call", "mob", "cell", "whatsapp", "моб", "телефон", "fone", "móvil", "movil")
_CUE_ENDINGS = ("電話", "携帯", "手机", "电话", "전화")
_CUE_SYMBOLS = ("☎", "📞", "📱")
# fmt: off
_CUE_FILLERS = frozenset((
    "me", "us", "at", "on", "via", "to", "or", "the", "my", "our", "no", "nr", "is", "под",
))
# fmt: on


class _RunContext(NamedTuple):
    not_a_phone: bool
    not_a_card: bool
    cue: bool


_NO_CONTEXT = _RunContext(False, False, False)


def _run_context(text: str, start: int) -> _RunContext:
    """What the few words right before ``start`` say about the digits that follow.

    Read backwards: the window is reversed and words are matched from its start, each at most
    4 non-alphanumeric characters from the next ("order no. 4412", "call me at: 415...").
    """
    low = _context_start(text, start, 40)
    reverse = text[low:start][::-1]
    cue = any(symbol in reverse[:8] for symbol in _CUE_SYMBOLS)
    match = _REVERSED_WORD.match(reverse)
    if match is None:
        return _RunContext(False, False, cue)
    last = match.group(1)[::-1].lower()
    subject = last
    if last in _NUMBER_WORDS:  # "order no. 4412": the word before "no." decides
        before = _REVERSED_WORD.match(reverse, match.end())
        if before is not None:
            subject = before.group(1)[::-1].lower()
    not_a_phone = subject in _NOT_A_PHONE_WORDS or last in _NOT_A_PHONE_WORDS
    not_a_card = subject in _NOT_A_CARD_WORDS or last in _NOT_A_CARD_WORDS
    word = last
    for _ in range(4):  # the cue itself, behind up to 3 fillers ("call me at", "tel. no")
        if cue or not_a_phone:
            break
        if word in _CUE_WORDS or word.startswith(_CUE_STEMS) or word.endswith(_CUE_ENDINGS):
            cue = True
            break
        previous = _REVERSED_WORD.match(reverse, match.end())
        if word == "app" and previous is not None and previous.group(1).lower() == "stahw":  # "whats app"
            cue = True
            break
        if word not in _CUE_FILLERS or previous is None:
            break
        match, word = previous, previous.group(1)[::-1].lower()
    return _RunContext(not_a_phone, not_a_card, cue and not not_a_phone)


_IP_CUE = re.compile(r"(?i)\b(?:ip|ipv4|addr\w{0,5}|host|from|server|client|login|peer|remote)\W{0,4}$")
# "version 4.0.0.1" is a four-part version number, not an address.
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:v|ver|version|build|release|rev|firmware|fw)\.?\s*$")


@functools.cache
def iban_lengths() -> dict[str, int]:
    """IBAN length per country from the official SWIFT registry as schwifty ships it (loaded on
    the first candidate: most texts never need it)."""
    from importlib.resources import files

    folder = files("schwifty").joinpath("iban_registry")
    lengths: dict[str, int] = {}
    for name in ("generated.json", "overwrite.json"):  # overwrite.json corrects generated.json
        for country, spec in json.loads(folder.joinpath(name).read_text(encoding="utf-8")).items():
            if "iban_length" in spec:
                lengths[country] = int(spec["iban_length"])
    return lengths


def _national_digit_counts(regions: Sequence[str]) -> frozenset[int]:
    counts: set[int] = set()
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        trunk = len(metadata.national_prefix or "")
        for length in metadata.general_desc.possible_length or ():
            counts.update((length, length + trunk))
    return frozenset(counts)


class _RegionPlan(NamedTuple):
    region: str
    trunk: str
    lengths: frozenset[int]
    general: re.Pattern[str]


@functools.cache
def _region_plans() -> tuple[_RegionPlan, ...]:
    """Per calling code: the main region, its trunk prefix, number lengths and general number
    pattern. A national number is checked against a plan's length and pattern (one C regex)
    before libphonenumber's full validity check, so a cued number costs ~215 regex matches."""
    plans = []
    for region in _all_phone_regions():
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.general_desc.national_number_pattern is None:
            continue
        plans.append(
            _RegionPlan(
                region,
                metadata.national_prefix or "",
                frozenset(metadata.general_desc.possible_length or ()),
                re.compile(metadata.general_desc.national_number_pattern),
            )
        )
    return tuple(plans)


@functools.cache
def _all_phone_regions() -> tuple[str, ...]:
    """One region per country calling code, in code order: the validity check of a number of
    that code covers all its regions (the 25 NANP regions of +1 are one check)."""
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items())
    return tuple(regions[0] for _, regions in codes if regions[0] != "001")


# --- validators -------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        n = ord(char) - 48
        if position & 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def card_network_ok(digits: str) -> bool:
    """Whether ``digits`` lies in an issued card range (IIN) and has that network's length.

    Luhn alone passes one random number in ten: IMEIs, bank references ("2024 0517 1234
    0000"), parcel numbers. Ranges: Visa 4; Mastercard 51-55, 2221-2720; Amex 34/37; Discover
    6011, 644-649, 65; JCB 3528-3589 (and the old 15-digit 1800/2131); Diners 300-305, 3095,
    36, 38, 39; UnionPay 62, 81; Mir 2200-2204; Maestro 50, 56-69, 0604; RuPay 60, 652, 508;
    PROSTIR 9804; Troy 9792. Maestro's 50, 56-69 is the scheme's whole block, as issuers use it.
    """
    n = len(digits)
    if not 12 <= n <= 19:
        return False
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if p4 in (1800, 2131):
        return n == 15
    if 2200 <= p4 <= 2204 or 3528 <= p4 <= 3589 or p4 in (9804, 9792):
        return n >= 16
    if 300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39):
        return n >= 14
    if p2 == 35:  # JCB 3528-3589; issuers' test ranges and Faker use the whole 35 block
        return n >= 16
    if p2 in (62, 81, 65) or p4 == 6011 or 644 <= p3 <= 649:
        return n >= 16
    return p2 == 50 or 56 <= p2 <= 69 or p4 == 604  # Maestro: 12-19 digits


def card_ok(digits: str) -> bool:
    return card_network_ok(digits) and luhn_ok(digits)


def iban_ok(compact: str) -> bool:
    """Country length (official registry) and ISO 7064 mod-97 check of an IBAN without spaces."""
    compact = compact.upper()
    if iban_lengths().get(compact[:2]) != len(compact) or not compact.isalnum() or not compact.isascii():
        return False
    if not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban_end(candidate: str) -> tuple[int, str] | None:
    """(end offset, compact IBAN) of the IBAN at the start of ``candidate``, if any."""
    compact = "".join(c for c in candidate if c.isalnum()).upper()
    length = iban_lengths().get(compact[:2])
    if length is None or len(compact) < length or not iban_ok(compact[:length]):
        return None
    seen = 0
    for index, char in enumerate(candidate):
        if char.isalnum():
            seen += 1
            if seen == length:
                end = index + 1
                # A cut inside a group is a longer string, not an IBAN.
                if end < len(candidate) and candidate[end].isalnum():
                    return None
                return end, compact[:length]
    return None


class Finding(NamedTuple):
    """One detected value: its type, span in the text and the normalised value hashed."""

    type: str
    start: int
    end: int
    normalised: str


class ScrubResult(NamedTuple):
    text: str
    found: dict[str, int]

    @property
    def changed(self) -> bool:
        return bool(self.found)


class TextScrubber:
    """Replace personal data in free text by typed keyed tokens like ``[EMAIL:ab12cd34]``.

    ``default_region`` (``PRIVACY_PHONE_REGION``) reads nationally written numbers with no cue;
    ``extra_phone_regions`` (``PRIVACY_PHONE_REGIONS``) are also tried for national spellings
    that look like phones (trunk "0", area code in brackets). With a cue word ("tel.", "call",
    "WhatsApp"...) every region is tried.
    """

    def __init__(
        self,
        pseudonymizer: Pseudonymizer,
        default_region: str = "US",
        *,
        extra_phone_regions: Sequence[str] = ("GB", "DE", "FR", "IN", "BR"),
        tag_length: int = 8,
    ) -> None:
        regions = [default_region.strip().upper(), *(r.strip().upper() for r in extra_phone_regions)]
        unknown = sorted({r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS})
        if unknown:
            raise ValueError(f"unknown phone region(s) {unknown}: use ISO 3166 codes such as 'US', 'GB'")
        self.pseudonymizer = pseudonymizer
        self.default_region = regions[0]
        self.extra_phone_regions = tuple(dict.fromkeys(r for r in regions[1:] if r != regions[0]))
        self.tag_length = tag_length
        self._phone_cache: dict[tuple[str, bool], str | None] = {}
        # Digit counts a national spelling can have (number lengths, with or without the trunk
        # prefix): windows of other lengths are not worth a libphonenumber call. Bare runs are
        # read in the default region only, runs opening with "0" or "(" in all configured ones.
        self._default_lengths = _national_digit_counts((self.default_region,))
        self._configured_lengths = _national_digit_counts((self.default_region, *self.extra_phone_regions))

    # --- detection -------------------------------------------------------------------------

    def find(self, text: str) -> list[Finding]:
        """Every personal value in ``text``, in order, non-overlapping."""
        findings = self._find_main(text)
        if ":" in text:
            ipv6 = self._find_ipv6(text)
            if ipv6:
                findings = _merge(findings, ipv6)
        markers = _obfuscated_markers(text)
        if markers:
            obfuscated = self._find_obfuscated_emails(text, markers)
            if obfuscated:
                findings = _merge(findings, obfuscated)
        return findings

    def _find_main(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        for match in _MAIN.finditer(text):
            kind = match.lastgroup
            trigger = match.start()
            if trigger and text[trigger - 1] == ":" and _OUR_TAG.search(text, max(0, trigger - 13), trigger):
                continue  # the hex of one of our own tags ("[PHONE:12345678]"): scrubbing is idempotent
            if kind == "RUN":
                self._add_run(text, trigger, match.end(), findings)
            elif kind == "MENTION":
                findings.append(Finding("MENTION", trigger, match.end(), match.group(kind).lower()))
            elif kind == "EMAIL":
                domain = match.group(kind)
                if domain.rsplit(".", 1)[-1].lower() in _FILE_TLDS:  # icon@2x.png
                    continue
                window = text[max(0, trigger - 64) : trigger]
                local = _EMAIL_LOCAL_REVERSED.match(window[::-1])
                if local is None:
                    continue
                start = trigger - local.end()
                findings.append(Finding("EMAIL", start, match.end(), text[start : match.end()].lower()))
            elif kind == "IPV4":
                address = self._ipv4_at(text, trigger, text[trigger : match.end(kind)])
                if address is not None:
                    findings.append(Finding("IP", trigger, match.end(), address))
            elif kind == "IBAN":
                start = trigger - 2
                iban = _iban_end(text[start : match.end(kind)])
                if iban is not None:
                    findings.append(Finding("IBAN", start, start + iban[0], iban[1]))
            elif kind == "URL_ANY":  # "/@name" on a host we do not list: tag the "@name" part
                word_start = max(text.rfind(" ", 0, trigger), text.rfind("\n", 0, trigger), trigger - 200)
                handle = _url_handle(match.group(kind))
                if handle is not None and "." in text[word_start + 1 : trigger]:
                    findings.append(Finding("URL_HANDLE", trigger + 1, match.end() - handle[0], handle[1]))
            else:  # URL_AT / URL_PLAIN: the trigger is the "/" after the domain
                prefix = _URL_PREFIX.search(text, max(0, trigger - 48), trigger)
                handle = _url_handle(match.group(kind))
                if prefix is not None and handle is not None:
                    end = match.end() - handle[0]
                    findings.append(Finding("URL_HANDLE", prefix.start(), end, handle[1]))
        # Runs and look-ahead IBANs may overlap (a lower-case IBAN's digits are also a run).
        previous_end = -1
        for finding in findings:
            if finding.start < previous_end:
                return _merge(findings, [])
            previous_end = finding.end
        return findings

    def _ipv4_at(self, text: str, start: int, candidate: str) -> str | None:
        """The normalised address, unless the context says this is a version number."""
        context = _context_start(text, start, 16)
        if _VERSION_CONTEXT.search(text, context, start):
            return None
        address = _ipv4(candidate)
        if address is None:
            return None
        # "2.0.0.1", "4.2.1.0": all one-digit parts reads as a version unless an IP cue precedes.
        if all(len(part) == 1 for part in candidate.split(".")) and not _IP_CUE.search(text, context, start):
            return None
        return address

    def _find_ipv6(self, text: str) -> list[Finding]:
        """IPv6 candidates start at most 4 hex digits before a ":"; find those from each ":"
        (a fast substring search) rather than trying hex letters all over the text."""
        found: list[Finding] = []
        covered = 0
        colon = text.find(":")
        while colon >= 0:
            if colon >= covered:
                start = colon
                while start > 0 and colon - start < 4 and text[start - 1] in _HEX:
                    start -= 1
                match = _IPV6.match(text, start)
                if match is not None:
                    covered = match.end()
                    address = _ipv6(match.group("address"))
                    if address is not None:
                        found.append(Finding("IP", start, match.end(), address))
            colon = text.find(":", colon + 1)
        return found

    def _find_obfuscated_emails(self, text: str, markers: list[re.Match[str]]) -> list[Finding]:
        found: list[Finding] = []
        for marker in markers:
            at, after = marker.start(), marker.end()
            window = text[max(0, at - 64) : at]
            local = _EMAIL_LOCAL_REVERSED.match(window[::-1])
            domain = _OBFUSCATED_DOMAIN.match(text, after)
            if local is None or domain is None:
                continue
            local_part = window[len(window) - local.end() :].strip(".")
            if not local_part or local_part.startswith("%"):
                continue
            labels = [label for label in _DOT_SPLIT.split(domain.group()) if label]
            tld = labels[-1]
            if not (tld.isalpha() or tld.lower().startswith("xn--")) or len(tld) < 2:
                continue
            spelled = domain.group() != ".".join(labels)  # " dot ", "(dot)", "[.]"
            plain_at = marker.group().strip().lower() == "at"
            common = tld.lower() in _COMMON_TLDS and tld in (tld.lower(), tld.upper())
            if plain_at and not spelled and not common:
                continue  # "meet at home.Then": a plain " at " needs a real-looking domain
            start = at - len(local_part)
            normalised = f"{local_part}@{'.'.join(labels)}".lower()
            found.append(Finding("EMAIL", start, domain.end(), normalised))
        return found

    def _add_run(self, text: str, start: int, end: int, findings: list[Finding]) -> None:
        """Split a run of digits and separators into IP addresses, cards and phone numbers.

        Groups are the digit runs inside it. Dates and dotted addresses are taken out first;
        then, left to right, a card is tried at each group (a 12-19 digit run, or 4-digit-led
        groups with one consistent separator), then the longest phone number starting there
        (whole groups only, at most 8 groups and 17 digits). So "Suite 400 415-555-0123" gives
        the phone after the 400, and two phones side by side give two phones, not one card.
        """
        while end > start and not text[end - 1].isdigit():
            end -= 1
        run = text[start:end]
        if _DATE.fullmatch(run):
            return  # the most common run in notes: a date alone ("placed 2024-05-17")
        groups = [m.span() for m in _RUN_GROUP.finditer(run)]
        if len(groups) == 2 and run[groups[0][1] : groups[1][0]] in (".", ","):
            return  # a decimal number: a price, a measurement
        digits = sum(b - a for a, b in groups)
        if digits < 4:
            return
        used = [False] * len(groups)
        following = text[end : end + 2]
        glued = following[:1].isalnum() or following[:1] == "_"
        if glued or (following[:1] in ":-_" and following[1:].isalnum() and not following[1:].isdigit()):
            # "0920997c-1f32", "09423497-eb01", "5106:bc97:...": the last digits start an id or address
            used[-1] = True
        if "." in run or "/" in run or "-" in run:
            for excluded, is_ip in self._run_exclusions(text, start, run):
                first = _group_index(groups, excluded[0])
                last = _group_index(groups, excluded[1] - 1)
                for index in range(first, last + 1):
                    used[index] = True
                if is_ip:
                    findings.append(Finding("IP", start + excluded[0], start + excluded[1], is_ip))
        plus = run[0] == "+"
        context = _run_context(text, start) if start > 0 else _NO_CONTEXT
        not_a_card = context.not_a_card
        not_a_phone = context.not_a_phone and not plus
        cue = context.cue
        # A context word ("ISBN", "order no") speaks for the first number of the run: the groups
        # joined by the first separator ("978-1-07-400403-3", "4412 9981 3321"), not what follows.
        first_number = _first_number_end(run, groups) if not_a_card or not_a_phone else 0
        # Cards first (IIN, Luhn and a card's grouping are the stronger evidence), then phones
        # in the groups left; with a phone cue a lone digit run is a phone before it is a card.
        taken = [False] * len(groups)  # group belongs to a card or phone found here
        index = 0
        while index < len(groups):
            if used[index] or (index == 0 and plus) or (not_a_card and index <= first_number):
                index += 1
                continue
            if cue and len(groups) == 1 and _size(groups, 0) <= 15:  # E.164 has at most 15 digits
                phone = self._phone_at(text, start, run, groups, used, 0, False, cue)
                if phone is not None:
                    index += 1
                    continue
            size = groups[index][1] - groups[index][0]
            card = None
            if size >= 12 or size == 4:
                card = _card_at(run, groups, used, index, index > 0 and taken[index - 1])
            if card is None:
                index += 1
                continue
            last, number = card
            findings.append(Finding("CARD", start + groups[index][0], start + groups[last][1], number))
            for k in range(index, last + 1):
                used[k] = taken[k] = True
            index = last + 1
        index = 0
        while index < len(groups):
            if used[index] or (not_a_phone and index <= first_number):
                index += 1
                continue
            after_finding = index > 0 and taken[index - 1]
            # A cue word speaks for the number right after it, not for the rest of the run.
            phone = self._phone_at(
                text, start, run, groups, used, index, plus and index == 0, cue and index == 0, after_finding
            )
            if phone is None:
                index += 1
                continue
            phone_start, phone_end, e164, last = phone
            findings.append(Finding("PHONE", phone_start, phone_end, e164))
            for k in range(index, last + 1):
                taken[k] = True
            index = last + 1
        if len(findings) > 1 and findings[-1].start < findings[-2].start:
            findings.sort(key=lambda f: f.start)

    def _run_exclusions(self, text: str, start: int, run: str) -> list[tuple[tuple[int, int], str | None]]:
        """Spans in ``run`` that are dates (None) or IPv4 addresses (the normalised address)."""
        spans: list[tuple[tuple[int, int], str | None]] = []
        if "." in run:
            for match in _IPV4_IN_RUN.finditer(run):
                address = self._ipv4_at(text, start + match.start(), match.group().split("/")[0])
                if address is not None:
                    spans.append((match.span(), address))
        for match in _DATE.finditer(run):
            if not any(a < match.end() and match.start() < b for (a, b), _ in spans):
                spans.append((match.span(), None))
        return spans

    def _phone_at(
        self,
        text: str,
        start: int,
        run: str,
        groups: list[tuple[int, int]],
        used: list[bool],
        index: int,
        plus: bool,
        cue: bool,
        after_finding: bool = False,
    ) -> tuple[int, int, str, int] | None:
        """(start, end, E.164, last group) of the longest phone number starting at group ``index``.

        A number that starts inside a run must stand apart from what precedes it: joined by a
        separator it does not use itself ("Suite 400 415-555-0123"), or right after another
        number found here. "2021 0404 9081 5849" or an ISBN's "978-0-7326-0604-6" never yield
        their tails as phone numbers.
        """
        min_digits = 4 if cue or plus else 7
        if index > 0 and run[groups[index - 1][1] : groups[index][0]] in (".", ","):
            return None  # the fraction of a decimal ("21.0918295") or the middle of a dotted number
        ends: list[tuple[int, int]] = []
        digits = singles = 0
        for last in range(index, min(len(groups), index + 8)):
            if used[last]:
                break
            if last > index and groups[last][0] - groups[last - 1][1] > 3:
                break  # "415 555 0123   ,  12": a wide gap ends a number
            size = groups[last][1] - groups[last][0]
            digits += size
            singles += size == 1
            if digits > 17 or singles > 2:
                break
            if digits >= min_digits:
                ends.append((last, digits))
        if not ends:
            return None
        # Only windows of a length some configured region can have are worth validating.
        head = groups[index][0]
        filtering = not (plus or cue or run.startswith("00", head))
        opens = run[head - 1] == "(" if head > 0 else (start > 0 and text[start - 1] == "(")
        intl = run.startswith("00", head)
        for last, count in reversed(ends):
            if filtering:
                wide = run[head] == "0" or opens or (count == 10 and run[head] in "6789")
                if count not in (self._configured_lengths if wide else self._default_lengths):
                    continue
            window_start = 0 if plus else groups[index][0]
            window_end = groups[last][1]
            window = run[window_start:window_end]
            # "(415) 555-0123": the opening bracket belongs to the number.
            if window.count(")") > window.count("("):
                if window_start > 0 and run[window_start - 1] == "(":
                    window_start -= 1
                    window = "(" + window
                elif window_start == 0 and start > 0 and text[start - 1] == "(":
                    window_start = -1
                    window = "(" + window
            if last == index + 1 and run[groups[index][1] : groups[last][0]] in (".", ","):
                continue  # "0.461548", "51,5074": a decimal number
            # ("qty 2 415 555 0199": a 1-2 digit count is no number's head; "00"/"(" open a new one)
            if index > 0 and not after_finding and _size(groups, index - 1) > 2 and not (opens or intl):
                boundary = run[groups[index - 1][1] : groups[index][0]]
                inner = {run[groups[k][1] : groups[k + 1][0]] for k in range(index, last)}
                if boundary in inner:
                    continue
            e164 = self._phone_e164(window, cue)
            if e164 is not None:
                return start + window_start, start + window_end, e164, last
        return None

    def _phone_e164(self, candidate: str, cue: bool = False) -> str | None:
        key = (candidate, cue)
        cached = self._phone_cache.get(key, "")
        if cached != "":
            return cached
        result = _parse_phone(candidate, self.default_region, self.extra_phone_regions)
        if result is None and cue:
            result = _parse_phone_anywhere(candidate, (self.default_region, *self.extra_phone_regions))
        if len(self._phone_cache) > 50_000:
            self._phone_cache.clear()
        self._phone_cache[key] = result
        return result

    # --- replacement -----------------------------------------------------------------------

    def scrub(self, text: str) -> ScrubResult:
        scrubbed, found = self._scrub(text)
        return ScrubResult(scrubbed, found)

    def _scrub(self, text: str) -> tuple[str, dict[str, int]]:
        findings = self.find(text)
        if not findings:
            return text, {}
        found: dict[str, int] = {}
        return self._replace(text, findings, 0, found), found

    def _replace(self, text: str, findings: list[Finding], offset: int, found: dict[str, int]) -> str:
        """``text`` with ``findings`` (offsets relative to ``offset``) replaced by tags."""
        pieces: list[str] = []
        cursor = 0
        short = self.pseudonymizer.short_token
        for kind, start, end, normalised in findings:
            start -= offset
            end -= offset
            if start < cursor:  # defensive: never emit overlapping replacements
                continue
            pieces.append(text[cursor:start])
            pieces.append(f"[{kind}:{short(normalised, _TOKEN_KIND[kind], self.tag_length)}]")
            found[kind] = found.get(kind, 0) + 1
            cursor = end
        pieces.append(text[cursor:])
        return "".join(pieces)

    def personal_values(self, values: Sequence[object]) -> dict[int, str]:
        """Positions of the string values that hold personal data, with the type found.

        For identifier columns a policy keeps (order ids, post ids): the type is the finding's
        when it covers the whole value, else ``"PARTIAL"``. A value made of digits only is not
        read as a phone or card number: ids are digit strings by nature, and a 16-digit post id
        that happens to pass Luhn is not a card. Scanned as one NUL-joined string, like
        ``scrub_series``.
        """
        positions = [i for i, v in enumerate(values) if isinstance(v, str) and v.strip()]
        texts = [str(values[i]) for i in positions]
        if not texts:
            return {}
        joined = _SEPARATOR.join(texts)
        if joined.count(_SEPARATOR) != len(texts) - 1:  # a value carries NUL itself: one by one
            per_text = [(k, f) for k, text in enumerate(texts) for f in self.find(text)]
            offsets = [0] * len(texts)
        else:
            offsets = list(itertools.accumulate((len(t) + 1 for t in texts[:-1]), initial=0))
            per_text = [(bisect.bisect_right(offsets, f.start) - 1, f) for f in self.find(joined)]
        found: dict[int, str] = {}
        for k, finding in per_text:
            text = texts[k]
            value = text.strip()
            if finding.type in ("PHONE", "CARD") and value.isdigit():
                continue
            lead = offsets[k] + len(text) - len(text.lstrip())
            whole = finding.start <= lead and finding.end >= lead + len(value)
            found[positions[k]] = finding.type if whole else found.get(positions[k], "PARTIAL")
        return found

    def scrub_series(self, series: pd.Series) -> tuple[pd.Series, dict[str, int]]:
        """Scrub a text column; non-strings (None/NaN) pass through. Returns totals per type.

        The column is scanned as one NUL-joined string and rebuilt with one ``split``, so the
        regex engine walks all texts in one C loop and Python only touches the candidates.
        """
        values = series.tolist()
        if pd.api.types.infer_dtype(values, skipna=False) == "string":
            positions: list[int] | None = None  # every cell is text: no bookkeeping needed
            texts = values
        else:
            positions = [i for i, v in enumerate(values) if isinstance(v, str)]
            texts = [values[i] for i in positions]
        totals: dict[str, int] = {}
        joined = _SEPARATOR.join(texts)
        if joined.count(_SEPARATOR) != max(len(texts) - 1, 0):
            # A text carries NUL itself: one scan per text instead (rare, still correct).
            scrubbed = []
            for text in texts:
                text, found = self._scrub(text)
                scrubbed.append(text)
                for kind, count in found.items():
                    totals[kind] = totals.get(kind, 0) + count
        else:
            findings = self.find(joined)
            scrubbed = self._replace(joined, findings, 0, totals).split(_SEPARATOR) if findings else texts
        if positions is None:
            values = scrubbed
        else:
            for position, text in zip(positions, scrubbed, strict=True):
                values[position] = text
        return pd.Series(values, index=series.index, name=series.name, dtype=object), totals


def _group_index(groups: list[tuple[int, int]], offset: int) -> int:
    """Index of the digit group containing or following ``offset``."""
    for index, (_, group_end) in enumerate(groups):
        if offset < group_end:
            return index
    return len(groups) - 1


_CARD_SEPARATORS = frozenset(" -.\u00a0")


def _first_number_end(run: str, groups: list[tuple[int, int]]) -> int:
    """Index of the last group of the run's first number: the groups joined by the first
    separator, ending early where the spelling says a new number starts (a lone long group, a
    short tail after 4-digit groups, 16 digits of 4-digit groups, a different separator ahead)."""
    last = 0
    if len(groups) < 2 or _size(groups, 0) >= 8:
        return last
    joiner = _between(run, groups, 0)
    digits = _size(groups, 0)
    while last + 1 < len(groups) and _between(run, groups, last) == joiner:
        if last + 2 < len(groups):
            ahead = _between(run, groups, last + 1)
            if len(ahead) == 1 and ahead != joiner:
                break  # the next group is the head of a number spelled another way
        size = _size(groups, last + 1)
        if _size(groups, last) == 4 and size < 4 and last > 0:
            last += 1
            break  # "…2615 03": the short tail ends a 4-grouped number
        if digits == 16 and all(_size(groups, k) == 4 for k in range(last + 1)):
            break
        last += 1
        digits += size
    return last


def _between(run: str, groups: list[tuple[int, int]], index: int) -> str:
    """The separator between group ``index`` and the next."""
    return run[groups[index][1] : groups[index + 1][0]]


def _card_at(
    run: str, groups: list[tuple[int, int]], used: list[bool], index: int, after_finding: bool = False
) -> tuple[int, str] | None:
    """(last group, digits) of the longest card number starting at group ``index``.

    Cards are written as one run of 12-19 digits, or in groups led by 4 digits with one
    separator throughout (4-4-4-4, 4-6-5, 4-4-4-4-3): "415-555-0123 212-555-0188" is two phone
    numbers, never a card. A card never starts or ends inside a longer 4-4-4... sequence (a
    parcel number, "2024 0517 1234 0000 1234"), except two 16-digit numbers side by side.
    """
    first_start, first_end = groups[index]
    size = first_end - first_start
    if size >= 12:
        number = run[first_start:first_end]
        return (index, number) if card_ok(number) else None
    if size != 4 or index + 1 >= len(groups):
        return None
    separator = _between(run, groups, index)
    if separator not in _CARD_SEPARATORS:
        return None
    # (a date or address before it is its own thing: "on 07/03/2029 4231 8183 3128 9544")
    if index > 0 and not after_finding and not used[index - 1] and _size(groups, index - 1) == 4:
        before, cursor = 0, index - 1
        while (
            cursor >= 0
            and not used[cursor]
            and _size(groups, cursor) == 4
            and _between(run, groups, cursor) == separator
        ):
            before += 4
            cursor -= 1
        first = index - before // 4
        # "2024-0514-1444-3581 2719 1589 9232 3604": the group before is the end of a number
        # spelled differently, not the head of this one.
        other_spelling = before == 4 and first > 0 and _between(run, groups, first - 1) in _CARD_SEPARATORS
        if before and before != 16 and not other_spelling:
            return None
    number = run[first_start:first_end]
    best: tuple[int, str] | None = None
    for last in range(index + 1, min(len(groups), index + 5)):
        if used[last] or _between(run, groups, last - 1) != separator:
            break
        if not 1 <= _size(groups, last) <= 6:
            break
        number += run[groups[last][0] : groups[last][1]]
        if len(number) > 19:
            break
        if len(number) >= 12 and card_ok(number):
            best = (last, number)
    if best is not None and best[0] + 1 < len(groups):
        last = best[0]
        continues = _between(run, groups, last) == separator and _size(groups, last) == 4
        continues = continues and _size(groups, last + 1) == 4
        if continues and _card_at(run, groups, used, last + 1, True) is None:
            return None  # more groups of the same spelling follow: a longer number, not a card
    return best


def _size(groups: list[tuple[int, int]], index: int) -> int:
    return groups[index][1] - groups[index][0]


def _merge(first: list[Finding], second: list[Finding]) -> list[Finding]:
    """Both lists in start order, dropping any finding that overlaps an earlier one."""
    merged: list[Finding] = []
    end = -1
    for finding in sorted(first + second, key=lambda f: (f.start, -f.end)):
        if finding.start >= end:
            merged.append(finding)
            end = finding.end
    return merged


def _context_start(text: str, start: int, width: int) -> int:
    """Start of a look-back window, clipped at the previous text in a joined column."""
    low = max(0, start - width)
    separator = text.rfind(_SEPARATOR, low, start)
    return low if separator < 0 else separator + 1


def _ipv4(candidate: str) -> str | None:
    try:
        return ipaddress.IPv4Address(candidate).compressed
    except ValueError:  # octet > 255 or a leading zero
        return None


def _ipv6(candidate: str) -> str | None:
    if sum(c not in ":." for c in candidate) < 3:  # "::", "::1": no person behind these
        return None
    try:
        return ipaddress.IPv6Address(candidate).compressed
    except ValueError:
        return None


def _url_handle(path: str) -> tuple[int, str] | None:
    """(characters to trim from the end, normalised handle) for a profile URL path."""
    if path.lower().startswith("profile.php?id="):
        return 0, path.rsplit("=", 1)[-1]
    trimmed = path.rstrip(".-")
    handle = trimmed.lstrip("@")
    if not handle or handle.lower() in _URL_RESERVED:
        return None
    return len(path) - len(trimmed), handle.lower()


def _parse_phone(candidate: str, region: str, extra_regions: Sequence[str]) -> str | None:
    digits = sum(map(str.isdigit, candidate))
    # A "+" or "00" says "phone" on its own: short island numbers ("+247 62889") count.
    if digits < (5 if candidate.startswith(("+", "00")) else 7) or digits > 17:
        return None
    if sum(len(g) == 1 for g in _RUN_GROUP.findall(candidate)) > 2:  # "7-1-2-3-4-5-6": a score
        return None
    text = candidate
    if text.startswith("00"):
        text = "+" + text[2:].lstrip()
    # Other countries' national formats start with a trunk "0" ("020 7946 0958") or an area
    # code in brackets ("(11) 91234-5678"); Indian mobiles are ten digits from 6-9. Trying
    # every region on any bare run would turn view counts and ids into "valid" numbers.
    international = text.startswith("+")
    if international and text[1:].lstrip(" (")[:1] == "0":  # no country code starts with 0
        return None
    if not international and (text[0] in "0(" or (digits == 10 and text[0] in "6789")):
        regions: tuple[str, ...] = (region, *extra_regions)
    else:
        regions = (region,)
    # libphonenumber's validity check on the digits (see valid_e164): the same verdict as
    # PhoneNumberMatcher(leniency=VALID) on this run, without its 20-80 us of text handling.
    # A country code, or a trunk "0" in a grouped spelling ("07700 900906"), says "phone"
    # strongly enough to also take numbers that are merely of a possible length.
    grouped = any(c in " -.()\u00a0" for c in text.strip())
    possible_ok = international or (text[0] == "0" and grouped)
    return valid_e164(text, regions, possible_ok=possible_ok, min_digits=5 if international else 7)


def _parse_phone_anywhere(candidate: str, skip: Sequence[str]) -> str | None:
    """E.164 of a cued number in any country's plan: a country code written without "+"
    first, then a national number of each country (strictly valid numbers only)."""
    compact = "".join(c for c in candidate if c.isdigit())
    if candidate.lstrip("(").startswith(("+", "00")):
        return None  # international spellings were judged by _parse_phone already
    if len(compact) >= 8 and compact[0] != "0":
        e164 = valid_e164("+" + compact, ())
        if e164 is not None:
            return e164
    if sum(len(g) == 1 for g in _RUN_GROUP.findall(candidate)) > 2:
        return None
    for plan in _region_plans():
        if plan.region in skip:
            continue
        national = compact[len(plan.trunk) :] if plan.trunk and compact.startswith(plan.trunk) else compact
        if len(national) not in plan.lengths or plan.general.fullmatch(national) is None:
            continue  # valid_e164 strips the trunk prefix the same way
        e164 = valid_e164(candidate, (plan.region,), min_digits=4)
        if e164 is not None:
            return e164
    return None


def scrub_lines(lines: Iterable[str], scrubber: TextScrubber) -> Iterator[str]:
    """One JSON object per input line: ``{"text": scrubbed, "found": {type: count}}``."""
    for line in lines:
        text = line.rstrip("\r\n")
        scrubbed, found = scrubber._scrub(text)
        yield json.dumps({"text": scrubbed, "found": found}, ensure_ascii=False)
