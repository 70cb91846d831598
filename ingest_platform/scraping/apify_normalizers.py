"""Turn Apify actor dataset items into :class:`~ingest_platform.models.Post`, like the browser path.

``tiktok_item_to_post`` maps a ``clockworks/tiktok-scraper`` item onto the web ``itemStruct`` shape
and hands it to :func:`ingest_platform.scraping.tiktok_page.item_to_post`, the very function the
browser path uses. One set of rules therefore decides both backends' output: hashtag lower-casing,
order and de-duplication (structured tags first, then ``#tags`` found in the caption), mentions,
count parsing, the slideshow ``duration 0 -> None`` rule, the id-based ``createTime`` fallback.
For the same content the two paths produce equal posts except, by design:

- ``backend``: ``"apify"`` here, ``"browser"`` there;
- ``source_url``: the canonical **public** page URL of the target the item was fetched for
  (``https://www.tiktok.com/@name``, ``…/tag/name``, ``…/@name/video/id``), i.e. what the browser
  path records when its base URL is the real site. The backend passes it per target; without one
  the item's own ``input`` (when it names a profile/hashtag/video) or its author's profile URL is
  used. A browser run against the sandbox records ``http://127.0.0.1:<port>/@name`` instead;
- ``scraped_at`` (when each backend fetched it) and ``proxy_id`` (Apify uses its own proxies:
  always ``None``).

``facebook_item_to_post`` accepts the actor's full schema and the reduced field-selection exports
(``url, time, text, comments, likes, shares, viewsCount`` only). ``post_id`` is ``postId`` when
present, else the numeric id in ``topLevelUrl`` / ``url`` (``/reel/<id>``, ``/videos/<id>``,
``/posts/<id>``, ``story_fbid=``, ``fbid=``, ``v=``), else the ``pfbid…`` token of a ``/posts/pfbid…``
URL: Facebook's opaque but stable post token, the only id such an export carries (it cannot be
matched to the numeric id of the same post fetched with the full schema). ``source_url`` is the
page that was scraped (``facebookUrl`` / ``inputUrl``), else the post URL.

A bad item raises ``ValueError`` whose message names the item and the field (never caption text)
so the caller can dead-letter it. That is the only exception content can cause: items of the wrong
type, huge numbers (past int64 or Python's 4,300-digit limit), NaN/Infinity, nested junk and
megabyte-long values all end as a ``ValueError`` with a reason cut short; work per item is linear
in its size (no recursion into values, no regex that backtracks over a value).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ingest_platform.models import Post
from ingest_platform.scraping.targets import DEFAULT_BASE_URL, TargetError, parse_target
from ingest_platform.scraping.tiktok_page import (
    item_to_post,
    optional_list,
    optional_mapping,
    parse_count,
    short_repr,
)

__all__ = [
    "facebook_item_to_post",
    "facebook_post_id",
    "tiktok_item_to_post",
    "tiktok_source_url",
]

_BACKEND = "apify"
# What odd content could still raise below the field checks: turned into ValueError (the contract).
_CONTENT_ERRORS = (TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError)
# Apify ids are short (TikTok 19 digits, Facebook ~16 or a pfbid token of ~60 characters).
_MAX_ID_CHARS = 128
_DIGITS_RE = re.compile(r"\d+", re.ASCII)
_ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


# --------------------------------------------------------------------------------------------------
# TikTok
# --------------------------------------------------------------------------------------------------


def tiktok_item_to_post(item: Any, *, scraped_at: datetime, source_url: str | None = None) -> Post:
    """Convert one ``clockworks/tiktok-scraper`` dataset item to a Post (``backend="apify"``)."""
    if not isinstance(item, Mapping):
        raise ValueError(f"apify tiktok item is a {type(item).__name__}, not an object")
    item_id = _id_of(item.get("id"))
    error = _error_of(item)
    if error is not None and not item_id:
        raise ValueError(f"apify tiktok item is an actor error report: {error}")
    if not item_id:
        raise ValueError("apify tiktok item has no id")
    try:
        struct = _tiktok_struct(item, item_id)
        url = source_url or tiktok_source_url(item)
    except ValueError as exc:
        raise ValueError(f"apify tiktok item {item_id}: {exc}") from None
    except _CONTENT_ERRORS as exc:
        raise ValueError(f"apify tiktok item {item_id}: malformed ({type(exc).__name__})") from None
    # item_to_post prefixes its own reasons with "item <id>:" and never echoes caption text.
    return item_to_post(
        struct, source_url=url, scraped_at=scraped_at, proxy_id=None, backend=_BACKEND, platform="tiktok"
    )


def tiktok_source_url(item: Mapping[str, Any]) -> str:
    """The canonical public page URL for an item when the caller did not name its target.

    The actor echoes the target it was fetching in ``input`` (``@name``, ``name``, ``#tag``, a URL);
    a hashtag run also sets ``searchHashtag.name``. Failing both, the author's profile page, then the
    video page. Raises ``ValueError`` if the item names none of them.
    """
    hashtag = item.get("searchHashtag")
    if isinstance(hashtag, Mapping) and isinstance(hashtag.get("name"), str) and hashtag["name"].strip():
        with contextlib.suppress(TargetError):
            return parse_target("#" + hashtag["name"].strip().lstrip("#")).url(DEFAULT_BASE_URL)
    raw_input = item.get("input")
    if isinstance(raw_input, str) and raw_input.strip():
        text = raw_input.strip()
        candidates = [text] if text.startswith(("@", "#")) or "://" in text else [f"@{text}"]
        for candidate in candidates:
            with contextlib.suppress(TargetError):
                return parse_target(candidate).url(DEFAULT_BASE_URL)
    author = item.get("authorMeta")
    if isinstance(author, Mapping) and isinstance(author.get("name"), str) and author["name"].strip():
        with contextlib.suppress(TargetError):
            return parse_target("@" + author["name"].strip()).url(DEFAULT_BASE_URL)
    video_url = item.get("webVideoUrl")
    if isinstance(video_url, str) and video_url.startswith(("https://", "http://")):
        return video_url
    raise ValueError("no input, author or webVideoUrl to derive source_url from")


def _tiktok_struct(item: Mapping[str, Any], item_id: str) -> dict[str, Any]:
    """The web ``itemStruct`` equivalent of an actor item (only the fields item_to_post reads)."""
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"text is a {type(text).__name__}, not text")

    author = optional_mapping(item.get("authorMeta"), "authorMeta")
    music = optional_mapping(item.get("musicMeta"), "musicMeta")
    video = optional_mapping(item.get("videoMeta"), "videoMeta")

    stats: dict[str, Any] = {}
    for key in ("playCount", "diggCount", "commentCount", "shareCount", "collectCount"):
        value = item.get(key)
        if value is None or value == "":
            continue
        stats[key] = _apify_count(value, key)

    hashtags = []
    for entry in optional_list(item.get("hashtags"), "hashtags"):
        # Entries are {"name": …}; a mention contributes {"name": ""} which is skipped downstream.
        name = entry.get("name") if isinstance(entry, Mapping) else entry
        if name is not None and not isinstance(name, str):
            raise ValueError(f"hashtags entry name is a {type(name).__name__}, not text")
        if name:
            hashtags.append({"title": name})
    mentions = []
    for handle in optional_list(item.get("mentions"), "mentions"):
        if isinstance(handle, str) and handle.strip():
            mentions.append({"type": 0, "userUniqueId": handle.strip().lstrip("@")})

    struct: dict[str, Any] = {
        "id": item_id,
        "desc": text or "",
        "createTime": _tiktok_create_time(item),
        "author": {
            "id": author.get("id"),
            "uniqueId": author.get("name"),
            "nickname": author.get("nickName", author.get("nickname")),
            "secUid": author.get("secUid"),
            "signature": author.get("signature"),
            "verified": author.get("verified"),
        }
        if author
        else None,
        "stats": stats,
        "challenges": hashtags,
        "textExtra": mentions,
        "music": {
            "id": music.get("musicId"),
            "title": music.get("musicName"),
            "authorName": music.get("musicAuthor"),
            "original": music.get("musicOriginal"),
        },
        "video": {"duration": video.get("duration")},
        "locationCreated": item.get("locationCreated"),
        "isAd": item.get("isAd"),
    }
    slideshow = item.get("isSlideshow")
    if slideshow not in (None, False, 0, "false", "0"):
        if slideshow not in (True, 1, "true", "1"):
            raise ValueError(f"isSlideshow {short_repr(slideshow)} is not a boolean")
        struct["imagePost"] = {"images": item.get("slideshowImageLinks") or [{}]}
    return struct


def _tiktok_create_time(item: Mapping[str, Any]) -> int | None:
    """Unix seconds from ``createTime`` (int), else ``createTimeISO``; None lets the id decide."""
    raw = item.get("createTime")
    if raw not in (None, "", 0, "0"):
        if isinstance(raw, bool):
            raise ValueError("createTime is a boolean")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str) and len(raw) <= _MAX_ID_CHARS and _DIGITS_RE.fullmatch(raw.strip()):
            return int(raw.strip())
        raise ValueError(f"createTime {short_repr(raw)} is not unix seconds")
    iso = item.get("createTimeISO")
    if iso not in (None, ""):
        return math.floor(_parse_iso(iso, "createTimeISO").timestamp())
    return None


# --------------------------------------------------------------------------------------------------
# Facebook
# --------------------------------------------------------------------------------------------------


def facebook_item_to_post(item: Any, *, scraped_at: datetime) -> Post:
    """Convert one ``apify/facebook-posts-scraper`` item (full or reduced schema) to a Post."""
    if not isinstance(item, Mapping):
        raise ValueError(f"apify facebook item is a {type(item).__name__}, not an object")
    error = _error_of(item)
    if error is not None:
        raise ValueError(f"apify facebook item is an actor error report: {error}")
    post_id = facebook_post_id(item)
    try:
        struct = _facebook_struct(item, post_id)
    except ValueError as exc:
        raise ValueError(f"apify facebook item {post_id}: {exc}") from None
    except _CONTENT_ERRORS as exc:
        raise ValueError(f"apify facebook item {post_id}: malformed ({type(exc).__name__})") from None
    source_url = _first_url(item, "facebookUrl", "inputUrl", "url", "topLevelUrl")
    if source_url is None:
        raise ValueError(f"apify facebook item {post_id}: no facebookUrl or url")
    return item_to_post(
        struct,
        source_url=source_url,
        scraped_at=scraped_at,
        proxy_id=None,
        backend=_BACKEND,
        platform="facebook",
    )


def facebook_post_id(item: Mapping[str, Any]) -> str:
    """``postId``, else the numeric id in ``topLevelUrl``/``url``, else a ``pfbid…`` token.

    Raises ``ValueError`` when the item carries none of them.
    """
    post_id = _id_of(item.get("postId"))
    if post_id:
        if not _DIGITS_RE.fullmatch(post_id) and not post_id.startswith("pfbid"):
            raise ValueError(f"apify facebook item: postId {post_id[:40]!r} is not a Facebook id")
        return post_id
    for key in ("topLevelUrl", "url"):
        url = item.get(key)
        if isinstance(url, str) and url.strip():
            found = _numeric_id_from_url(url)
            if found:
                return found
    url = item.get("url")
    if isinstance(url, str):
        token = _pfbid_from_url(url)
        if token:
            return token
    raise ValueError("apify facebook item has no postId and no post id in its url")


_FB_NUMERIC_PATH_RE = re.compile(
    r"/(?:reel|reels|videos|posts|permalink|photos|story|watch)/(?:[^/]+/)?(\d{6,})"
)
_FB_PFBID_RE = re.compile(r"/posts/(pfbid0[0-9A-Za-z]+)")


def _numeric_id_from_url(url: str) -> str | None:
    parts = urlsplit(url.strip())
    query = parse_qs(parts.query)
    for key in ("story_fbid", "fbid", "v"):
        for value in query.get(key, []):
            if _DIGITS_RE.fullmatch(value):
                return value
    path = unquote(parts.path)
    match = _FB_NUMERIC_PATH_RE.search(path)
    if match:
        return match.group(1)
    # "/<page>/posts/1448888896834852:1448888896834852" carries the id twice around a colon.
    colon = re.search(r"/posts/(\d{6,}):\d+", path)
    return colon.group(1) if colon else None


def _pfbid_from_url(url: str) -> str | None:
    match = _FB_PFBID_RE.search(urlsplit(url.strip()).path)
    return match.group(1) if match else None


def _facebook_struct(item: Mapping[str, Any], post_id: str) -> dict[str, Any]:
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"text is a {type(text).__name__}, not text")
    user = optional_mapping(item.get("user"), "user")
    page_name = item.get("pageName")
    if page_name is not None and not isinstance(page_name, str):
        raise ValueError(f"pageName is a {type(page_name).__name__}, not text")
    handle = page_name or _page_from_url(item.get("facebookUrl")) or _page_from_url(item.get("url"))

    stats: dict[str, Any] = {}
    for source, key in (
        ("likes", "diggCount"),
        ("comments", "commentCount"),
        ("shares", "shareCount"),
        ("viewsCount", "playCount"),
    ):
        value = item.get(source)
        if value is None or value == "":
            continue
        stats[key] = _apify_count(value, source)

    hashtags: list[dict[str, str]] = []
    mentions: list[dict[str, Any]] = []
    for reference in optional_list(item.get("textReferences"), "textReferences"):
        if not isinstance(reference, Mapping) or not isinstance(reference.get("url"), str):
            continue
        path = [unquote(s) for s in urlsplit(reference["url"]).path.split("/") if s]
        if len(path) >= 2 and path[0] == "hashtag":
            hashtags.append({"title": path[1]})
        elif path and path[0] not in ("profile.php", "groups", "events", "pages"):
            mentions.append({"type": 0, "userUniqueId": path[0]})

    author_id = user.get("id") if user else item.get("facebookId")
    return {
        "id": post_id,
        "desc": text or "",
        "createTime": _facebook_time(item),
        "author": {
            "id": author_id,
            "uniqueId": handle,
            "nickname": user.get("name") if user else None,
        },
        "stats": stats,
        "challenges": hashtags,
        "textExtra": mentions,
    }


def _facebook_time(item: Mapping[str, Any]) -> int:
    iso = item.get("time")
    if iso not in (None, ""):
        return math.floor(_parse_iso(iso, "time").timestamp())
    raw = item.get("timestamp")
    if raw not in (None, ""):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str) or len(str(raw)) > 64:
            raise ValueError(f"timestamp {short_repr(raw)} is not unix time")
        try:
            seconds = float(raw)
        except (ValueError, OverflowError):
            raise ValueError(f"timestamp {short_repr(raw)} is not unix time") from None
        if seconds > 10**11:  # milliseconds
            seconds /= 1000
        if seconds <= 0 or not math.isfinite(seconds):
            raise ValueError(f"timestamp {short_repr(raw)} is not a valid time")
        return math.floor(seconds)
    raise ValueError("no time and no timestamp")


def _page_from_url(url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    segments = [unquote(s) for s in urlsplit(url.strip()).path.split("/") if s]
    if not segments or segments[0] in (
        "reel",
        "reels",
        "watch",
        "story.php",
        "permalink.php",
        "photo",
        "photo.php",
    ):
        return None
    if segments[0] == "profile.php":
        return None
    return segments[0]


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _error_of(item: Mapping[str, Any]) -> str | None:
    """Actors push ``{"error": …}`` items for inputs they could not fetch."""
    error = item.get("error")
    if error in (None, "", False):
        return None
    text = error if isinstance(error, str) else type(error).__name__
    return text[:200]


def _id_of(value: Any) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        if value.bit_length() > 4 * _MAX_ID_CHARS:
            raise ValueError(f"apify item id is an integer of {value.bit_length()} bits, not an id")
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_ID_CHARS:
            raise ValueError(f"apify item id is {len(text)} characters long, not an id")
        return text
    return ""


def _apify_count(value: Any, field: str) -> int:
    """A count field of an actor item (callers skip missing ones); the message names the field."""
    try:
        count = parse_count(value)
    except ValueError as error:
        raise ValueError(f"{field}={error}") from None
    assert count is not None  # callers skip None and ""
    return count


def _parse_iso(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64 or not _ISO_RE.match(value.strip()):
        raise ValueError(f"{field} {short_repr(value)} is not an ISO timestamp")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} {short_repr(value)} is not an ISO timestamp") from None
    # A zone-less timestamp from the actor is UTC (Apify writes UTC everywhere).
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _first_url(item: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value.strip().startswith(("https://", "http://")):
            return value.strip()
    return None
