"""Tests for ``ingest_platform.enrichment.features`` on small hand-built hashed-post frames."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from ingest_platform.enrichment.features import (
    DEFAULT_TOPIC_KEYWORDS,
    ENRICHED_COLUMNS,
    compile_keyword_map,
    detect_language,
    enrich_posts,
)

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "platform": ["tiktok"] * 4,
            "post_id": ["p1", "p2", "p3", "p4"],
            "description": [
                "I absolutely love this recipe, the best pasta dinner I have ever made! 🍝🔥🔥 "
                "#foodie [MENTION:cd34]",
                "Hoy vamos a la playa con mis amigos y mi familia para celebrar el cumpleaños de mi hermana",
                "[EMAIL:ab12] #fyp",
                "This is the worst, most disappointing phone I have ever bought. Terrible. "
                "Said nothing useful",
            ],
            "created_at": pd.to_datetime(
                ["2024-05-01T13:45:00Z", "2024-05-02T02:30:00Z", None, "2024-04-30T23:00:00Z"], utc=True
            ),
            "play_count": [1000, 0, None, 400],
            "like_count": [100, 5, 1, 20],
            "comment_count": [10, 1, None, 0],
            "share_count": [5, 0, None, 4],
            "collect_count": [1, 1, 1, 1],
            "hashtags": [["foodie"], ["Travel"], ["fyp"], ["SummerSale", "tech"]],
            "mentions": [["[MENTION:cd34]"], [], None, ["[MENTION:aa11]", "[MENTION:bb22]"]],
        }
    )


@pytest.fixture(scope="module")
def enriched() -> pd.DataFrame:
    return enrich_posts(
        _frame(),
        now=NOW,
        campaign_keywords={"summer_sale": ["summersale", "summer sale"], "black_friday": ["blackfriday"]},
    )


def test_adds_every_feature_column_and_keeps_input(enriched: pd.DataFrame) -> None:
    original = _frame()
    assert list(enriched.columns) == list(original.columns) + list(ENRICHED_COLUMNS)
    pd.testing.assert_frame_equal(enriched[original.columns], original)


def test_input_frame_is_not_mutated() -> None:
    frame = _frame()
    enrich_posts(frame, now=NOW)
    assert list(frame.columns) == list(_frame().columns)


def test_engagement_rate(enriched: pd.DataFrame) -> None:
    rates = enriched["engagement_rate"].tolist()
    assert rates[0] == pytest.approx((100 + 10 + 5) / 1000)
    assert math.isnan(rates[1])  # zero plays
    assert math.isnan(rates[2])  # unknown plays
    assert rates[3] == pytest.approx((20 + 0 + 4) / 400)


def test_engagement_rate_all_interactions_unknown_is_nan() -> None:
    frame = _frame().iloc[:1].assign(like_count=[None], comment_count=[None], share_count=[None])
    assert math.isnan(enrich_posts(frame, now=NOW)["engagement_rate"].iloc[0])


def test_timing(enriched: pd.DataFrame) -> None:
    assert enriched["posting_hour_utc"].tolist()[:2] == [13, 2]
    assert enriched["posting_hour_utc"].isna().tolist() == [False, False, True, False]
    assert enriched["post_age_hours"].iloc[0] == pytest.approx(22.25)
    assert enriched["post_age_hours"].iloc[1] == pytest.approx(9.5)
    assert enriched["post_age_hours"].iloc[3] == pytest.approx(37.0)


def test_naive_now_is_treated_as_utc() -> None:
    frame = _frame().iloc[:1]
    aware = enrich_posts(frame, now=NOW)["post_age_hours"].iloc[0]
    naive = enrich_posts(frame, now=NOW.replace(tzinfo=None))["post_age_hours"].iloc[0]
    assert aware == naive


def test_caption_counts(enriched: pd.DataFrame) -> None:
    assert enriched["emoji_count"].tolist() == [3, 0, 0, 0]
    assert enriched["hashtag_count"].tolist() == [1, 1, 1, 2]
    assert enriched["mention_count"].tolist() == [1, 0, 0, 2]
    assert enriched["caption_length"].tolist() == _frame()["description"].str.len().tolist()


def test_language(enriched: pd.DataFrame) -> None:
    assert enriched["language"].tolist() == ["en", "es", "und", "en"]


def test_language_ignores_tokens_and_hashtags() -> None:
    # Only tokens, hashtags, a handle and emoji: nothing to detect.
    assert detect_language("") == "und"
    frame = _frame().iloc[:1].assign(description=["[EMAIL:ab12] [MENTION:cd34] #foodie #pasta @someone 🍝"])
    assert enrich_posts(frame, now=NOW)["language"].iloc[0] == "und"
    # Spanish prose stays Spanish however many English hashtags and tokens surround it.
    frame = (
        _frame()
        .iloc[:1]
        .assign(
            description=[
                "#love #happy #summer #fun [EMAIL:ab12] Hoy vamos a la playa con mis amigos y mi familia "
                "#beach #vibes #goodtimes [MENTION:cd34] [PHONE:ff00]"
            ]
        )
    )
    assert enrich_posts(frame, now=NOW)["language"].iloc[0] == "es"


def test_sentiment(enriched: pd.DataFrame) -> None:
    sentiment = enriched["sentiment"]
    assert sentiment.between(-1, 1).all()
    assert sentiment.iloc[0] > 0.5
    assert sentiment.iloc[3] < -0.5
    assert sentiment.iloc[2] == 0.0
    assert enriched["sentiment_label"].tolist()[0] == "positive"
    assert enriched["sentiment_label"].tolist()[2:] == ["neutral", "negative"]


def test_topics_whole_word_case_insensitive(enriched: pd.DataFrame) -> None:
    topics = enriched["topics"].tolist()
    assert topics[0] == ["food"]  # caption words + #foodie
    assert topics[1] == ["travel"]  # only via the "Travel" hashtag, case-insensitively
    assert topics[2] == []
    # "tech" hashtag matches; "Said" must not match the "ai" keyword (whole words only).
    assert topics[3] == ["tech"]


def test_campaign_tags(enriched: pd.DataFrame) -> None:
    assert enriched["campaign_tags"].tolist() == [[], [], [], ["summer_sale"]]


def test_custom_topic_map_and_multiword_keywords() -> None:
    frame = (
        _frame().iloc[:1].assign(description=["Deep dive into Machine   Learning pipelines"], hashtags=[[]])
    )
    out = enrich_posts(frame, now=NOW, topic_keywords={"ml": ["machine learning"], "cars": ["car"]})
    assert out["topics"].iloc[0] == ["ml"]
    assert out["campaign_tags"].iloc[0] == []


def test_keyword_map_compiles_default_map() -> None:
    compiled = compile_keyword_map(DEFAULT_TOPIC_KEYWORDS)
    assert set(compiled) == set(DEFAULT_TOPIC_KEYWORDS)
    assert compiled["tech"].search("new #AI tools")
    assert not compiled["tech"].search("she said")


def test_parquet_style_array_cells_and_missing_values() -> None:
    # After a parquet round trip list columns come back as numpy arrays, and cells may be None.
    frame = _frame().assign(
        hashtags=[np.array(["foodie"]), np.array([], dtype=object), None, np.array(["tech", "ai"])],
        mentions=[np.array(["[MENTION:cd34]"]), None, np.array([], dtype=object), None],
        description=[_frame()["description"].iloc[0], None, "", "gadget review"],
    )
    out = enrich_posts(frame, now=NOW)
    assert out["hashtag_count"].tolist() == [1, 0, 0, 2]
    assert out["mention_count"].tolist() == [1, 0, 0, 0]
    assert out["caption_length"].tolist()[1:3] == [0, 0]
    assert out["topics"].iloc[3] == ["tech"]


def test_empty_frame_keeps_schema() -> None:
    out = enrich_posts(_frame().iloc[:0], now=NOW)
    assert len(out) == 0
    assert set(ENRICHED_COLUMNS) <= set(out.columns)
    assert str(out["engagement_rate"].dtype) == "float64"
    assert str(out["posting_hour_utc"].dtype) == "Int64"
