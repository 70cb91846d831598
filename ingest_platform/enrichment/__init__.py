"""Enrichment: per-post features and text embeddings (pure library, no Dagster).

``features`` adds language, engagement, timing, caption statistics, sentiment, topics and
campaign tags to the hashed posts frame. ``embeddings`` holds the embedding providers
(local sentence-transformers, OpenAI-compatible HTTP, Snowflake Cortex, hashing fallback)
and ``CachedEmbedder``. Importing this package never imports torch or sentence-transformers.
"""

from ingest_platform.enrichment.embeddings import (
    CachedEmbedder,
    EmbeddingAPIError,
    EmbeddingProvider,
    HashingEmbeddingProvider,
    LocalSentenceTransformerProvider,
    OpenAICompatibleProvider,
    SnowflakeCortexProvider,
    build_embedding_provider,
    packaged_model_path,
)
from ingest_platform.enrichment.features import (
    DEFAULT_TOPIC_KEYWORDS,
    ENRICHED_COLUMNS,
    detect_language,
    enrich_posts,
)

__all__ = [
    "DEFAULT_TOPIC_KEYWORDS",
    "ENRICHED_COLUMNS",
    "CachedEmbedder",
    "EmbeddingAPIError",
    "EmbeddingProvider",
    "HashingEmbeddingProvider",
    "LocalSentenceTransformerProvider",
    "OpenAICompatibleProvider",
    "SnowflakeCortexProvider",
    "build_embedding_provider",
    "detect_language",
    "enrich_posts",
    "packaged_model_path",
]
