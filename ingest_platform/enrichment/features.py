"""Per-post features over the pseudonymised (``hashed_posts``) frame.

``enrich_posts`` adds language, engagement, timing, caption statistics, sentiment, topics and
campaign tags. Everything runs offline: language via py3langid's bundled model, sentiment via
VADER's bundled lexicon, emoji via the ``emoji`` package's tables.

The input captions are already scrubbed, so they carry privacy tokens such as ``[EMAIL:ab12]``
or ``[MENTION:cd34]``. Tokens, URLs and @handles are removed before language detection,
sentiment and topic matching so they cannot skew any of them; language detection also drops
hashtags and emoji (not prose in any language), while sentiment keeps both (VADER scores
emoji, and "#blessed" carries the word "blessed").

VADER is an English lexicon: its score is meaningful for English captions and weak for other
languages (use ``language`` to filter). Its compound score and the usual +/-0.05 cut-offs
give ``sentiment`` and ``sentiment_label``.

Column-wise work (cleaning, counts, timing, engagement, topic matching) is vectorised with
pandas; the three library calls (language, emoji, sentiment) are per-row but each runs at
tens of thousands of texts per second, so the whole function stays well above 2k posts/s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_TOPIC_KEYWORDS",
    "ENRICHED_COLUMNS",
    "MIN_LANGUAGE_CONFIDENCE",
    "MIN_LANGUAGE_LETTERS",
    "SENTIMENT_THRESHOLD",
    "compile_keyword_map",
    "detect_language",
    "enrich_posts",
]

# A small, deliberately conservative map: whole-word matches only, so generic words that
# appear everywhere ("new", "love") are left out on purpose.
# fmt: off
DEFAULT_TOPIC_KEYWORDS: dict[str, list[str]] = {
    "marketing": [
        "marketing", "brand", "branding", "advertising", "promo", "promotion", "influencer",
        "sponsored", "ad", "ugc", "campaign", "giveaway", "discount", "sale",
    ],
    "tech": [
        "tech", "technology", "ai", "artificial intelligence", "machine learning", "coding",
        "programming", "software", "developer", "gadget", "gadgets", "iphone", "android", "app",
        "startup", "python",
    ],
    "food": [
        "food", "foodie", "recipe", "recipes", "cooking", "baking", "dinner", "lunch",
        "breakfast", "restaurant", "delicious", "yummy", "vegan", "pasta", "pizza", "tacos",
    ],
    "fitness": [
        "fitness", "workout", "gym", "training", "exercise", "cardio", "yoga", "running",
        "protein", "gains", "hiit", "pilates", "fitnessmotivation",
    ],
    "travel": [
        "travel", "traveling", "travelling", "trip", "vacation", "holiday", "beach", "hotel",
        "flight", "wanderlust", "backpacking", "roadtrip", "tourism",
    ],
    "finance": [
        "finance", "money", "investing", "investment", "stocks", "crypto", "bitcoin", "budget",
        "savings", "personal finance", "financialfreedom", "trading", "debt",
    ],
    "fashion": [
        "fashion", "outfit", "ootd", "style", "streetwear", "makeup", "skincare", "beauty",
    ],
    "gaming": ["gaming", "gamer", "videogames", "playstation", "xbox", "nintendo", "esports"],
}
# fmt: on

# Columns ``enrich_posts`` adds, in order (the Dagster layer uses this for schema checks).
ENRICHED_COLUMNS: tuple[str, ...] = (
    "language",
    "engagement_rate",
    "post_age_hours",
    "posting_hour_utc",
    "caption_length",
    "emoji_count",
    "hashtag_count",
    "mention_count",
    "sentiment",
    "sentiment_label",
    "topics",
    "campaign_tags",
)

# Language detection on a handful of letters is a coin toss: below this many letters (after
# removing tokens, hashtags, handles, URLs and emoji) or below this normalised confidence
# the language is reported as 'und' (ISO 639-2 "undetermined") rather than guessed.
MIN_LANGUAGE_LETTERS = 8
MIN_LANGUAGE_CONFIDENCE = 0.5

# VADER's own recommended cut-offs for the compound score.
SENTIMENT_THRESHOLD = 0.05

# Privacy tokens written by the scrubber: "[EMAIL:ab12]", "[MENTION:cd34]", "[PHONE:...]".
_TOKEN_RE = r"\[[A-Z][A-Z0-9_]*:[^\]\s]*\]"
_URL_RE = r"(?:https?://|www\.)\S+"
_HASHTAG_RE = r"#[^\s#@]+"
_HANDLE_RE = r"@[\w.]+"
_LETTER_RE = r"[^\W\d_]"
_EMOJI_CANDIDATE_RE = re.compile(r"[#*0-9]?[^\x00-\x7f]+")


def _utc_timestamp(value: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


@lru_cache(maxsize=1)
def _language_identifier() -> Any:
    # norm_probs=True gives a calibrated confidence we can threshold; the module-level
    # py3langid.classify returns raw log-scores which can't be compared across texts.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=1)
def _sentiment_analyzer() -> Any:
    # Loading the lexicon takes ~50 ms; do it once per process, not per call.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def detect_language(text: str, *, letters: int | None = None) -> str:
    """ISO 639-1 code for an already-cleaned text, or ``'und'`` when it is too short/unsure.

    ``letters`` lets a caller pass a precomputed letter count (``enrich_posts`` does so to
    keep the work vectorised).
    """
    if letters is None:
        letters = len(re.findall(_LETTER_RE, text))
    if letters < MIN_LANGUAGE_LETTERS:
        return "und"
    lang, confidence = _language_identifier().classify(text)
    return str(lang) if confidence >= MIN_LANGUAGE_CONFIDENCE else "und"


def _as_list(value: Any) -> list[str]:
    """Normalise a list-ish cell: lists survive, parquet round-trips give numpy arrays."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return [str(v) for v in value if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if isinstance(value, float) and np.isnan(value):
        return []
    return [str(value)]


