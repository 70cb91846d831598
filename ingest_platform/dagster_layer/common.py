"""Small pieces every asset module shares: partitions, query tags, dead-letter spooling, metadata."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from ingest_platform.models import DeadLetter
from ingest_platform.scraping.target_lists import target_list_names

if TYPE_CHECKING:  # raw_store imports pandas/pyarrow: keep them out of code-location load
    from ingest_platform.raw_store import RawStore

# A partition is the day the scrape ran; end_offset=1 makes today materializable.
daily_partitions = DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)

# The TikTok scrape fans out over (date x target list): one run per list and day, each its own
# pod under the K8s run launcher. The names are read when the definitions load
# (TIKTOK_TARGET_LISTS, else one list "default"); a bad value stops the load with one message.
DATE_DIMENSION, LIST_DIMENSION = "date", "target_list"
tiktok_target_lists = target_list_names(os.environ)
tiktok_partitions = MultiPartitionsDefinition(
    {DATE_DIMENSION: daily_partitions, LIST_DIMENSION: StaticPartitionsDefinition(tiktok_target_lists)}
)


def scrape_partition(context: AssetExecutionContext) -> tuple[str, str]:
    """``(date, target list)`` of a run of the (date x target list) partitioned scrape."""
    key = context.partition_key
    if not isinstance(key, MultiPartitionKey):
        # A run launched with only the dagster/partition tag (`dagster job execute --tags`)
        # carries the plain "date|list" string.
        key = tiktok_partitions.get_partition_key_from_str(key)
    dimensions = key.keys_by_dimension
    return dimensions[DATE_DIMENSION], dimensions[LIST_DIMENSION]


def query_tag(context: AssetExecutionContext) -> str:
    """Tag for warehouse statements, so cost can be attributed to an asset and a run."""
    return f"ingest_platform:{context.asset_key.to_user_string()}:{context.run.run_id[:8]}"


def spool_dead_letters(
    context: AssetExecutionContext,
    raw_store: RawStore,
    *,
    source: str,
    batch_key: str,
    letters: Iterable[DeadLetter],
) -> int:
    """Keep rejected records (with raw payloads) in the raw store; ``dead_letters`` loads them scrubbed.

    The batch key makes a rerun replace its own rejects instead of adding a second copy.
    """
    stamped = [
        letter.model_copy(
            update={"run_id": context.run.run_id, "partition_key": letter.partition_key or batch_key}
        )
        for letter in letters
    ]
    raw_store.write_dead_letters(source, batch_key, stamped)
    if stamped:
        reasons: dict[str, int] = {}
        for letter in stamped:
            reasons[letter.reason.split(":")[0]] = reasons.get(letter.reason.split(":")[0], 0) + 1
        context.log.warning(f"{len(stamped)} record(s) dead-lettered from {source}: {reasons}")
    return len(stamped)


def numeric_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """Ints and floats as typed metadata so the UI plots them over time."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[key] = MetadataValue.bool(value)
        elif isinstance(value, int):
            out[key] = MetadataValue.int(value)
        elif isinstance(value, float):
            out[key] = MetadataValue.float(value)
        else:
            out[key] = value
    return out


def rate(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
