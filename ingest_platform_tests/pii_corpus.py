"""An independent PII evaluation corpus, generated from a seed by other people's libraries.

The labelled set in ``data/pii_labelled.jsonl`` was written by the people who wrote the
detector, so it measures what they thought of. This corpus takes its values from libraries
nobody here wrote and is never frozen to a file, so nobody can tune the detector to it:

* **Faker** in ``LOCALES`` (30 locales): phone numbers and MSISDNs, IBANs, cards of every
  provider Faker knows, e-mails (safe, free-mail and company domains), IPv4/IPv6, user names in
  profile URLs; plus e-mails with IDN domains (Unicode and punycode) and Unicode local parts
  built from the locale's own name lists, and obfuscated spellings (``jane at example dot com``,
  ``(at)``, ``[at]``, full-width ``＠``, ``%40``, ``&#64;``).
* **phonenumbers** ``example_number_for_type`` for every region in ``SUPPORTED_REGIONS`` and
  every ``PhoneNumberType``, in the E164, INTERNATIONAL, NATIONAL and RFC3966 formats.
* **schwifty**'s IBAN registry: one random valid IBAN per country built from the registry's
  BBAN spec, written compact, grouped, lower case, with dashes or non-breaking spaces.

Values go into varied sentence templates with digits, brackets, quotes and punctuation around
them, and sometimes two values side by side. Negatives (no personal data) are dates, times,
prices, version strings, order numbers, IMEIs, ISBNs, coordinates, tracking numbers, hex ids,
bank references that pass Luhn, npm scopes.

One labelling rule is a judgement: a phone number written nationally ("089/12345678",
"0912 345 678") names no country, so neither a reader nor a detector can tell it from a
reference number without the region. National spellings of the scrubber's default region go
into any template; those of other regions are embedded with a cue a reader would also need
("tel.", "call", "WhatsApp", "mobile" ... in several languages). International spellings
(``+CC``, ``00CC``, ``tel:``) go into any template.

Scoring is by span (``score``): a finding counts for a value only if it has the value's type
and covers every letter and digit of it; a finding with no value of its type under it is a
false positive; a **leak** is a run of 4+ digits, or any character of an e-mail's local part,
of a true value that no finding (of any type) covers.

Run ``python -m ingest_platform_tests.pii_corpus [seed ...]`` to print the table and misses.
"""

from __future__ import annotations

import datetime
import random
import string
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import phonenumbers
from faker import Faker
from phonenumbers import PhoneNumberFormat, PhoneNumberType

SCORED_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP", "URL_HANDLE")
ASSERTED_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP")
DEFAULT_SEED = 1313

LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pt_PT", "pl_PL",
    "ru_RU", "ja_JP", "zh_CN", "ko_KR", "hi_IN", "en_IN", "tr_TR", "sv_SE", "da_DK", "fi_FI",
    "no_NO", "cs_CZ", "uk_UA", "he_IL", "en_AU", "en_CA", "fr_CH", "de_AT", "es_MX", "el_GR",
)  # fmt: skip
# The country whose numbering plan a locale's Faker phone numbers follow.
LOCALE_REGION = {locale: locale.split("_")[1] for locale in LOCALES}

PHONE_TYPES = (
    PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.PAGER,
    PhoneNumberType.UAN, PhoneNumberType.VOICEMAIL,
)  # fmt: skip
PHONE_FORMATS = (
    PhoneNumberFormat.E164,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.RFC3966,
)
CARD_PROVIDERS = (
    "amex", "diners", "discover", "jcb15", "jcb16", "maestro", "mastercard", "visa13", "visa16",
    "visa19",
)  # fmt: skip


@dataclass
class Entity:
    type: str
    start: int
    end: int
    value: str


@dataclass
class Record:
    text: str
    entities: list[Entity] = field(default_factory=list)
    source: str = ""


# --- templates --------------------------------------------------------------------------------

