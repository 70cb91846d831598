"""What of a rejected record's payload may enter the warehouse.

A dead letter's payload is whatever failed: an order row, a TikTok item, a whole HTML page.
Regexes find emails and phones but not names or handles inside arbitrary JSON, so the
warehouse copy keeps only the payload's *shape*: keys, numbers, booleans and the length of each
string. That is enough to see which field was wrong; the raw payload stays in the raw store.
"""

from __future__ import annotations

import json
from typing import Any

MAX_ITEMS = 20
MAX_CHARS = 4_000


def _mask(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return "<nested>"
    if isinstance(value, dict):
        return {str(key): _mask(item, depth + 1) for key, item in list(value.items())[: MAX_ITEMS * 5]}
    if isinstance(value, list):
        masked = [_mask(item, depth + 1) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            masked.append(f"<{len(value) - MAX_ITEMS} more>")
        return masked
    if isinstance(value, str):
        return f"<str:{len(value)}>"
    return value  # numbers, booleans, null carry no personal data on their own


def payload_shape(payload: str, *, max_chars: int = MAX_CHARS) -> str:
    """The payload with every string value masked; non-JSON payloads are described, not copied."""
    try:
        data = json.loads(payload)
    except (TypeError, ValueError):
        return f"<non-JSON payload, {len(payload)} chars>"
    shape = json.dumps(_mask(data), ensure_ascii=False, sort_keys=True)
    if len(shape) > max_chars:
        return shape[: max_chars - 12] + "…<truncated>"
    return shape
