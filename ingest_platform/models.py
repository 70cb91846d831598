"""Boundary models shared by every library: a scraped post, an order, a dead letter.

These are the contracts between the pure libraries (scraping, privacy, enrichment,
warehouse, orders) and the Dagster layer. No Dagster imports here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Platform(StrEnum):
    TIKTOK = "tiktok"
    FACEBOOK = "facebook"


class Backend(StrEnum):
    BROWSER = "browser"
    APIFY = "apify"


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Post(BaseModel):
    """One public post, identical in shape whichever backend fetched it.

    Holds raw personal data (author handle, nickname, bio, caption): it lives only in the
    raw store, never in a warehouse table; ``hashed_posts`` is its pseudonymised form.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    platform: Platform = Platform.TIKTOK
    post_id: str
    description: str = ""
    created_at: datetime
    author_id: str | None = None
    author_handle: str | None = None
    author_nickname: str | None = None
    author_sec_uid: str | None = None
    author_bio: str | None = None
    author_verified: bool | None = None
    play_count: int | None = None
    like_count: int | None = None
    comment_count: int | None = None
    share_count: int | None = None
    collect_count: int | None = None
    hashtags: list[str] = Field(default_factory=list)
    mentions: list[str] = Field(default_factory=list)
    music_id: str | None = None
    music_title: str | None = None
    music_author: str | None = None
    music_original: bool | None = None
    duration_seconds: float | None = None
    location_created: str | None = None
    is_ad: bool = False
    is_slideshow: bool = False
    source_url: str
    scraped_at: datetime
    proxy_id: str | None = None
    backend: Backend = Backend.BROWSER

    @field_validator("created_at", "scraped_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @field_validator("post_id")
    @classmethod
    def _non_empty_id(cls, value: str) -> str:
        value = str(value).strip()
        if not value:
            raise ValueError("post_id must not be empty")
        return value


POST_COLUMNS: tuple[str, ...] = tuple(Post.model_fields)


class Order(BaseModel):
    """One commerce order as it lands (raw, with personal data).

    An optional ``updated_at`` in the landing data orders versions (orders.validation); it is
    carried as an extra column, not a model field, so generated fixtures keep their shape.
    """

    model_config = ConfigDict(extra="ignore")

    order_id: str
    created_at: datetime
    customer_name: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    shipping_address: str | None = None
    postcode: str | None = None
    customer_ip: str | None = None
    birth_date: str | None = None
    currency: str = "USD"
    # Exact money: validation turns amounts into DECIMAL(18,2) (see orders.validation).
    amount: Decimal
    items: int = 1
    note: str | None = None

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)


class DeadLetter(BaseModel):
    """A rejected record: kept with its reason, never dropped silently.

    ``payload`` must already be scrubbed of personal data before it reaches the warehouse;
    ``payload_sha256`` identifies the raw payload, which stays in the raw store for replay.

    Identity (``letter_id``): a record read from a file is ``"<source>:<file fingerprint>:<line>"``
    where the fingerprint is a hash of the file's content, so a rerun, a crash half-way through
    moving files or a renamed and re-landed file gives the same id again and the ``dead_letters``
    table (keyed by ``source, letter_id``) never holds a record twice. Letters without a file
    position get a hash of (source, partition key, payload hash, reason). ``status`` is
    ``pending`` until a replay loads the record (see ``orders.dead_letters``).
    """

    model_config = ConfigDict(frozen=True)

    source: str
    reason: str
    payload: str
    payload_sha256: str
    record_key: str | None = None
    partition_key: str | None = None
    run_id: str | None = None
    rejected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    letter_id: str | None = None
    source_file: str | None = None
    source_fingerprint: str | None = None
    source_line: int | None = None
    status: Literal["pending", "replayed"] = "pending"

    @property
    def key(self) -> str:
        """The stable identity: ``letter_id``, or a hash for letters without a file position."""
        if self.letter_id:
            return self.letter_id
        text = "\x1f".join([self.source, self.partition_key or "", self.payload_sha256, self.reason])
        return f"{self.source}:h:{hashlib.sha256(text.encode('utf-8', 'replace')).hexdigest()[:32]}"

    @staticmethod
    def file_letter_id(source: str, fingerprint: str, line: int) -> str:
        return f"{source}:{fingerprint}:{line}"

    @classmethod
    def from_payload(cls, *, source: str, reason: str, payload: Any, **extra: Any) -> DeadLetter:
        if isinstance(payload, str):
            text = payload
        else:
            try:
                text = json.dumps(payload, default=str, sort_keys=True)
            except (RecursionError, ValueError, TypeError):
                # Hostile nesting (a 2,000-deep object): keep what fits, mark the rest.
                text = json.dumps(_clip_depth(payload), default=str, sort_keys=True)
        return cls(
            source=source,
            reason=reason,
            payload=text,
            payload_sha256=hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
            **extra,
        )


_MAX_PAYLOAD_DEPTH = 32


def _clip_depth(value: Any, depth: int = 0) -> Any:
    """``value`` with containers deeper than ``_MAX_PAYLOAD_DEPTH`` replaced by a marker."""
    if isinstance(value, dict | list | tuple):
        if depth >= _MAX_PAYLOAD_DEPTH:
            return "<nested deeper than 32 levels>"
        if isinstance(value, dict):
            return {str(k): _clip_depth(v, depth + 1) for k, v in value.items()}
        return [_clip_depth(v, depth + 1) for v in value]
    return value