# "{}" is the value. Digits, brackets, quotes and punctuation hug it on purpose.
ANY_TEMPLATES = (
    "{}",
    "{}.",
    "see {} ok",
    "({})",
    "[{}]",
    '"{}"',
    "'{}',",
    "«{}»",
    "<{}>",
    "Suite 400 {}",
    "Austin, TX 78701 {}",
    "Apt 12, 3rd floor, {}!",
    "ref 2024 then {}; thanks",
    "{}\tEOL",
    "line one\n{}\nline two",
    "contact: {}?",
    "info:{}",
    "x 17 {} 42 y",
    "{} — 3 items, $25.00",
    "on 2024-05-17 {} at 10:30",
    "💬 {} 🙏",
    "from {}, 2 days ago",
    "Kontakt: {}.",
    "联系 {} 谢谢",
)
PHONE_CUES = (
    "call me at {}",
    "Tel. {}",
    "tel: {} (office)",
    "phone: {}.",
    "whatsapp {} for orders",
    "mobile ({})",
    "ring {}, ask for Jo",
    "Fax {}!",
    "Telefon: {}",
    "téléphone {}",
    "teléfono: {}",
    "телефон {}",
    "電話 {}",
    "Handy {} (abends)",
    "cell: {}; home 2",
    "text me on {}",
    "SMS {}",
    "Suite 400, call {}",
)
PAIR_TEMPLATES = ("{} {}", "{}, {}", "{} / {}", "{} or {}", "{}\n{}", "({}) ({})", "{}; {}")


def _fill(template: str, values: list[tuple[str, str]], source: str) -> Record:
    """Format ``template`` with ``values`` [(type, value)] and record each value's span."""
    pieces = template.split("{}")
    assert len(pieces) == len(values) + 1, template
    text = pieces[0]
    entities = []
    for (kind, value), after in zip(values, pieces[1:], strict=True):
        # "tel:" is the URI scheme of an RFC 3966 number; the number after it is the value.
        scheme = 4 if kind == "PHONE" and value.startswith("tel:") else 0
        if kind:
            entities.append(Entity(kind, len(text) + scheme, len(text) + len(value), value[scheme:]))
        text += value + after
    return Record(text, entities, source)


# --- value generators -------------------------------------------------------------------------


def _fakers(seed: int) -> dict[str, Faker]:
    fakers = {}
    for index, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 1000 + index)
        fakers[locale] = fake
    return fakers


