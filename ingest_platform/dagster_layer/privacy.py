"""The privacy shield as an asset: raw posts in, pseudonymised posts into the warehouse."""

from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest_platform.dagster_layer.common import daily_partitions, numeric_metadata, query_tag
from ingest_platform.dagster_layer.resources import PrivacyResource, RawStoreResource, WarehouseResource
from ingest_platform.dagster_layer.sources import raw_facebook_posts, raw_tiktok_posts

if TYPE_CHECKING:
    import pandas as pd

# Raw columns whose values must never appear anywhere in the pseudonymised output.
_IDENTIFYING_COLUMNS = ("author_handle", "author_nickname", "author_sec_uid", "author_id")


def find_raw_values(raw: "pd.DataFrame", output: "pd.DataFrame") -> list[str]:
    """Raw identifying values that survived into ``output`` (should be none)."""
    needles = {
        str(value)
        for column in _IDENTIFYING_COLUMNS
        if column in raw.columns
        for value in raw[column].dropna().unique()
        if len(str(value)) >= 4
    }
    if not needles or output.empty:
        return []
    haystack = "\n".join(output.astype(str).to_numpy().ravel().tolist())
    return sorted(needle for needle in needles if needle in haystack)


@asset(
    group_name="privacy",
    partitions_def=daily_partitions,
    deps=[raw_tiktok_posts, raw_facebook_posts],
    pool="warehouse",
    kinds={"python", "duckdb", "snowflake"},
    automation_condition=AutomationCondition.eager(),
    check_specs=[
        AssetCheckSpec(
            "no_raw_identifiers",
            asset="hashed_posts",
            blocking=True,
            description="No raw author id, handle, nickname or secUid of the partition appears in the table.",
        )
    ],
)
def hashed_posts(
    context: AssetExecutionContext,
    raw_store: RawStoreResource,
    privacy: PrivacyResource,
    warehouse: WarehouseResource,
) -> MaterializeResult:
    """Posts with personal data pseudonymised: keyed HMAC tokens for authors, typed tokens in text."""
    from ingest_platform.privacy.policies import POSTS_POLICY

    partition = context.partition_key
    import pandas as pd

    store = raw_store.open()
    # Both platforms, every time: the partition replace below rewrites the day's whole slice.
    frames = [store.read_posts(platform, partition) for platform in ("tiktok", "facebook")]
    raw = pd.concat([frame for frame in frames if len(frame)] or frames[:1], ignore_index=True)
    shielded, stats = privacy.apply(POSTS_POLICY, raw)
    leaks = find_raw_values(raw, shielded)
    shielded = shielded.assign(partition_date=partition)
    if leaks:
        # Never load a partition that leaks: the blocking check reports it and downstream skips.
        return MaterializeResult(
            metadata={"dagster/row_count": MetadataValue.int(0), "loaded": False},
            check_results=[
                AssetCheckResult(
                    check_name="no_raw_identifiers",
                    passed=False,
                    severity=AssetCheckSeverity.ERROR,
                    metadata={"leaked_values": MetadataValue.int(len(leaks))},
                )
            ],
        )
    with warehouse.open() as wh:
        result = wh.replace_partition(
            "hashed_posts",
            shielded,
            partition_column="partition_date",
            partition_value=partition,
            query_tag=query_tag(context),
        )
    found = {f"pii_found_{kind.lower()}": int(count) for kind, count in stats.found.items()}
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(len(shielded)),
            "key_id": privacy.pseudonymizer.key_id,
            **numeric_metadata(found),
            **numeric_metadata(result.as_metadata()),
        },
        check_results=[
            AssetCheckResult(
                check_name="no_raw_identifiers",
                passed=True,
                metadata={"leaked_values": MetadataValue.int(0), "rows_scanned": MetadataValue.int(len(raw))},
            )
        ],
    )
