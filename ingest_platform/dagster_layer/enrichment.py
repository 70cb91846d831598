"""Enrichment as an asset: features and embeddings over pseudonymised posts."""

import json
from datetime import UTC, datetime

from dagster import AssetExecutionContext, AutomationCondition, MaterializeResult, MetadataValue, asset

from ingest_platform.dagster_layer.common import daily_partitions, numeric_metadata, query_tag
from ingest_platform.dagster_layer.privacy import hashed_posts
from ingest_platform.dagster_layer.resources import EmbeddingResource, WarehouseResource

_LIST_COLUMNS = ("hashtags", "mentions", "mentions_tokens")


def _as_list(value: object) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        return []
    return list(value)  # numpy arrays from list-typed columns


@asset(
    group_name="enrichment",
    partitions_def=daily_partitions,
    deps=[hashed_posts],
    pool="warehouse",
    kinds={"python", "duckdb", "snowflake"},
    automation_condition=AutomationCondition.eager(),
)
def enriched_posts(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    embeddings: EmbeddingResource,
) -> MaterializeResult:
    """Pseudonymised posts with language, sentiment, engagement, topics and an embedding vector."""
    from ingest_platform.enrichment.embeddings import LocalSentenceTransformerProvider
    from ingest_platform.enrichment.features import enrich_posts

    partition = context.partition_key
    with warehouse.open() as wh:
        hashed = wh.read_sql("SELECT * FROM hashed_posts WHERE partition_date = ?", [partition])
        for column in _LIST_COLUMNS:
            if column in hashed.columns:
                hashed[column] = hashed[column].map(_as_list)
        enriched = enrich_posts(hashed, now=datetime.now(UTC))
        embedder = embeddings.embedder(warehouse)
        texts = enriched["description"].fillna("").astype(str).tolist()
        vectors = embedder.embed(texts) if texts else []
        enriched["embedding"] = [list(map(float, vector)) for vector in vectors]
        enriched["embedding_model"] = embedder.provider.model_name
        result = wh.replace_partition(
            "enriched_posts",
            enriched,
            partition_column="partition_date",
            partition_value=partition,
            query_tag=query_tag(context),
        )
    context.log.info(
        f"Enriched {len(enriched)} posts; embeddings {embedder.hits} cached, {embedder.misses} new"
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(len(enriched)),
            "embedding_model": embedder.provider.model_name,
            "embedding_dimension": MetadataValue.int(embedder.provider.dimension),
            **(
                {
                    "embedding_precision": embedder.provider.precision,
                    "embedding_runtime": embedder.provider.runtime,
                }
                if isinstance(embedder.provider, LocalSentenceTransformerProvider)
                else {}
            ),
            "embeddings_cached": MetadataValue.int(embedder.hits),
            "embeddings_computed": MetadataValue.int(embedder.misses),
            "languages": MetadataValue.json(
                enriched["language"].value_counts().to_dict() if len(enriched) else {}
            ),
            **numeric_metadata(result.as_metadata()),
        }
    )
