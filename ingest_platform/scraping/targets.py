"""Scrape targets: which TikTok profiles, hashtags and videos to fetch, and their page URLs.

The ``TIKTOK_TARGETS`` setting is a comma/newline-separated list of entries:

- ``@name`` or ``https://www.tiktok.com/@name``: a profile;
- ``#tag`` or ``https://www.tiktok.com/tag/tag``: a hashtag;
- ``https://www.tiktok.com/@name/video/123`` (query strings and ``m.tiktok.com`` allowed), or the
  short form ``@name/video/123``: one video.

Any entry may end in ``:N`` to cap the posts collected for it (``@name:200``). Short links
(``vm.tiktok.com/…``, ``vt.tiktok.com/…``, ``tiktok.com/t/…``) are rejected: they only resolve by
following a redirect, which a config parser must not do.

Handles and hashtags are lower-cased: TikTok treats them case-insensitively, and a stable form
keeps partition keys and de-duplication stable.
"""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_POSTS",
    "MAX_POSTS_LIMIT",
    "Target",
    "TargetError",
    "TargetKind",
    "parse_target",
    "parse_targets",
]

DEFAULT_BASE_URL = "https://www.tiktok.com"
DEFAULT_MAX_POSTS = 100
MAX_POSTS_LIMIT = 100_000

# Real handles are 2-24 characters; the upper bound here is looser so synthetic/sandbox handles pass.
_HANDLE_RE = re.compile(r"[a-z0-9_.]{1,64}", re.ASCII)
# Hashtags: Unicode letters/digits/underscore plus combining marks (needed by Indic/Thai scripts).
_TAG_RE = re.compile(r"(?:\w|[\u0300-\u036f\u0900-\u0dff\u0e00-\u0eff\u200c\u200d]){1,150}")
_VIDEO_ID_RE = re.compile(r"\d{1,25}", re.ASCII)
_MAX_POSTS_SUFFIX_RE = re.compile(r"^(?P<body>.+):(?P<n>[^:/]*)$", re.DOTALL)

_TIKTOK_HOSTS = frozenset({"tiktok.com", "www.tiktok.com", "m.tiktok.com"})
_SHORT_LINK_HOSTS = frozenset({"vm.tiktok.com", "vt.tiktok.com"})


class TargetError(ValueError):
    """An invalid target entry; the message names the entry."""


class TargetKind(StrEnum):
    PROFILE = "profile"
    HASHTAG = "hashtag"
    VIDEO = "video"


class Target(BaseModel):
    """One thing to scrape.

    ``value`` is the handle (no ``@``) for a profile, the tag (no ``#``) for a hashtag, or the
    numeric id for a video; a video also keeps its author's ``handle`` because TikTok's video URL
    contains it.
    """

    model_config = ConfigDict(frozen=True)

    kind: TargetKind
    value: str
    max_posts: int = Field(default=DEFAULT_MAX_POSTS, ge=1, le=MAX_POSTS_LIMIT)
    handle: str | None = None

    @model_validator(mode="after")
    def _check_value(self) -> Target:
        if self.kind is TargetKind.PROFILE and not _HANDLE_RE.fullmatch(self.value):
            raise ValueError(f"invalid TikTok handle {self.value!r} (letters, digits, '_' and '.')")
        if self.kind is TargetKind.HASHTAG and not _TAG_RE.fullmatch(self.value):
            raise ValueError(f"invalid hashtag {self.value!r} (letters, digits and '_', no spaces)")
        if self.kind is TargetKind.VIDEO:
            if not _VIDEO_ID_RE.fullmatch(self.value):
                raise ValueError(f"invalid video id {self.value!r} (digits only)")
            if not self.handle or not _HANDLE_RE.fullmatch(self.handle):
                raise ValueError(f"a video target needs its author's handle, got {self.handle!r}")
        return self

    @property
    def text(self) -> str:
        """The canonical entry (``@name``, ``#tag``, ``@name/video/123``); parses back to this target."""
        if self.kind is TargetKind.PROFILE:
            return f"@{self.value}"
        if self.kind is TargetKind.HASHTAG:
            return f"#{self.value}"
        return f"@{self.handle}/video/{self.value}"

    @property
    def path(self) -> str:
        """The page path on TikTok (or any stand-in serving the same routes)."""
        if self.kind is TargetKind.PROFILE:
            return f"/@{quote(self.value, safe='._')}"
        if self.kind is TargetKind.HASHTAG:
            return f"/tag/{quote(self.value, safe='_')}"
        return f"/@{quote(self.handle or '', safe='._')}/video/{self.value}"

    def url(self, base_url: str = DEFAULT_BASE_URL) -> str:
        """The page URL on ``base_url``, e.g. ``http://127.0.0.1:8123/@name``."""
        return base_url.rstrip("/") + self.path

    def __str__(self) -> str:
        return self.text


