"""Boundary models shared by every library: a scraped post, an order, a dead letter.

These are the contracts between the pure libraries (scraping, privacy, enrichment,
warehouse, orders) and the Dagster layer. No Dagster imports here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

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
    """One commerce order as it lands (raw, with personal data)."""

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
    amount: float
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

    @classmethod
    def from_payload(cls, *, source: str, reason: str, payload: Any, **extra: Any) -> DeadLetter:
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str, sort_keys=True)
        return cls(
            source=source,
            reason=reason,
            payload=text,
            payload_sha256=hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
            **extra,
        )