def _phone_valid(value: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return False


def _strip_extension(value: str) -> str:
    for marker in ("x", " ext", "ext."):
        if marker in value:
            value = value.split(marker)[0]
    return value.strip()


def _is_national(value: str) -> bool:
    return not value.startswith(("+", "00", "tel:"))


def faker_phones(fakers: dict[str, Faker], per_locale: int) -> Iterable[tuple[str, str, str]]:
    """(value, region, source) of Faker phone numbers and MSISDNs that libphonenumber calls
    valid; the rest are strings no phone system would route, not personal data."""
    for locale, fake in fakers.items():
        region = LOCALE_REGION[locale]
        kept = tries = 0
        while kept < per_locale and tries < per_locale * 20:
            tries += 1
            value = _strip_extension(fake.phone_number())
            if _phone_valid(value, region):
                kept += 1
                yield value, region, f"faker:{locale}:phone"
        for _ in range(per_locale):
            msisdn = fake.msisdn()
            if _phone_valid("+" + msisdn, "ZZ"):
                yield msisdn, "", f"faker:{locale}:msisdn"


def example_phones() -> Iterable[tuple[str, str, str]]:
    """Every region x number type x format that phonenumbers has an example for."""
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in PHONE_TYPES:
            number = phonenumbers.example_number_for_type(region, number_type)
            if number is None:
                continue
            for fmt in PHONE_FORMATS:
                value = phonenumbers.format_number(number, fmt)
                yield value, region, f"phonenumbers:{region}:{number_type}:{fmt}"


def _group(value: str, sizes: Iterable[int], separator: str) -> str:
    parts, cursor = [], 0
    for size in sizes:
        if cursor >= len(value):
            break
        parts.append(value[cursor : cursor + size])
        cursor += size
    if cursor < len(value):
        parts.append(value[cursor:])
    return separator.join(parts)


def card_spelling(number: str, rng: random.Random) -> str:
    separator = rng.choice(["", " ", "-", ".", "\u00a0", " "])
    if not separator:
        return number
    sizes = (4, 6, 5) if len(number) == 15 and number[:2] in ("34", "37") else (4, 4, 4, 4, 4)
    return _group(number, sizes, separator)


def faker_cards(fakers: dict[str, Faker], rng: random.Random, per_provider: int) -> Iterable[tuple[str, str]]:
    for provider in CARD_PROVIDERS:  # the providers every locale knows
        for _ in range(per_provider):
            yield card_spelling(fakers["en_US"].credit_card_number(provider), rng), f"faker:card:{provider}"
    for locale, fake in fakers.items():  # and each locale's own mix (ru_RU adds Mir, ...)
        for _ in range(per_provider // 10):
            number = fake.credit_card_number()
            if locale == "uk_UA" and number[0] == "9" and not number.startswith("9804"):
                continue  # Faker's PROSTIR takes the whole 9 block; the scheme's issued IIN is 9804
            yield card_spelling(number, rng), f"faker:{locale}:card"


def iban_spelling(compact: str, rng: random.Random) -> str:
    style = rng.randrange(6)
    if style == 0:
        return compact
    if style == 1:
        return _group(compact, [4] * 9, " ")
    if style == 2:
        return compact.lower()
    if style == 3:
        return _group(compact, [4] * 9, " ").lower()
    if style == 4:
        return _group(compact, [4] * 9, "-")
    return _group(compact, [4] * 9, "\u00a0")


def registry_ibans(rng: random.Random, per_country: int) -> Iterable[tuple[str, str]]:
    """Random valid IBANs for every country in schwifty's registry, from the BBAN spec."""
    import json
    from importlib.resources import files

    from schwifty import IBAN

    folder = files("schwifty").joinpath("iban_registry")
    countries = set()
    for name in ("generated.json", "overwrite.json"):
        countries |= set(json.loads(folder.joinpath(name).read_text()))
    for country in sorted(countries):
        for _ in range(per_country):
            try:
                iban = IBAN.random(country_code=country, random=rng)
            except Exception:  # no bank registry for the country: the BBAN spec alone
                iban = IBAN.random(country_code=country, random=rng, use_registry=False)
            yield iban_spelling(str(iban.compact), rng), f"schwifty:{country}"


def faker_ibans(fakers: dict[str, Faker], rng: random.Random, per_locale: int) -> Iterable[tuple[str, str]]:
    from schwifty import IBAN

    for locale, fake in fakers.items():
        for _ in range(per_locale):
            value = fake.iban()
            try:
                IBAN(value)
            except Exception:  # Faker's own IBAN is sometimes not one (wrong length): skip it
                continue
            yield iban_spelling(value, rng), f"faker:{locale}:iban"


# Unicode domain words from the locales whose names are not Latin; TLDs that exist as IDNs.
_IDN_TLDS = {"ru_RU": "рф", "uk_UA": "укр", "el_GR": "gr", "ja_JP": "jp", "zh_CN": "中国", "ko_KR": "한국"}


def faker_emails(fakers: dict[str, Faker], rng: random.Random, per_locale: int) -> Iterable[tuple[str, str]]:
    for locale, fake in fakers.items():
        for _ in range(per_locale):
            style = rng.randrange(6)
            if style == 0:
                value = fake.free_email()
            elif style == 1:
                value = fake.company_email()
            elif style == 2:
                value = fake.email()
            elif style == 3:
                value = f"{fake.user_name()}+{rng.choice(['news', 'shop', 'x'])}@{fake.free_email_domain()}"
            elif style == 4:
                value = fake.email().upper() if rng.random() < 0.3 else fake.email()
            else:
                name = f"{fake.first_name()}.{fake.last_name()}".replace(" ", "")
                value = f"{name}@{fake.domain_name()}".lower()
            yield value, f"faker:{locale}:email"
    for locale, tld in _IDN_TLDS.items():
        fake = fakers[locale]
        for _ in range(per_locale):
            local = fake.last_name().lower().replace(" ", "")
            domain = f"{fake.last_name().lower().replace(' ', '')}.{tld}"
            if rng.random() < 0.5:
                domain = domain.encode("idna").decode("ascii")  # punycode: xn--...
            if rng.random() < 0.5:
                local = fake.user_name()
            yield f"{local}@{domain}", f"faker:{locale}:idn-email"


def obfuscated_emails(fakers: dict[str, Faker], rng: random.Random, n: int) -> Iterable[tuple[str, str]]:
    fake = fakers["en_US"]
    for _ in range(n):
        local = fake.user_name()
        name, _, tld = fake.free_email_domain().rpartition(".")
        style = rng.randrange(7)
        if style == 0:
            value = f"{local} at {name} dot {tld}"
        elif style == 1:
            value = f"{local}(at){name}.{tld}"
        elif style == 2:
            value = f"{local} [at] {name} [dot] {tld}"
        elif style == 3:
            value = f"{local}＠{name}.{tld}"
        elif style == 4:
            value = f"{local}%40{name}.{tld}"
        elif style == 5:
            value = f"{local}&#64;{name}.{tld}"
        else:
            value = f"{local} AT {name} DOT {tld}"
        yield value, "obfuscated-email"


def faker_ips(fakers: dict[str, Faker], rng: random.Random, n: int) -> Iterable[tuple[str, str]]:
    fake = fakers["en_US"]
    for _ in range(n):
        style = rng.randrange(6)
        if style <= 1:
            value = fake.ipv4_public()
        elif style == 2:
            value = fake.ipv4()
        elif style == 3:
            value = fake.ipv6()
        elif style == 4:
            value = fake.ipv6() + rng.choice(["%eth0", "%en0", "%25", "/64", "/48"])
        else:
            value = fake.ipv4_public() + rng.choice(["/24", "/32", ""])
        yield value, "faker:ip"


_PROFILE_HOSTS = (
    "https://github.com/{}", "github.com/{}", "https://www.reddit.com/user/{}", "reddit.com/u/{}",
    "https://t.me/{}", "t.me/{}", "https://vk.com/{}", "https://medium.com/@{}",
    "https://mastodon.social/@{}", "https://www.instagram.com/{}", "tiktok.com/@{}",
    "https://x.com/{}", "https://www.linkedin.com/in/{}",
)  # fmt: skip


def profile_urls(fakers: dict[str, Faker], rng: random.Random, n: int) -> Iterable[tuple[str, str]]:
    locales = list(fakers)
    for _ in range(n):
        user = fakers[rng.choice(locales)].user_name()
        yield rng.choice(_PROFILE_HOSTS).format(user), "faker:profile-url"


# --- negatives ----------------------------------------------------------------------------------


def _luhn_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        n = int(char) * (2 if position % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def negatives(fakers: dict[str, Faker], rng: random.Random, n: int) -> Iterable[str]:
    fake = fakers["en_US"]
    locales = list(fakers)

    def moment() -> datetime.datetime:  # fixed bounds: Faker's own defaults move with "now"
        return fake.date_time_between_dates(datetime.datetime(1990, 1, 1), datetime.datetime(2030, 12, 31))

    makers: list[Callable[[], str]] = [
        lambda: f"delivered {moment():%Y-%m-%d %H:%M:%S}",
        lambda: f"on {moment().strftime(rng.choice(['%d/%m/%Y', '%d.%m.%Y', '%m-%d-%Y', '%Y%m%d']))}",
        lambda: f"at {moment().strftime(rng.choice(['%H:%M', '%H:%M:%S', '%I:%M %p']))} sharp",
        lambda: f"price {fakers[rng.choice(locales)].pricetag()} only",
        lambda: f"total ${rng.randint(1000, 99999):,}.{rng.randint(0, 99):02d}",
        lambda: f"UA {fake.chrome()}",
        lambda: f"v{rng.randint(0, 20)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 9999)}",
        lambda: "upgraded to " + ".".join(str(rng.randint(0, 9)) for _ in range(4)),
        lambda: f"order #{rng.randint(10**6, 10**10)} shipped",
        lambda: f"Order ORD-{rng.randint(2019, 2026)}-{rng.randint(10**5, 10**6)}",
        lambda: f"invoice {rng.randint(2019, 2026)}{rng.randint(10**5, 10**6)} attached",
        lambda: f"IMEI {_imei(rng)}",
        lambda: f"device {_imei(rng)} registered",
        lambda: f"ISBN {fake.isbn13()}",
        lambda: f"isbn {fake.isbn10()}",
        lambda: f"at {fake.latitude()}, {fake.longitude()}",
        lambda: f"coords {fake.latitude()},{fake.longitude()}",
        lambda: f"tracking 1Z{fake.bothify('???###########').upper()}",
        lambda: f"USPS {fake.numerify('94## #### #### #### #### ##')}",
        lambda: f"id {fake.sha1()}",
        lambda: f"commit {fake.md5()[:12]} merged",
        lambda: f"uuid {fake.uuid4()}",
        lambda: f"bank ref {_bank_reference(rng)}",
        lambda: f"npm i @{fake.word()}/{fake.word()} --save",
        lambda: f"import '@babel/core'; {rng.randint(2, 99)} deps",
        lambda: f"{rng.randint(2, 99)} likes, {rng.randint(1000, 10**7)} views",
        lambda: f"score {rng.randint(0, 9)}-{rng.randint(0, 9)} at {rng.randint(10, 99)}'",
        lambda: f"population {rng.randint(10**5, 10**8):,}",
        lambda: f"PIN {rng.randint(1000, 9999)}, code {rng.randint(10**5, 10**6)}",
        lambda: f"EAN {fake.ean13()}",
        lambda: f"{fake.sentence()}",
    ]
    for _ in range(n):
        yield rng.choice(makers)()


def _imei(rng: random.Random) -> str:
    body = rng.choice(["35", "86", "01", "99"]) + "".join(rng.choice(string.digits) for _ in range(12))
    return body + _luhn_digit(body)


def _bank_reference(rng: random.Random) -> str:
    """A date-led 16-digit reference that passes Luhn, in no issued card range."""
    body = f"{rng.randint(2019, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body += "".join(rng.choice(string.digits) for _ in range(7))
    number = body + _luhn_digit(body)
    return _group(number, (4, 4, 4, 4), rng.choice([" ", "-", ""]))


# --- the corpus ---------------------------------------------------------------------------------


def generate(seed: int = DEFAULT_SEED, *, default_region: str = "US", scale: int = 1) -> list[Record]:
    """The corpus for ``seed`` (deterministic). ``scale`` multiplies the Faker-drawn parts."""
    rng = random.Random(seed)
    fakers = _fakers(seed)
    records: list[Record] = []

    def place(kind: str, value: str, source: str, *, cue: bool = False) -> None:
        template = rng.choice(PHONE_CUES if cue else ANY_TEMPLATES)
        records.append(_fill(template, [(kind, value)], source))

    for value, region, source in [*example_phones(), *faker_phones(fakers, 12 * scale)]:
        national = _is_national(value) and not source.endswith(":msisdn")
        msisdn = source.endswith(":msisdn")
        place("PHONE", value, source, cue=(national and region != default_region) or msisdn)
    for value, source in faker_cards(fakers, rng, 60 * scale):
        place("CARD", value, source)
    for value, source in [*registry_ibans(rng, 3 * scale), *faker_ibans(fakers, rng, 4 * scale)]:
        place("IBAN", value, source)
    emails = [*faker_emails(fakers, rng, 12 * scale), *obfuscated_emails(fakers, rng, 80 * scale)]
    for value, source in emails:
        place("EMAIL", value, source)
    for value, source in faker_ips(fakers, rng, 300 * scale):
        place("IP", value, source)
    for value, source in profile_urls(fakers, rng, 150 * scale):
        # The personal part is the user name; the host and path words around it are not.
        template = rng.choice(ANY_TEMPLATES)
        record = _fill(template, [("", value)], source)
        user_end = template.index("{}") + len(value)
        user_start = user_end - len(value.rstrip("/").rsplit("/", 1)[-1].lstrip("@"))
        record.entities.append(Entity("URL_HANDLE", user_start, user_end, record.text[user_start:user_end]))
        records.append(record)
    # E-mail in a query string: the e-mail is the value (percent-encoded "@").
    for _ in range(40 * scale):
        email = fakers["en_US"].free_email()
        url = f"https://shop.example/confirm?email={email.replace('@', '%40')}&step=2"
        start = url.index("=") + 1
        records.append(Record(url, [Entity("EMAIL", start, start + len(email) + 2, email)], "query-email"))
    # Two values side by side: phones after phones, a card after an order number...
    # (profile URLs are labelled by their user name only, so they are not re-embedded)
    singles = [r for r in records if len(r.entities) == 1 and r.entities[0].type != "URL_HANDLE"]
    for _ in range(600 * scale):
        a, b = rng.sample(singles, 2)
        if a.entities[0].type == "PHONE" and _is_national(a.entities[0].value):
            continue  # a cue-less national number of a foreign region: not identifiable (see above)
        if b.entities[0].type == "PHONE" and _is_national(b.entities[0].value):
            continue
        values = [(a.entities[0].type, a.entities[0].value), (b.entities[0].type, b.entities[0].value)]
        records.append(_fill(rng.choice(PAIR_TEMPLATES), values, "pair"))
    for text in negatives(fakers, rng, 1500 * scale):
        records.append(Record(text, [], "negative"))
    for text in negatives(fakers, rng, 300 * scale):  # a negative right before a value
        value = singles[rng.randrange(len(singles))]
        entity = value.entities[0]
        if entity.type == "PHONE" and _is_national(entity.value):
            continue
        records.append(_fill(text + " {}", [(entity.type, entity.value)], "negative+value"))
    return records


# --- scoring ------------------------------------------------------------------------------------


@dataclass
class TypeScore:
    labelled: int = 0
    found: int = 0
    detected: int = 0
    correct: int = 0
    leaks: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.labelled if self.labelled else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.detected if self.detected else 1.0


def _covers(finding: tuple[int, int], entity: Entity, text: str) -> bool:
    """Every letter and digit of the value lies inside the finding."""
    inside = [i for i in range(entity.start, entity.end) if text[i].isalnum()]
    return bool(inside) and finding[0] <= inside[0] and inside[-1] < finding[1]


def _leaks(entity: Entity, text: str, covered: list[bool]) -> int:
    """Runs of 4+ uncovered digits in the value, plus one if any e-mail local part character
    is left uncovered."""
    leaks = 0
    run = 0
    for i in range(entity.start, entity.end + 1):
        if i < entity.end and text[i].isdigit() and not covered[i]:
            run += 1
            continue
        if run >= 4:
            leaks += 1
        run = 0
    if entity.type == "EMAIL":
        local_end = entity.start
        for marker in ("@", "＠", "%40", "&#64;", "(at)", "[at]", " at ", " AT "):
            position = text.find(marker, entity.start, entity.end)
            if position >= 0:
                local_end = position
                break
        if any(text[i].isalnum() and not covered[i] for i in range(entity.start, local_end)):
            leaks += 1
    return leaks


def score(find: Callable[[str], list], records: list[Record]) -> tuple[dict[str, TypeScore], list[str]]:
    """Per-type scores and readable misses (FN / FP / LEAK lines) of a ``find`` function
    returning objects with ``type``, ``start`` and ``end``."""
    table = {kind: TypeScore() for kind in SCORED_TYPES}
    problems: list[str] = []
    for record in records:
        text = record.text
        findings = find(text)
        covered = [False] * (len(text) + 1)
        for f in findings:
            for i in range(f.start, f.end):
                covered[i] = True
        for entity in record.entities:
            row = table[entity.type]
            row.labelled += 1
            if any(f.type == entity.type and _covers((f.start, f.end), entity, text) for f in findings):
                row.found += 1
            else:
                problems.append(f"FN {entity.type} {entity.value!r} in {text!r} [{record.source}]")
            leaks = _leaks(entity, text, covered)
            if leaks:
                row.leaks += leaks
                problems.append(f"LEAK {entity.type} {entity.value!r} in {text!r} [{record.source}]")
        for f in findings:
            if f.type not in table:
                continue  # MENTION: not scored
            row = table[f.type]
            row.detected += 1
            if any(e.type == f.type and e.start < f.end and f.start < e.end for e in record.entities):
                row.correct += 1
            else:
                problems.append(f"FP {f.type} {text[f.start : f.end]!r} in {text!r} [{record.source}]")
    return table, problems


def format_scores(table: dict[str, TypeScore]) -> str:
    lines = [f"{'type':<11} {'labelled':>8} {'detected':>8} {'recall':>7} {'precision':>9} {'leaks':>6}"]
    for kind, row in table.items():
        lines.append(
            f"{kind:<11} {row.labelled:>8} {row.detected:>8} {row.recall:>7.3f} {row.precision:>9.3f} "
            f"{row.leaks:>6}"
        )
    return "\n".join(lines)


def summary(table: dict[str, TypeScore]) -> tuple[float, float, int]:
    """(min recall, min precision over ``ASSERTED_TYPES``, total leaks)."""
    return (
        min(table[t].recall for t in ASSERTED_TYPES),
        min(table[t].precision for t in ASSERTED_TYPES),
        sum(row.leaks for row in table.values()),
    )


if __name__ == "__main__":
    from ingest_platform.privacy.text_scrubber import TextScrubber
    from ingest_platform.privacy.tokens import Pseudonymizer

    scrubber = TextScrubber(Pseudonymizer(b"corpus-key-0123456789abcdef0123", "corpus"))
    for seed in [int(s) for s in sys.argv[1:]] or [DEFAULT_SEED]:
        corpus = generate(seed)
        scores, misses = score(scrubber.find, corpus)
        print(f"seed {seed}: {len(corpus)} texts")
        print(format_scores(scores))
        for line in misses:
            print(line)
