"""The order landing zone: listing, reading, buffering decisions and vectorised validation.

Pure library (no Dagster): ``LandingZone`` lists/reads/moves files in a local directory or an
object-store prefix, ``decide_flush``/``run_key_for`` drive the sensor, ``validate_orders``
splits raw records into typed ``Order`` rows and dead letters.
"""

from ingest_platform.orders.landing import (
    BufferDecision,
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
