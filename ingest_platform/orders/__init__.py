"""The order landing zone: listing, reading, buffering decisions and vectorised validation.

Pure library (no Dagster): ``LandingZone`` lists/reads/moves files in a local directory or an
object-store prefix, ``decide_flush``/``run_key_for`` drive the sensor, ``validate_orders``
splits raw records into typed ``Order`` rows and dead letters. ``orders.load.load_order_batch``
is the one call behind the ORDERS asset; ``orders.dead_letters`` owns the ``dead_letters`` table
and replay bookkeeping.
"""

from ingest_platform.orders.landing import (
    BufferDecision,
    FileSnapshot,
    FlushDecision,
    LandingFile,
    LandingZone,
    ReadResult,
    RecordCountCache,
    decide_flush,
    run_key_for,
)
from ingest_platform.orders.validation import (
    OUTPUT_COLUMNS,
    REJECT_REASONS,
    ValidationResult,
    validate_orders,
)

__all__ = [
    "OUTPUT_COLUMNS",
    "REJECT_REASONS",
    "BufferDecision",
    "FileSnapshot",
    "FlushDecision",
    "LandingFile",
    "LandingZone",
    "ReadResult",
    "RecordCountCache",
    "ValidationResult",
    "decide_flush",
    "run_key_for",
    "validate_orders",
]
