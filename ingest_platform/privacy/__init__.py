"""The privacy shield: keyed pseudonymisation, per-table column policies, free-text scrubbing.

Pure library (no Dagster). Raw personal data stays in the raw store; everything written to
the warehouse passes through a ``TablePolicy`` (columns) and ``TextScrubber`` (free text),
both keyed by one HMAC key resolved with ``resolve_key`` (``PRIVACY_HMAC_KEY``).
"""

from ingest_platform.privacy.keys import (
    KEY_SETTING,
    KeyMaterial,
    PrivacyKeyError,
    derive_key_id,
    resolve_key,
)
from ingest_platform.privacy.policies import (
    ORDERS_OUTPUT_COLUMNS,
    ORDERS_POLICY,
    POSTS_OUTPUT_COLUMNS,
    POSTS_POLICY,
    Action,
    ColumnPolicy,
    Generalisation,
    PolicyStats,
    TablePolicy,
)
from ingest_platform.privacy.text_scrubber import (
    ENTITY_TYPES,
    Finding,
    ScrubResult,
    TextScrubber,
    scrub_lines,
)
from ingest_platform.privacy.tokens import Pseudonymizer, TokenError, TokenKind, token_key_id

__all__ = [
    "ENTITY_TYPES",
    "KEY_SETTING",
    "ORDERS_OUTPUT_COLUMNS",
    "ORDERS_POLICY",
    "POSTS_OUTPUT_COLUMNS",
    "POSTS_POLICY",
    "Action",
    "ColumnPolicy",
    "Finding",
    "Generalisation",
    "KeyMaterial",
    "PolicyStats",
    "PrivacyKeyError",
    "Pseudonymizer",
    "ScrubResult",
    "TablePolicy",
    "TextScrubber",
    "TokenError",
    "TokenKind",
    "derive_key_id",
    "resolve_key",
    "scrub_lines",
    "token_key_id",
]
