"""Per-table column policies: what happens to every column before data leaves the raw store.

Each column gets one action: ``hash`` (keyed token, renamed ``<col>_token`` so nobody takes
it for the raw value), ``drop``, ``keep``, ``generalise`` (postcode -> outward code, birth
date -> birth year) or ``scrub`` (free text through ``TextScrubber``). Columns the policy does
not name follow the table default, which is ``drop`` for tables holding personal data: a
column added upstream tomorrow must not leak into the warehouse by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from ingest_platform.privacy.text_scrubber import TextScrubber
from ingest_platform.privacy.tokens import TOKEN_KINDS, Pseudonymizer, TokenKind


class Action(StrEnum):
    HASH = "hash"
    DROP = "drop"
    KEEP = "keep"
    GENERALISE = "generalise"
    SCRUB = "scrub"
    URL_HANDLES = "url_handles"  # tokenise /@handle path segments of URLs, whatever the host


class Generalisation(StrEnum):
    POSTCODE_PREFIX = "postcode_prefix"
    BIRTH_YEAR = "birth_year"
    SOUND_TITLE = "sound_title"  # "original sound - <nickname>" -> "original sound"


@dataclass(frozen=True)
class ColumnPolicy:
    """What to do with one column. Prefer the constructors: ``ColumnPolicy.hashed("email")``."""

    action: Action
    kind: TokenKind = "generic"  # normalisation for HASH
    output: str | None = None  # output column name; None = the action's default
    generalisation: Generalisation | None = None
    many: bool = False  # HASH over a list column (mentions) -> list of tokens
    handle_column: str | None = None  # URL_HANDLES: the row's own handle, tokenised wherever it appears

    def __post_init__(self) -> None:
        if self.action is Action.HASH and self.kind not in TOKEN_KINDS:
            raise ValueError(f"unknown token kind {self.kind!r}")
        if self.action is Action.GENERALISE and self.generalisation is None:
            raise ValueError("a generalise policy needs a generalisation")

    @classmethod
    def hashed(
        cls, kind: TokenKind = "generic", *, output: str | None = None, many: bool = False
    ) -> ColumnPolicy:
        return cls(Action.HASH, kind=kind, output=output, many=many)

    @classmethod
    def dropped(cls) -> ColumnPolicy:
        return cls(Action.DROP)

    @classmethod
    def kept(cls, *, output: str | None = None) -> ColumnPolicy:
        return cls(Action.KEEP, output=output)

    @classmethod
    def generalised(cls, how: Generalisation | str, *, output: str | None = None) -> ColumnPolicy:
        return cls(Action.GENERALISE, generalisation=Generalisation(how), output=output)

    @classmethod
    def url_handles(cls, *, output: str | None = None, handle_column: str | None = None) -> ColumnPolicy:
        return cls(Action.URL_HANDLES, kind="handle", output=output, handle_column=handle_column)

    @classmethod
    def scrubbed(cls, *, output: str | None = None) -> ColumnPolicy:
        return cls(Action.SCRUB, output=output)

    def output_name(self, column: str) -> str | None:
        """Name of the column this policy writes for ``column`` (None when dropped)."""
        if self.action is Action.DROP:
            return None
        if self.output:
            return self.output
        if self.action is Action.HASH:
            return f"{column}_token" if not self.many else f"{column}_tokens"
        if self.action is Action.GENERALISE and self.generalisation is Generalisation.BIRTH_YEAR:
            return "birth_year"
        if self.action is Action.GENERALISE and self.generalisation is Generalisation.POSTCODE_PREFIX:
            return f"{column}_area"
        return column


@dataclass
class PolicyStats:
    """What a policy did to one frame; small and JSON-able for asset metadata."""

    table: str
    rows: int = 0
    hashed: dict[str, int] = field(default_factory=dict)  # output column -> non-null tokens
    generalised: dict[str, int] = field(default_factory=dict)  # output column -> non-null values
    scrubbed: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> type -> count
    # Kept identifier columns: values that were personal data, replaced by their token.
    kept_tokenised: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> type -> count
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # named in the policy as drop
    unknown_dropped: list[str] = field(default_factory=list)  # not in the policy, default drop
    unknown_kept: list[str] = field(default_factory=list)  # not in the policy, default keep
    missing: list[str] = field(default_factory=list)  # in the policy, absent from the frame

    @property
    def found(self) -> dict[str, int]:
        """Personal values replaced in free text, per entity type, over all scrubbed columns."""
        totals: dict[str, int] = {}
        for counts in self.scrubbed.values():
            for kind, count in counts.items():
                totals[kind] = totals.get(kind, 0) + count
        return totals

    @property
    def pii_found_in_text(self) -> int:
        return sum(self.found.values())

    @property
    def pii_in_kept_columns(self) -> int:
        """Values of kept identifier columns (order_id, post_id...) that were personal data."""
        return sum(sum(counts.values()) for counts in self.kept_tokenised.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "hashed": dict(self.hashed),
            "generalised": dict(self.generalised),
            "scrubbed": {k: dict(v) for k, v in self.scrubbed.items()},
            "kept": list(self.kept),
            "dropped": list(self.dropped),
            "unknown_dropped": list(self.unknown_dropped),
            "unknown_kept": list(self.unknown_kept),
            "missing": list(self.missing),
            "found": self.found,
            "pii_found_in_text": self.pii_found_in_text,
            "kept_tokenised": {k: dict(v) for k, v in self.kept_tokenised.items()},
            "pii_in_kept_columns": self.pii_in_kept_columns,
        }


@dataclass(frozen=True)
class TablePolicy:
    name: str
    columns: dict[str, ColumnPolicy]
    default: Action | str = Action.DROP  # "drop" | "keep"

    def __post_init__(self) -> None:
        if Action(self.default) not in (Action.DROP, Action.KEEP):
            raise ValueError("a table default must be 'drop' or 'keep'")
        object.__setattr__(self, "default", Action(self.default))
        outputs = [p.output_name(c) for c, p in self.columns.items() if p.output_name(c)]
        duplicated = {n for n in outputs if outputs.count(n) > 1}
        if duplicated:
            raise ValueError(
                f"policy {self.name!r} writes the same output column twice: {sorted(duplicated)}"
            )

    def policy_for(self, column: str) -> ColumnPolicy:
        policy = self.columns.get(column)
        if policy is not None:
            return policy
        return ColumnPolicy.kept() if self.default is Action.KEEP else ColumnPolicy.dropped()

    def output_columns(self, input_columns: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """Output column names, in input order (the policy's own order when none given)."""
        columns = list(self.columns) if input_columns is None else list(input_columns)
        names = [self.policy_for(c).output_name(c) for c in columns]
        return [n for n in names if n is not None]

    def apply(
        self,
        df: pd.DataFrame,
        pseudonymizer: Pseudonymizer,
        scrubber: TextScrubber | None = None,
    ) -> tuple[pd.DataFrame, PolicyStats]:
        """The pseudonymised frame (same row order and index) and what was done."""
        stats = PolicyStats(table=self.name, rows=len(df))
        stats.missing = [c for c in self.columns if c not in df.columns]
        out: dict[str, pd.Series] = {}
        for column in df.columns:
            column = str(column)
            named = column in self.columns
            policy = self.policy_for(column)
            action = policy.action
            series = df[column]
            target = policy.output_name(column)
            if action is Action.DROP:
                (stats.dropped if named else stats.unknown_dropped).append(column)
                continue
            assert target is not None
            if action is Action.KEEP:
                if scrubber is None:
                    scrubber = TextScrubber(pseudonymizer, default_region=pseudonymizer.default_region)
                values, counts = tokenise_personal_values(series, pseudonymizer, scrubber)
                out[target] = values
                if counts:
                    stats.kept_tokenised[target] = counts
                (stats.kept if named else stats.unknown_kept).append(column)
            elif action is Action.HASH:
                if policy.many:
                    tokens = pseudonymizer.tokenize_lists(series, policy.kind)
                    stats.hashed[target] = int(sum(len(t) for t in tokens if t))
                else:
                    tokens = pseudonymizer.tokenize_series(series, policy.kind)
                    stats.hashed[target] = int(tokens.notna().sum())
                out[target] = tokens.rename(target)
            elif action is Action.GENERALISE:
                assert policy.generalisation is not None
                values = generalise(series, policy.generalisation)
                out[target] = values.rename(target)
                stats.generalised[target] = int(values.notna().sum())
            elif action is Action.URL_HANDLES:
                own_handles = (
                    df[policy.handle_column] if policy.handle_column and policy.handle_column in df else None
                )
                values, replaced = tokenise_url_handles(series, pseudonymizer, own_handles)
                out[target] = values.rename(target)
                stats.scrubbed[target] = {"URL_HANDLE": replaced}
            elif action is Action.SCRUB:
                if scrubber is None:
                    scrubber = TextScrubber(pseudonymizer, default_region=pseudonymizer.default_region)
                scrubbed, totals = scrubber.scrub_series(series)
                out[target] = scrubbed.rename(target)
                stats.scrubbed[target] = totals
        return pd.DataFrame(out, index=df.index) if out else pd.DataFrame(index=df.index), stats


# --- kept identifiers -------------------------------------------------------------------------

# The token kind (normalisation) of each detected type: an order id that is an e-mail gets the
# token ``customer_email`` gets for the same address, so the two still join.
_KIND_OF_TYPE: dict[str, TokenKind] = {
    "EMAIL": "email", "PHONE": "phone", "CARD": "card", "IBAN": "iban", "IP": "ip",
    "URL_HANDLE": "generic", "MENTION": "handle", "PARTIAL": "generic",
}  # fmt: skip


def tokenise_personal_values(
    series: pd.Series, pseudonymizer: Pseudonymizer, scrubber: TextScrubber
) -> tuple[pd.Series, dict[str, int]]:
    """A kept column with every value the detector finds to be personal data replaced by its
    keyed token (typed by what was found, so it stays joinable), and the count per type.

    Ids are kept because they join tables; an id that *is* an e-mail or phone number would
    carry the person into the warehouse. Non-string columns (counts, flags, timestamps) pass
    through untouched, and so does a column where nothing is found (same object, no copy).
    """
    if series.empty or not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return series, {}
    values = series.tolist()
    found = scrubber.personal_values(values)
    if not found:
        return series, {}
    counts: dict[str, int] = {}
    replaced = list(values)
    for position, kind in found.items():
        replaced[position] = pseudonymizer.token(values[position], _KIND_OF_TYPE[kind])
        counts[kind] = counts.get(kind, 0) + 1
    return pd.Series(replaced, index=series.index, name=series.name, dtype=object), counts


# --- URLs ------------------------------------------------------------------------------------

# A profile path segment on any host (tiktok.com, a regional mirror, the local sandbox): the
# free-text scrubber only knows social-network domains, but our own source URLs can be anywhere.
_URL_HANDLE_SEGMENT = re.compile(r"(?<=/)@([A-Za-z0-9_.\-]{1,64})")


def tokenise_url_handles(
    series: pd.Series, pseudonymizer: Pseudonymizer, own_handles: pd.Series | None = None
) -> tuple[pd.Series, int]:
    """``…/@alice/video/1`` -> ``…/@[URL_HANDLE:ab12cd34]/video/1`` with the handle's keyed tag.

    ``own_handles`` (the row's author handle) also catches profile URLs without an ``@``, such as
    ``facebook.com/<page>``: any path segment equal to the row's handle, in any case, is replaced.
    """
    replaced = 0

    def tag(handle: str) -> str:
        return (
            f"[URL_HANDLE:{pseudonymizer.short_token(pseudonymizer.normalise(handle, 'handle'), 'handle')}]"
        )

    def one(value: object, own: object) -> object:
        nonlocal replaced
        if not isinstance(value, str):
            return value

        def swap(match: re.Match[str]) -> str:
            nonlocal replaced
            replaced += 1
            return "@" + tag(match.group(1))

        value = _URL_HANDLE_SEGMENT.sub(swap, value)
        if isinstance(own, str) and own.strip():
            wanted = own.strip().lstrip("@").casefold()
            head, sep, rest = value.partition("://")
            parts = (rest if sep else head).split("/")
            for index, part in enumerate(parts[1:] if sep else parts, start=1 if sep else 0):
                segment = part.split("?")[0]
                if segment.lstrip("@").casefold() == wanted:
                    parts[index] = part.replace(
                        segment, ("@" if segment.startswith("@") else "") + tag(wanted), 1
                    )
                    replaced += 1
            value = head + sep + "/".join(parts) if sep else "/".join(parts)
        return value

    owns = own_handles.tolist() if own_handles is not None else [None] * len(series)
    values = pd.Series([one(v, o) for v, o in zip(series.tolist(), owns, strict=True)], index=series.index)
    return values, replaced


# --- generalisations --------------------------------------------------------------------------

_UK_POSTCODE_NO_SPACE = r"^[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}$"
_YEAR = r"(?<!\d)(1[89]\d{2}|20\d{2})(?!\d)"


def generalise(series: pd.Series, how: Generalisation) -> pd.Series:
    if how is Generalisation.POSTCODE_PREFIX:
        return postcode_prefix(series)
    if how is Generalisation.BIRTH_YEAR:
        return birth_year(series)
    if how is Generalisation.SOUND_TITLE:
        return sound_title(series)
    raise ValueError(f"unknown generalisation {how!r}")


# TikTok names a user's own audio "original sound - <nickname>" (localised): the nickname is
# the author's, so it goes; licensed track titles stay as they are.
_ORIGINAL_SOUND = (
    r"(?i)^\s*(original sound|sonido original|son original|som original|originalton|suono originale|"
    r"orijinal ses|suara asli|âm thanh gốc|оригинальный звук|dźwięk oryginalny|originele sound|"
    r"オリジナル楽曲|原声|오리지널 사운드)\s*[-–—:|]\s*\S.*$"
)


def sound_title(series: pd.Series) -> pd.Series:
    text = series.astype("string")
    generic = text.str.extract(_ORIGINAL_SOUND, expand=False)
    result = generic.where(generic.notna(), text)
    return pd.Series(result.to_numpy(dtype=object, na_value=None), index=series.index, name=series.name)


def postcode_prefix(series: pd.Series) -> pd.Series:
    """Coarse area of a postcode: the UK outward code ("SW1A 1AA" -> "SW1A"), else the part
    before a space or dash, and for bare digits (US ZIP, DE PLZ...) the first three digits."""
    text = series.astype("string").str.strip().str.upper()
    text = text.mask(text == "")
    first = text.str.split(r"[\s\-]+", n=1, regex=True).str[0].astype("string")
    uk_compact = text.str.match(_UK_POSTCODE_NO_SPACE).fillna(False).astype(bool)
    digits_only = first.str.fullmatch(r"\d+").fillna(False).astype(bool)
    result = first.where(~uk_compact, text.str[:-3])
    result = result.where(~(digits_only & ~uk_compact), first.str[:3])
    return pd.Series(result.to_numpy(dtype=object, na_value=None), index=series.index, name=series.name)


def birth_year(series: pd.Series) -> pd.Series:
    """The birth year (nullable Int64) from dates in any common spelling, or dates/Timestamps."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.year.astype("Int64")
    values = series.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
    years = values.astype("string").str.extract(_YEAR, expand=False)
    return pd.to_numeric(years, errors="coerce").astype("Int64")


# --- the platform's tables --------------------------------------------------------------------

_KEEP = ColumnPolicy.kept()

POSTS_POLICY = TablePolicy(
    name="posts",
    columns={
        "platform": _KEEP,
        "post_id": _KEEP,
        "description": ColumnPolicy.scrubbed(),
        "created_at": _KEEP,
        "author_id": ColumnPolicy.hashed("generic"),
        "author_handle": ColumnPolicy.hashed("handle"),
        "author_nickname": ColumnPolicy.hashed("generic"),
        "author_sec_uid": ColumnPolicy.hashed("generic"),
        "author_bio": ColumnPolicy.scrubbed(),
        "author_verified": _KEEP,
        "play_count": _KEEP,
        "like_count": _KEEP,
        "comment_count": _KEEP,
        "share_count": _KEEP,
        "collect_count": _KEEP,
        "hashtags": _KEEP,
        # Same kind as author_handle, so a mention token joins the mentioned author's token.
        "mentions": ColumnPolicy.hashed("handle", output="mention_tokens", many=True),
        "music_id": _KEEP,
        # For original sounds TikTok credits the poster: the title embeds the nickname and the
        # music author *is* the nickname. Same kind as author_nickname, so the tokens join.
        "music_title": ColumnPolicy.generalised(Generalisation.SOUND_TITLE, output="music_title"),
        "music_author": ColumnPolicy.hashed("generic"),
        "music_original": _KEEP,
        "duration_seconds": _KEEP,
        "location_created": _KEEP,
        "is_ad": _KEEP,
        "is_slideshow": _KEEP,
        # Post URLs embed the author's handle (tiktok.com/@name/video/...): scrub, don't keep.
        "source_url": ColumnPolicy.url_handles(handle_column="author_handle"),
        "scraped_at": _KEEP,
        "proxy_id": _KEEP,
        "backend": _KEEP,
    },
    default=Action.DROP,
)

ORDERS_POLICY = TablePolicy(
    name="orders",
    columns={
        "order_id": _KEEP,
        "created_at": _KEEP,
        "customer_name": ColumnPolicy.hashed("name"),
        "customer_email": ColumnPolicy.hashed("email"),
        "customer_phone": ColumnPolicy.hashed("phone"),
        "shipping_address": ColumnPolicy.dropped(),
        "postcode": ColumnPolicy.generalised(Generalisation.POSTCODE_PREFIX, output="postcode_area"),
        "customer_ip": ColumnPolicy.hashed("ip"),
        "birth_date": ColumnPolicy.generalised(Generalisation.BIRTH_YEAR, output="birth_year"),
        "currency": _KEEP,
        "amount": _KEEP,
        "items": _KEEP,
        "note": ColumnPolicy.scrubbed(),
    },
    default=Action.DROP,
)

POSTS_OUTPUT_COLUMNS: tuple[str, ...] = tuple(POSTS_POLICY.output_columns())
ORDERS_OUTPUT_COLUMNS: tuple[str, ...] = tuple(ORDERS_POLICY.output_columns())

__all__ = [
    "ORDERS_OUTPUT_COLUMNS",
    "ORDERS_POLICY",
    "POSTS_OUTPUT_COLUMNS",
    "POSTS_POLICY",
    "Action",
    "ColumnPolicy",
    "Generalisation",
    "PolicyStats",
    "TablePolicy",
    "birth_year",
    "generalise",
    "postcode_prefix",
    "sound_title",
]
