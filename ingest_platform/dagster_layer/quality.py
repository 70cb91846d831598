"""Quality (the seed's ``dlq.*`` topics): every rejected record, scrubbed, in one table, and the
``dead_letter_replay_job`` that re-validates dead letters with today's rules and loads those that
now pass (rules: ``ingest_platform.orders.replay``)."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AutomationCondition,
    Config,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    Output,
    asset,
    job,
    op,
)
from pydantic import Field

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
    hash and where the raw payload lives, one row per ``(source, letter_id)``: reruns, a crash
    half-way through the moves or a renamed file never add a row twice. A fresh warehouse gets an
    empty table, so a first run with no reject succeeds.
    """
    from ingest_platform.orders.dead_letters import load_dead_letters

    with warehouse.open() as wh:
        # Creates the table on a fresh warehouse (a first run with no reject must not fail) and
        # adds each letter once, keyed by (source, letter_id): reruns and renames add nothing.
        report = load_dead_letters(
            raw_store.open(),
            wh,
            scrubber=privacy.scrubber,
            pseudonymizer=privacy.pseudonymizer,
            query_tag=query_tag(context),
            run_id=context.run.run_id,
        )
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(sum(report.by_source.values())),
            "new_dead_letters": MetadataValue.int(report.new_rows),
            "by_source": MetadataValue.json(report.by_source),
            "reasons": MetadataValue.json(report.reasons),
        }
    )

class DeadLetterReplayConfig(Config):
    """Which dead letters to replay (see ``ingest_platform.orders.replay``)."""

    source: str = Field(default="ORDERS", description="Dead letters of this source (exact).")
    reason: str | None = Field(default=None, description="A substring of the reason, e.g. 'invalid_amount'.")
    reason_exact: bool = Field(default=False, description="Match the reason exactly instead of a substring.")
    since: str | None = Field(default=None, description="Rejected at or after (ISO 8601, naive = UTC).")
    until: str | None = Field(default=None, description="Rejected before (ISO 8601, naive = UTC).")
    dry_run: bool = Field(default=False, description="Validate and count only: load and mark nothing.")


@op(name="replay_dead_letters", tags={"ingest_platform/kind": "warehouse_load"})
def replay_dead_letters_op(
    context: OpExecutionContext,
    config: DeadLetterReplayConfig,
    raw_store: RawStoreResource,
    privacy: PrivacyResource,
    warehouse: WarehouseResource,
):
    """Re-validate the selected dead letters and load those that now pass into ORDERS, once."""
    from ingest_platform.orders.replay import ReplaySelection, parse_time, replay_dead_letters
    from ingest_platform.privacy.policies import ORDERS_POLICY

    selection = ReplaySelection(
        source=config.source,
        reason=config.reason or None,
        reason_exact=config.reason_exact,
        since=parse_time(config.since),
        until=parse_time(config.until),
    )
    with warehouse.open() as wh:
        report = replay_dead_letters(
            raw_store.open(),
            wh,
            selection=selection,
            apply_privacy=lambda frame: privacy.apply(ORDERS_POLICY, frame)[0],
            run_id=context.run_id,
            query_tag=f"ingest_platform:dead_letter_replay:{context.run_id[:8]}",
            dry_run=config.dry_run,
        )
    context.log.info(report.summary())
    metadata = {
        "selected": MetadataValue.int(report.selected),
        "replayed": MetadataValue.int(report.replayed),
        "still_failing": MetadataValue.int(report.still_failing),
        "already_replayed": MetadataValue.int(report.already_replayed),
        "superseded": MetadataValue.int(report.superseded),
        "dry_run": MetadataValue.bool(report.dry_run),
        "still_failing_reasons": MetadataValue.json(report.still_failing_reasons),
    }
    if report.replayed and not report.dry_run:
        # ORDERS changed outside its asset: record it, so lineage and dead_letters automation see it.
        yield AssetMaterialization(
            asset_key=AssetKey("ORDERS"),
            description=f"{report.replayed} dead letter(s) replayed",
            metadata={"replayed": MetadataValue.int(report.replayed)},
        )
    yield Output(None, metadata=metadata)


@job(
    name="dead_letter_replay_job",
    tags={"ingest_platform/kind": "warehouse_load"},
    description="Replay dead letters (by source, reason, time range) with today's rules; "
    "load those that now pass into ORDERS exactly once.",
)
def dead_letter_replay_job() -> None:
    replay_dead_letters_op()
