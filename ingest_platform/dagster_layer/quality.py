"""Quality assets (the seed's ``dlq.*`` topics): every rejected record, scrubbed, in one table."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest_platform.dagster_layer.common import query_tag
from ingest_platform.dagster_layer.enrichment import enriched_posts
from ingest_platform.dagster_layer.privacy import hashed_posts
from ingest_platform.dagster_layer.resources import PrivacyResource, RawStoreResource, WarehouseResource
from ingest_platform.dagster_layer.sources import raw_tiktok_posts

# Warehouse copies of payloads are for diagnosis; the full raw payload stays in the raw store.
MAX_PAYLOAD_CHARS = 8_000


@asset(
    group_name="quality",
    deps=[raw_tiktok_posts, hashed_posts, enriched_posts, AssetKey("ORDERS")],
    pool="warehouse",
    kinds={"python", "duckdb", "snowflake"},
    automation_condition=AutomationCondition.eager(),
)
def dead_letters(
    context: AssetExecutionContext,
    raw_store: RawStoreResource,
    privacy: PrivacyResource,
    warehouse: WarehouseResource,
) -> MaterializeResult:
    """Every record rejected anywhere: source, reason, scrubbed payload, run id.

    Producers spool rejects with raw payloads to the raw store; this asset scrubs the payloads
    (they may hold personal data) and loads them, deduplicated, into the ``dead_letters`` table.
    """
    letters = raw_store.open().read_dead_letters()
    frame = pd.DataFrame([letter.model_dump() for letter in letters])
    if frame.empty:
        frame = pd.DataFrame(
            columns=["source", "reason", "payload", "payload_sha256", "record_key", "partition_key", "run_id"]
        )
    scrubber = privacy.scrubber
    frame["payload"] = [
        scrubber.scrub(text[:MAX_PAYLOAD_CHARS]).text for text in frame["payload"].astype(str)
    ]
    frame["reason"] = [scrubber.scrub(text).text for text in frame["reason"].astype(str)]
    if "record_key" in frame:
        frame["record_key"] = [
            None if key is None or pd.isna(key) else scrubber.scrub(str(key)).text
            for key in frame["record_key"]
        ]
    frame["payload_truncated"] = [len(letter.payload) > MAX_PAYLOAD_CHARS for letter in letters]
    with warehouse.open() as wh:
        result = wh.append_dedup(
            "dead_letters",
            frame,
            key_columns=["source", "payload_sha256", "reason", "partition_key"],
            query_tag=query_tag(context),
        )
        by_source = wh.read_sql(
            "SELECT source, COUNT(*) AS n FROM dead_letters GROUP BY source ORDER BY source"
        )
    counts = dict(zip(by_source["source"], by_source["n"].astype(int), strict=True))
    by_reason = frame.groupby("source")["reason"].agg(
        lambda r: r.str.split(":").str[0].value_counts().to_dict()
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(sum(counts.values())),
            "new_dead_letters": MetadataValue.int(result.rows),
            "by_source": MetadataValue.json(counts),
            "reasons": MetadataValue.json(by_reason.to_dict() if len(frame) else {}),
        }
    )