def compile_keyword_map(keywords: Mapping[str, Iterable[str]] | None) -> dict[str, re.Pattern[str]]:
    """One case-insensitive whole-word regex per name.

    Whole-word means the keyword is not glued to other word characters, so "ai" matches
    "#ai" and "AI tools" but not "said". Multi-word keywords match with any whitespace.
    """
    compiled: dict[str, re.Pattern[str]] = {}
    for name, words in (keywords or {}).items():
        alternatives = sorted(
            {r"\s+".join(map(re.escape, w.strip().lower().split())) for w in words if w and w.strip()},
            key=len,
            reverse=True,  # longest first so "machine learning" wins over "machine"
        )
        if alternatives:
            compiled[name] = re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
    return compiled


def _match_keywords(haystack: pd.Series, patterns: dict[str, re.Pattern[str]]) -> pd.Series:
    """List of names whose pattern occurs in each haystack string (names in map order)."""
    if not patterns or haystack.empty:
        return pd.Series([[] for _ in range(len(haystack))], index=haystack.index, dtype=object)
    hits = np.column_stack(
        [haystack.str.contains(p, regex=True).to_numpy(dtype=bool) for p in patterns.values()]
    )
    names = np.array(list(patterns), dtype=object)
    return pd.Series([names[row].tolist() for row in hits], index=haystack.index, dtype=object)


def _scan_emoji(text: str) -> tuple[int, str]:
    """(number of emoji, text with each emoji replaced by a space) in one pass.

    The emoji tokenizer walks every character, which made it the slowest step; an emoji
    sequence never contains ASCII except a keycap's leading ``#``, ``*`` or digit, so only
    the non-ASCII runs found by a regex are handed to it.
    """
    if text.isascii():
        return 0, text
    import emoji

    count, parts, last = 0, [], 0
    for run in _EMOJI_CANDIDATE_RE.finditer(text):
        for item in emoji.emoji_list(run.group()):
            parts.append(text[last : run.start() + item["match_start"]])
            last = run.start() + item["match_end"]
            count += 1
    if not count:
        return 0, text
    parts.append(text[last:])
    return count, " ".join(parts)


def _strip(texts: pd.Series, *patterns: str) -> pd.Series:
    for pattern in patterns:
        texts = texts.str.replace(pattern, " ", regex=True)
    return texts


def _count_column(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype="float64")
    return pd.to_numeric(df[column], errors="coerce").astype("float64")


def _engagement_rate(df: pd.DataFrame) -> pd.Series:
    plays = _count_column(df, "play_count")
    # A hidden like or share count is treated as 0 rather than poisoning the whole rate,
    # but if all three are unknown we have no engagement signal at all: NaN.
    parts = pd.concat([_count_column(df, c) for c in ("like_count", "comment_count", "share_count")], axis=1)
    interactions = parts.sum(axis=1, min_count=1)
    rate = interactions / plays.where(plays > 0)
    return rate.astype("float64")


