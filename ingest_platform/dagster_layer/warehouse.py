"""Warehouse assets (the seed's ``sink.*`` topics): the ORDERS table and the sensor that feeds it.

The sensor buffers landing files the way the Snowflake Kafka connector buffers records: one run
when the pending records reach ``buffer_count_records`` or the oldest file is
``buffer_flush_seconds`` old, with a ``run_key`` so no batch is ever loaded twice.
"""

import hashlib
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)
from pydantic import Field

from ingest_platform.dagster_layer.common import numeric_metadata, query_tag, rate, spool_dead_letters
from ingest_platform.dagster_layer.resources import (
    LandingZoneResource,
    PrivacyResource,
    RawStoreResource,
    ThresholdsResource,
    WarehouseResource,
)

ORDERS_KEY = AssetKey("ORDERS")


class OrdersLoadConfig(Config):
    files: list[str] | None = Field(
        default=None, description="Landing files to load (set by the sensor); empty means every pending file."
    )


@asset(
    key=ORDERS_KEY,
    group_name="warehouse",
    pool="warehouse",
    kinds={"python", "duckdb", "snowflake"},
    tags={"ingest_platform/kind": "warehouse_load"},
    check_specs=[
        AssetCheckSpec("dead_letter_rate", asset=ORDERS_KEY, description="Share of order records rejected."),
        AssetCheckSpec(
            "order_ids_unique", asset=ORDERS_KEY, blocking=True, description="One row per order_id."
        ),
    ],
)
def orders(
    context: AssetExecutionContext,
    config: OrdersLoadConfig,
    landing: LandingZoneResource,
    privacy: PrivacyResource,
    warehouse: WarehouseResource,
    raw_store: RawStoreResource,
    thresholds: ThresholdsResource,
) -> MaterializeResult:
    """Commerce orders from the landing zone: validated, PII tokenised, MERGEd on ``order_id``."""
    from ingest_platform.orders.validation import validate_orders
    from ingest_platform.privacy.policies import ORDERS_POLICY

    zone = landing.open()
    pending = zone.pending_files()
    if config.files:
        wanted = set(config.files)
        batch = [file for file in pending if file.path in wanted]
        missing = wanted - {file.path for file in batch}
        if missing:
            # Already processed by an earlier run of the same batch (a retry): nothing to redo for them.
            context.log.info(
                f"{len(missing)} file(s) of this batch are no longer pending: {sorted(missing)[:5]}"
            )
    else:
        batch = pending
    context.log.info(f"Loading {len(batch)} order file(s), {sum(f.record_count or 0 for f in batch)} records")

    read = zone.read(batch)
    for path, reason in read.bad_files.items():
        zone.quarantine(path, reason)
        context.log.warning(f"Quarantined {path}: {reason}")
    validation = validate_orders(read.frame, source="ORDERS", run_id=context.run.run_id)
    shielded, shield_stats = privacy.apply(ORDERS_POLICY, validation.valid)

    with warehouse.open() as wh:
        result = wh.merge("ORDERS", shielded, key_columns=["order_id"], query_tag=query_tag(context))
        # A first batch with no valid order (only bad files/rows) creates no table: nothing to count.
        duplicate_keys = (
            int(wh.read_sql("SELECT COUNT(*) - COUNT(DISTINCT order_id) AS d FROM ORDERS").iloc[0, 0])
            if "orders" in wh.list_tables()
            else 0
        )
    good_files = [file for file in batch if file.path not in read.bad_files]
    # Rejects are spooled before the files move: once moved, a crash would lose them for good,
    # while a rerun of the still-pending files replaces this spool. The key covers the loaded files
    # only: quarantined files are gone by the rerun, and must not change the key.
    letters = list(read.rejects) + list(validation.rejects)
    batch_key = (
        "orders-" + hashlib.sha256("|".join(sorted(f.path for f in good_files)).encode()).hexdigest()[:16]
    )
    rejected = spool_dead_letters(
        context, raw_store.open(), source="ORDERS", batch_key=batch_key, letters=letters
    )
    # Files move only after the MERGE committed: a crash before this line reloads them idempotently.
    zone.mark_processed(good_files)
    total = rejected + len(validation.valid)
    dead_letter_rate = rate(rejected, total)
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(len(shielded)),
            "files_loaded": MetadataValue.int(len(good_files)),
            "files_quarantined": MetadataValue.int(len(read.bad_files)),
            "records_in": MetadataValue.int(total),
            "dead_letters": MetadataValue.int(rejected),
            "dead_letter_rate": MetadataValue.float(round(dead_letter_rate, 4)),
            "pii_in_kept_columns": MetadataValue.int(shield_stats.pii_in_kept_columns),
            **numeric_metadata(result.as_metadata()),
        },
        check_results=[
            AssetCheckResult(
                check_name="dead_letter_rate",
                passed=dead_letter_rate <= thresholds.dead_letter_rate_max,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "value": MetadataValue.float(round(dead_letter_rate, 4)),
                    "threshold": MetadataValue.float(thresholds.dead_letter_rate_max),
                },
            ),
            AssetCheckResult(
                check_name="order_ids_unique",
                passed=duplicate_keys == 0,
                severity=AssetCheckSeverity.ERROR,
                metadata={"duplicate_order_ids": MetadataValue.int(duplicate_keys)},
            ),
        ],
    )


orders_job = define_asset_job(
    "orders_job",
    selection=[ORDERS_KEY, AssetKey("dead_letters")],
    tags={"ingest_platform/kind": "warehouse_load"},
    description="Load pending order files into ORDERS, then the dead letters.",
)


@sensor(job=orders_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def orders_landing_sensor(context: SensorEvaluationContext, landing: LandingZoneResource):
    """Buffers landing files like the Kafka connector: flush on record count or on age."""
    from ingest_platform.orders.landing import decide_flush, run_key_for

    pending = landing.open().pending_files()
    decision = decide_flush(
        pending,
        now=datetime.now(UTC),
        buffer_count_records=landing.buffer_count_records,
        buffer_flush_seconds=landing.buffer_flush_seconds,
    )
    if not decision.should_flush:
        return SkipReason(
            f"{decision.records} record(s) in {len(pending)} file(s) pending, "
            f"oldest {decision.oldest_age_s:.0f}s "
            f"(flush at {landing.buffer_count_records} records or {landing.buffer_flush_seconds}s)"
        )
    files = [file.path for file in decision.files]
    return RunRequest(
        run_key=run_key_for(decision.files),
        run_config={"ops": {"ORDERS": {"config": {"files": files}}}},
        tags={
            "ingest_platform/flush_reason": str(decision.reason),
            "ingest_platform/records": str(decision.records),
        },
    )