def parse_target(text: str, *, default_max_posts: int = DEFAULT_MAX_POSTS) -> Target:
    """Parse one entry; raises :class:`TargetError` (a ``ValueError``) naming the entry."""
    return _parse_entry(text, default_max_posts=default_max_posts, label=f"target {text.strip()!r}")


def parse_targets(text: str, *, default_max_posts: int = DEFAULT_MAX_POSTS) -> list[Target]:
    """Parse a comma/newline-separated list of entries, in order, without duplicates.

    A target listed twice is kept once, at its first position, with the larger ``max_posts``.
    Raises :class:`TargetError` naming the first bad entry and its position.
    """
    targets: dict[tuple[TargetKind, str], Target] = {}
    entries = [entry.strip() for entry in re.split(r"[,\r\n]+", text or "")]
    for index, entry in enumerate((e for e in entries if e), start=1):
        target = _parse_entry(entry, default_max_posts=default_max_posts, label=f"target {index} {entry!r}")
        key = (target.kind, target.value)
        previous = targets.get(key)
        if previous is None:
            targets[key] = target
        elif target.max_posts > previous.max_posts:
            targets[key] = previous.model_copy(update={"max_posts": target.max_posts})
    return list(targets.values())


def _parse_entry(text: str, *, default_max_posts: int, label: str) -> Target:
    entry = text.strip()
    if not entry:
        raise TargetError(f"{label}: empty target")
    body, max_posts = _split_max_posts(entry, default_max_posts=default_max_posts, label=label)
    try:
        if body.startswith("@"):
            return _from_at_form(body[1:], max_posts, label=label)
        if body.startswith("#"):
            return Target(kind=TargetKind.HASHTAG, value=body[1:].strip().lower(), max_posts=max_posts)
        if "://" in body or body.lower().split("/", 1)[0] in _TIKTOK_HOSTS | _SHORT_LINK_HOSTS:
            return _from_url(body, max_posts, label=label)
    except TargetError:
        raise
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise TargetError(f"{label}: {_first_error(exc)}") from None
    raise TargetError(
        f"{label}: not a target; write @name for a profile, #tag for a hashtag, or a TikTok video URL"
    )


def _split_max_posts(entry: str, *, default_max_posts: int, label: str) -> tuple[str, int]:
    match = _MAX_POSTS_SUFFIX_RE.match(entry)
    # Only a suffix after a handle, tag or URL path counts: "https://host:443" has no path to cap.
    if match is None or (("://" in entry) and urlsplit(match.group("body")).path in ("", "/")):
        return entry, default_max_posts
    raw = match.group("n").strip()
    if not raw.isascii() or not raw.isdigit():
        raise TargetError(f"{label}: max posts after ':' must be a whole number, got {raw!r}")
    max_posts = int(raw)
    if not 1 <= max_posts <= MAX_POSTS_LIMIT:
        raise TargetError(f"{label}: max posts must be between 1 and {MAX_POSTS_LIMIT}, got {max_posts}")
    return match.group("body").strip(), max_posts


def _from_at_form(rest: str, max_posts: int, *, label: str) -> Target:
    parts = [p for p in rest.strip().split("/") if p]
    if len(parts) == 1:
        return Target(kind=TargetKind.PROFILE, value=parts[0].lower(), max_posts=max_posts)
    if len(parts) == 3 and parts[1] == "video":
        return Target(kind=TargetKind.VIDEO, value=parts[2], handle=parts[0].lower(), max_posts=max_posts)
    raise TargetError(f"{label}: expected @name or @name/video/<id>")


def _from_url(url: str, max_posts: int, *, label: str) -> Target:
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if host in _SHORT_LINK_HOSTS or (host in _TIKTOK_HOSTS and segments[:1] == ["t"]):
        raise TargetError(
            f"{label}: TikTok short links are not supported (they only resolve through a redirect); "
            "open the link and paste the full https://www.tiktok.com/@name/video/<id> URL"
        )
    if parts.scheme not in ("http", "https") or host not in _TIKTOK_HOSTS:
        raise TargetError(f"{label}: not a TikTok URL (expected https://www.tiktok.com/...)")
    if len(segments) == 1 and segments[0].startswith("@"):
        return Target(kind=TargetKind.PROFILE, value=segments[0][1:].lower(), max_posts=max_posts)
    if len(segments) == 3 and segments[0].startswith("@") and segments[1] == "video":
        return Target(
            kind=TargetKind.VIDEO, value=segments[2], handle=segments[0][1:].lower(), max_posts=max_posts
        )
    if len(segments) == 2 and segments[0] == "tag":
        return Target(kind=TargetKind.HASHTAG, value=segments[1].lower(), max_posts=max_posts)
    raise TargetError(
        f"{label}: unsupported TikTok URL path {parts.path!r}; "
        "expected /@name, /@name/video/<id> or /tag/<tag>"
    )


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors(include_input=False)[0]
        return str(first["msg"]).removeprefix("Value error, ")
    return str(exc)