def enrich_posts(
    df: pd.DataFrame,
    *,
    now: datetime,
    topic_keywords: Mapping[str, Iterable[str]] | None = None,
    campaign_keywords: Mapping[str, Iterable[str]] | None = None,
) -> pd.DataFrame:
    """Return a copy of the hashed posts frame with the feature columns in ``ENRICHED_COLUMNS``.

    ``now`` anchors ``post_age_hours`` (pass the partition's end or the run time, so a re-run
    gives the same answer). ``topic_keywords`` defaults to ``DEFAULT_TOPIC_KEYWORDS``;
    ``campaign_keywords`` (e.g. ``{"summer_sale": ["summersale", "summer sale"]}``) defaults to
    none. Both match case-insensitively on whole words in the caption or the hashtags.
    """
    out = df.copy()
    index = out.index
    captions = (
        out["description"].fillna("").astype(str)
        if "description" in out.columns
        else pd.Series("", index=index, dtype=object)
    )
    hashtags = (
        out["hashtags"].map(_as_list)
        if "hashtags" in out.columns
        else pd.Series([[] for _ in range(len(out))], index=index, dtype=object)
    )
    hashtags = hashtags.map(lambda tags: [t.lstrip("#") for t in tags if t.lstrip("#")])

    # One emoji scan per caption gives both the count and an emoji-free copy for language id.
    emoji_scan = [_scan_emoji(text) for text in captions]
    emoji_counts = np.fromiter((n for n, _ in emoji_scan), dtype="int64", count=len(emoji_scan))
    without_emoji = pd.Series([t for _, t in emoji_scan], index=index, dtype=object)

    # Topics and sentiment see the caption without privacy tokens, URLs and @handles;
    # language id additionally loses hashtags and emoji, which are not prose in any language.
    without_tokens = _strip(captions, _TOKEN_RE, _URL_RE, _HANDLE_RE)
    prose = _strip(without_emoji, _TOKEN_RE, _URL_RE, _HANDLE_RE, _HASHTAG_RE)
    prose = prose.str.replace(r"\s+", " ", regex=True).str.strip()
    letters = prose.str.count(_LETTER_RE)
    out["language"] = pd.Series(
        [detect_language(t, letters=int(n)) for t, n in zip(prose, letters, strict=True)],
        index=index,
        dtype=object,
    )

    out["engagement_rate"] = _engagement_rate(out)

    created = (
        pd.to_datetime(out["created_at"], utc=True, errors="coerce")
        if "created_at" in out.columns
        else pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    )
    anchor = _utc_timestamp(now)
    out["post_age_hours"] = ((anchor - created) / pd.Timedelta(hours=1)).astype("float64")
    out["posting_hour_utc"] = created.dt.hour.astype("Int64")

    out["caption_length"] = captions.str.len().astype("int64")
    out["emoji_count"] = pd.Series(emoji_counts, index=index, dtype="int64")
    out["hashtag_count"] = hashtags.map(len).astype("int64")
    if "mentions" in out.columns:
        out["mention_count"] = out["mentions"].map(lambda v: len(_as_list(v))).astype("int64")
    else:
        # No structured column: count mention tokens and any unscrubbed @handles in the text.
        mention_re = r"\[MENTION:[^\]\s]*\]|" + _HANDLE_RE
        out["mention_count"] = captions.str.count(mention_re).astype("int64")

    # VADER reads hashtag words ("#blessed" -> "blessed") and emoji, so give it those back.
    sentiment_text = without_tokens.str.replace("#", " ", regex=False)
    analyzer = _sentiment_analyzer()
    compound = np.fromiter(
        (analyzer.polarity_scores(t)["compound"] if t.strip() else 0.0 for t in sentiment_text),
        dtype="float64",
        count=len(sentiment_text),
    )
    out["sentiment"] = pd.Series(compound, index=index, dtype="float64")
    out["sentiment_label"] = pd.Series(
        np.select(
            [compound >= SENTIMENT_THRESHOLD, compound <= -SENTIMENT_THRESHOLD],
            ["positive", "negative"],
            default="neutral",
        ),
        index=index,
        dtype=object,
    )

    # Topic haystack: the caption (tokens removed so "[EMAIL:..]" can't match) plus hashtags.
    haystack = without_tokens + " " + hashtags.map(" ".join)
    topics = compile_keyword_map(DEFAULT_TOPIC_KEYWORDS if topic_keywords is None else topic_keywords)
    out["topics"] = _match_keywords(haystack, topics)
    out["campaign_tags"] = _match_keywords(haystack, compile_keyword_map(campaign_keywords))
    return out
