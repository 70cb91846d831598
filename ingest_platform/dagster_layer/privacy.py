"""The privacy shield as an asset: raw posts in, pseudonymised posts into the warehouse."""

from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    asset,
)

from ingest_platform.dagster_layer.common import DATE_DIMENSION, daily_partitions, numeric_metadata, query_tag
from ingest_platform.dagster_layer.resources import PrivacyResource, RawStoreResource, WarehouseResource
from ingest_platform.dagster_layer.sources import raw_facebook_posts, raw_tiktok_posts

if TYPE_CHECKING:
    import pandas as pd

# Eager, except that one missing dependency does not hold the day back (a target list that has
# not run yet, or no Facebook pages at all: eager would wait for them forever), and nothing loads
# while a dependency's blocking check (scraper success rate) has failed on its latest
# materialization: across runs this does what the blocking check does inside one run. The checks
# are per asset, not per partition, so "latest" is the latest scrape of any list. Loading the day
# again for each list that lands is safe: it is a partition replace.
LOAD_WHEN_A_SCRAPE_LANDS = (
    AutomationCondition.in_latest_time_window()
    & AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & ~AutomationCondition.any_deps_match(
        AutomationCondition.any_checks_match(AutomationCondition.check_failed(), blocking_only=True)
    ).with_label("any_deps_blocking_check_failed")
).with_label("eager on any scrape, unless a blocking check failed")

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
    # A day depends on every target list's scrape of that day.
    deps=[
        AssetDep(
            raw_tiktok_posts,
            partition_mapping=MultiToSingleDimensionPartitionMapping(partition_dimension_name=DATE_DIMENSION),
        ),
        raw_facebook_posts,
    ],
    pool="warehouse",
    kinds={"python", "duckdb", "snowflake"},
    automation_condition=LOAD_WHEN_A_SCRAPE_LANDS,
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
    # Both platforms and every target list, every time: the partition replace below rewrites the
    # day's whole slice.
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
            # Kept ids (post_id...) that were personal data, now tokens (issue #12 item 6).
            "pii_in_kept_columns": MetadataValue.int(stats.pii_in_kept_columns),
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
