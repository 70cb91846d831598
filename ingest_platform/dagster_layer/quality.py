"""Quality assets (the seed's ``dlq.*`` topics): every rejected record, scrubbed, in one table."""

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
from ingest_platform.dagster_layer.sources import raw_facebook_posts, raw_tiktok_posts


@asset(
    group_name="quality",
    deps=[raw_tiktok_posts, raw_facebook_posts, hashed_posts, enriched_posts, AssetKey("ORDERS")],
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

    Producers spool rejects with raw payloads to the raw store. The table gets the payload's shape
    (keys, numbers, string lengths: see ``privacy.payloads``), the scrubbed reason, the payload's
    hash and where the raw payload lives, deduplicated across reruns.
    """
    import pandas as pd

    from ingest_platform.privacy.payloads import payload_shape
    from ingest_platform.privacy.policies import tokenise_url_handles

    store = raw_store.open()
    letters = store.read_dead_letters()
    scrubber = privacy.scrubber
    frame = pd.DataFrame(
        {
            "source": [letter.source for letter in letters],
            "reason": [scrubber.scrub(letter.reason).text for letter in letters],
            "payload": [payload_shape(letter.payload) for letter in letters],
            "payload_sha256": [letter.payload_sha256 for letter in letters],
            "payload_chars": [len(letter.payload) for letter in letters],
            "raw_payload_uri": [
                store.dead_letter_path(letter.source, letter.partition_key or "") for letter in letters
            ],
            "record_key": [
                None if letter.record_key is None else scrubber.scrub(letter.record_key).text
                for letter in letters
            ],
            "partition_key": [letter.partition_key for letter in letters],
            "run_id": [letter.run_id for letter in letters],
            "rejected_at": [letter.rejected_at for letter in letters],
        }
    )
    frame["record_key"], _ = tokenise_url_handles(frame["record_key"], privacy.pseudonymizer)
    with warehouse.open() as wh:
        result = wh.append_dedup(
            "dead_letters",
            frame,
            key_columns=["source", "payload_sha256", "reason", "partition_key"],
            query_tag=query_tag(context),
        )
        # A fresh warehouse whose first loads rejected nothing has no table yet: zero letters,
        # not an error (an empty frame creates no table).
        by_source = (
            wh.read_sql("SELECT source, COUNT(*) AS n FROM dead_letters GROUP BY source ORDER BY source")
            if "dead_letters" in wh.list_tables()
            else None
        )
    counts = (
        {} if by_source is None else dict(zip(by_source["source"], by_source["n"].astype(int), strict=True))
    )
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
