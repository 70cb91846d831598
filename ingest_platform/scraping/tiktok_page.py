"""Parse TikTok web pages and item-list API responses into :class:`~ingest_platform.models.Post`.

TikTok server-renders each page's state as JSON inside a ``<script>`` element:

- current pages: ``<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">`` whose
  ``__DEFAULT_SCOPE__`` holds one key per page kind (``webapp.video-detail``,
  ``webapp.user-detail``, ``webapp.challenge-detail``) next to large app-context/translation blobs;
- older pages: ``<script id="SIGI_STATE">`` (or ``id="sigi-persisted-data"``, written as a
  ``window['SIGI_STATE']=…`` assignment) with ``ItemModule[<id>]`` items and a ``UserModule``.

Lists (a profile's videos, a hashtag's videos) arrive later by XHR from ``/api/post/item_list/`` and
``/api/challenge/item_list/``; :func:`parse_item_list` handles those responses.

Everything here is pure (no Dagster, no network). A malformed item raises ``ValueError`` from
:func:`item_to_post` so the caller can dead-letter it; page-level problems never raise from
:func:`parse_page`, :func:`parse_document` or :func:`parse_item_list`, they come back as a
:class:`PageStatus` so the scraper can decide to retry, rotate its proxy or give up.

Hostile input
-------------
A page is untrusted input. The rules that keep parsing linear in its size and never raising:

- no regex scans the page from a position it may rescan from again: ``<script`` openings are
  found once, and each tag's ``>`` is searched only up to the next ``<script`` (and at most
  :data:`MAX_SCRIPT_TAG_CHARS`), so tag texts are disjoint slices of the page; the canonical-URL
  and partial-capture lookups are anchored at a literal found with ``str.find`` and bounded;
- JSON is decoded by :func:`loads_bounded`: a linear pre-scan of bracket depth outside strings
  refuses nesting deeper than :data:`MAX_JSON_DEPTH` (512) before ``json.loads`` could hit
  ``RecursionError``; an integer literal past Python's 4,300-digit limit, or any decode error,
  is :class:`UnparseableJSON`. Either makes the page ``BROKEN`` with ``error`` starting
  ``unparseable:`` (the scraper rejects the raw page, nothing is lost);
- values: ids longer than 128 characters are not ids, counts above :data:`MAX_COUNT` (int64)
  or NaN/Infinity durations make the item a bad item (dead-lettered), lone UTF-16 surrogates in
  text become U+FFFD (so output always encodes as UTF-8), duplicate keys keep the last value;
  reasons quote values cut short (:func:`short_repr`), never megabytes of them.

``benchmarks/parser_hostile.py`` measures the per-MB time at 5 and 50 MB.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest_platform.models import Post

__all__ = [
    "CHALLENGE_SCOPE",
    "MAX_COUNT",
    "MAX_JSON_DEPTH",
    "USER_SCOPE",
    "VIDEO_SCOPE",
    "ChallengeInfo",
    "ItemListResult",
    "PageKind",
    "PageResult",
    "PageState",
    "PageStateError",
    "PageStatus",
    "StateScriptInvalid",
    "StateScriptNotFound",
    "UnparseableJSON",
    "UserInfo",
    "clean_text",
    "extract_state",
    "item_to_post",
    "json_depth_exceeds",
    "loads_bounded",
    "page_result_to_jsonl",
    "parse_document",
    "parse_file",
    "parse_item_list",
    "parse_page",
    "parse_state",
    "short_repr",
    "status_for_code",
]

VIDEO_SCOPE = "webapp.video-detail"
USER_SCOPE = "webapp.user-detail"
CHALLENGE_SCOPE = "webapp.challenge-detail"


# --------------------------------------------------------------------------------------------------
# Public models
# --------------------------------------------------------------------------------------------------


class PageKind(StrEnum):
    VIDEO = "video"
    USER = "user"
    CHALLENGE = "challenge"
    UNKNOWN = "unknown"


class PageStatus(StrEnum):
    """What a page (or list response) turned out to be, independent of its HTTP status."""

    OK = "ok"
    IP_BLOCKED = "ip_blocked"  # statusCode 10204
    PRIVATE_POST = "private_post"  # statusCode 10216
    PRIVATE_ACCOUNT = "private_account"  # statusCode 10222
    USER_NOT_FOUND = "user_not_found"  # statusCode 10221
    EMPTY_SHELL = "empty_shell"  # HTTP 200 but nothing where the content should be: a soft block
    BROKEN = "broken"  # no state script, or state that is not valid JSON / not parseable
    OTHER_ERROR = "other_error"  # any other non-zero statusCode


_STATUS_BY_CODE: dict[int, PageStatus] = {
    0: PageStatus.OK,
    10204: PageStatus.IP_BLOCKED,
    10216: PageStatus.PRIVATE_POST,
    10221: PageStatus.USER_NOT_FOUND,
    10222: PageStatus.PRIVATE_ACCOUNT,
}


def status_for_code(code: int | None) -> PageStatus:
    """Map a TikTok ``statusCode`` to a :class:`PageStatus` (``None`` means "no code": OK)."""
    if code is None:
        return PageStatus.OK
    return _STATUS_BY_CODE.get(code, PageStatus.OTHER_ERROR)


class UserInfo(BaseModel):
    """A profile's public header. Holds personal data (handle, nickname, bio): raw store only."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None
    unique_id: str | None = None
    sec_uid: str | None = None
    nickname: str | None = None
    signature: str | None = None
    verified: bool | None = None
    private_account: bool | None = None
    follower_count: int | None = None
    following_count: int | None = None
    heart_count: int | None = None
    video_count: int | None = None


class ChallengeInfo(BaseModel):
    """A hashtag ("challenge") page header."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None
    title: str | None = None
    video_count: int | None = None
    view_count: int | None = None


class PageResult(BaseModel):
    """The outcome of parsing one page: what it was, whether it had content, and its posts.

    ``bad_items`` holds ``(raw item, reason)`` for items that could not become a :class:`Post`;
    the caller dead-letters them (the raw item carries personal data: scrub before storing).
    """

    model_config = ConfigDict(frozen=True)

    kind: PageKind
    status: PageStatus
    status_code: int | None = None
    posts: list[Post] = Field(default_factory=list)
    user: UserInfo | None = None
    challenge: ChallengeInfo | None = None
    error: str | None = None
    bad_items: list[tuple[Any, str]] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is PageStatus.OK

    @property
    def blocked(self) -> bool:
        """True for hard (10204) and soft (empty shell) blocks: the scraper should rotate."""
        return self.status in (PageStatus.IP_BLOCKED, PageStatus.EMPTY_SHELL)


class ItemListResult(BaseModel):
    """One page of ``/api/post/item_list/`` or ``/api/challenge/item_list/``."""

    model_config = ConfigDict(frozen=True)

    posts: list[Post] = Field(default_factory=list)
    has_more: bool = False
    cursor: str | None = None
    status_code: int | None = None
    bad_items: list[tuple[Any, str]] = Field(default_factory=list)
    error: str | None = Field(default=None, description="why the response itself is unreadable")

    @property
    def status(self) -> PageStatus:
        """BROKEN when ``error`` is set; else from ``statusCode``, a 0 with no items at all reading
        as EMPTY_SHELL.

        An empty list can be legitimate (an account with no videos), so this is a hint for the
        caller, which knows whether content was expected; it is not an error by itself.
        """
        if self.error is not None:
            return PageStatus.BROKEN
        status = status_for_code(self.status_code)
        if status is PageStatus.OK and not self.posts and not self.bad_items:
            return PageStatus.EMPTY_SHELL
        return status


class PageState(BaseModel):
    """The decoded state script of a page."""

    model_config = ConfigDict(frozen=True)

    form: str  # "universal" (__UNIVERSAL_DATA_FOR_REHYDRATION__) or "sigi" (SIGI_STATE)
    script_id: str
    data: dict[str, Any]

    @property
    def scopes(self) -> dict[str, Any]:
        """``__DEFAULT_SCOPE__`` for the universal form, the whole state for SIGI."""
        if self.form == "universal":
            scope = self.data.get("__DEFAULT_SCOPE__")
            if isinstance(scope, dict):
                return scope
            # Tolerate a payload without the wrapper if it carries scope keys directly.
            return {k: v for k, v in self.data.items() if k.startswith(("webapp.", "seo."))}
        return self.data


class PageStateError(ValueError):
    """The page carries no usable state script."""


class StateScriptNotFound(PageStateError):
    """No ``__UNIVERSAL_DATA_FOR_REHYDRATION__`` / ``SIGI_STATE`` / ``sigi-persisted-data`` script."""


class StateScriptInvalid(PageStateError):
    """A state script was found but its content is not a JSON object."""


class UnparseableJSON(ValueError):
    """JSON that cannot be decoded within bounded work: invalid, too deep, or a number too long."""


# --------------------------------------------------------------------------------------------------
# State extraction
# --------------------------------------------------------------------------------------------------

# Preference order when a page carries more than one state script.
_STATE_SCRIPT_IDS: dict[str, str] = {
    "__UNIVERSAL_DATA_FOR_REHYDRATION__": "universal",
    "SIGI_STATE": "sigi",
    "sigi-persisted-data": "sigi",
}
# Only opening <script> tags are inspected, and only their attributes: the page is ~400 KB, almost
# all of it inside one script, so a full HTML parse would be wasted work. The scan is linear in the
# page size whatever the page holds (see "Hostile input" in the module docstring).
_SCRIPT_OPEN_RE = re.compile(r"<script\b", re.IGNORECASE)
_ID_ATTR_RE = re.compile(r"""(?<![\w-])id\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_SCRIPT_END_RE = re.compile(r"</script\s*>", re.IGNORECASE)
# A state script's opening tag is ~70 characters; a longer one is not a state script.
MAX_SCRIPT_TAG_CHARS = 4096
# JSON nested deeper than this is not a TikTok state (real pages nest ~15 levels deep).
MAX_JSON_DEPTH = 512


def _script_tags(html: str) -> Iterator[tuple[str, int]]:
    """``(attributes, end of the opening tag)`` for each well-formed ``<script ...>`` opening tag.

    Linear: each ``<script`` is found once, and a tag's ``>`` is searched at most once per stretch
    of the page, because a ``<script`` that starts before the previous one's ``>`` makes the
    previous one malformed (skipped). The old ``<script\\b([^>]*)>`` regex rescanned to the end of
    the page from every unclosed ``<script``: quadratic.
    """
    starts = _SCRIPT_OPEN_RE.finditer(html)
    current = next(starts, None)
    while current is not None:
        attrs_start = current.end()
        following = next(starts, None)
        # The tag ends at the first ">" before the next "<script" (or the end of the page).
        limit = following.start() if following is not None else len(html)
        limit = min(limit, attrs_start + MAX_SCRIPT_TAG_CHARS)
        close = html.find(">", attrs_start, limit)
        if close >= 0:
            yield html[attrs_start:close], close + 1
        current = following


def extract_state(html: str) -> PageState:
    """Find and decode the page's state script.

    Raises :class:`StateScriptNotFound` or :class:`StateScriptInvalid` (both ``ValueError``).
    The real page escapes ``/ < >`` inside the JSON as ``\\u002F`` etc., so the first
    ``</script>`` after the opening tag is the end of the state, and ``json.loads`` undoes the
    escapes.
    """
    found: dict[str, tuple[int, int]] = {}
    for attrs, tag_end in _script_tags(html):
        id_match = _ID_ATTR_RE.search(attrs)
        if id_match is None:
            continue
        script_id = next(g for g in id_match.groups() if g is not None)
        if script_id in _STATE_SCRIPT_IDS and script_id not in found:
            end = _SCRIPT_END_RE.search(html, tag_end)
            found[script_id] = (tag_end, end.start() if end else len(html))
            if script_id == "__UNIVERSAL_DATA_FOR_REHYDRATION__":
                break  # the preferred form: no need to scan the rest of the page
    for script_id, form in _STATE_SCRIPT_IDS.items():
        if script_id in found:
            start, end = found[script_id]
            return PageState(form=form, script_id=script_id, data=_decode_state(html[start:end], script_id))
    raise StateScriptNotFound(
        "no __UNIVERSAL_DATA_FOR_REHYDRATION__, SIGI_STATE or sigi-persisted-data script in the page"
    )


# A JSON string (escapes consumed pairwise, possessively) or a lone escape outside a string: the
# escape alternative keeps an unterminated string from being retried at every escaped quote.
_JSON_STRING_OR_ESCAPE_RE = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|\\.', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when brackets outside strings nest deeper than ``limit`` anywhere in ``text``.

    Linear and C-speed: strings are cut out by one regex pass, everything but brackets by another,
    and the running depth is a C-level ``accumulate``. Malformed JSON may be over-counted, which
    only makes an already unparseable document fail earlier.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET_RE.sub("", _JSON_STRING_OR_ESCAPE_RE.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def loads_bounded(text: str, *, start: int | None = None) -> Any:
    """``json.loads`` (or ``raw_decode`` from ``start``) that fails with one ``ValueError`` on content.

    Raises :class:`UnparseableJSON` for JSON nested deeper than :data:`MAX_JSON_DEPTH`, an integer
    literal past Python's digit limit (4,300) or any other decode error, never ``RecursionError``.
    """
    if json_depth_exceeds(text):
        raise UnparseableJSON(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        if start is None:
            return json.loads(text)
        return json.JSONDecoder().raw_decode(text, start)[0]
    except json.JSONDecodeError as exc:
        raise UnparseableJSON(f"not valid JSON: {exc}") from None
    except RecursionError:  # belt and braces: the pre-scan caps depth well below the C limit
        raise UnparseableJSON("JSON nested too deeply") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise UnparseableJSON(f"JSON number out of range: {str(exc)[:120]}") from None


def _decode_state(content: str, script_id: str) -> dict[str, Any]:
    text = content.strip()
    if not text:
        raise StateScriptInvalid(f"state script {script_id} is empty")
    try:
        if text.startswith("{"):
            value = loads_bounded(text)
        else:
            # sigi-persisted-data is JavaScript: window['SIGI_STATE']={...};window['SIGI_RETRY']=...
            brace = text.find("{")
            if brace < 0:
                raise StateScriptInvalid(f"state script {script_id} holds no JSON object")
            value = loads_bounded(text, start=brace)
    except UnparseableJSON as exc:
        raise StateScriptInvalid(f"state script {script_id} is unparseable: {exc}") from None
    if not isinstance(value, dict):
        raise StateScriptInvalid(f"state script {script_id} is {type(value).__name__}, not a JSON object")
    return value


# --------------------------------------------------------------------------------------------------
# Page parsing
# --------------------------------------------------------------------------------------------------


def parse_page(
    html: str,
    *,
    source_url: str,
    scraped_at: datetime,
    proxy_id: str | None = None,
    backend: str = "browser",
) -> PageResult:
    """Parse a whole TikTok page. Never raises for page content; problems become a status.

    Work is linear in ``len(html)`` (no regex that backtracks over the page, JSON depth capped
    before decoding); an unparseable page is :attr:`PageStatus.BROKEN` with the reason in ``error``.
    """
    try:
        state = extract_state(html)
    except StateScriptNotFound as exc:
        return _from_partial_capture(html, source_url=source_url, reason=str(exc))
    except PageStateError as exc:
        return PageResult(kind=_kind_from_url(source_url), status=PageStatus.BROKEN, error=str(exc))
    return parse_state(
        state, source_url=source_url, scraped_at=scraped_at, proxy_id=proxy_id, backend=backend
    )


def _unparseable(source_url: str, reason: str) -> PageResult:
    return PageResult(
        kind=_kind_from_url(source_url), status=PageStatus.BROKEN, error=f"unparseable: {reason}"
    )


def parse_state(
    state: PageState,
    *,
    source_url: str,
    scraped_at: datetime,
    proxy_id: str | None = None,
    backend: str = "browser",
) -> PageResult:
    """Turn an extracted :class:`PageState` into a :class:`PageResult`."""
    ctx = _Ctx(source_url=source_url, scraped_at=scraped_at, proxy_id=proxy_id, backend=backend)
    try:
        if state.form == "sigi":
            return _parse_sigi(state.data, ctx)
        return _parse_universal(state.scopes, ctx)
    except _SHAPE_ERRORS as exc:
        # Defensive: the detail parsers check shapes, but a page must never crash the scraper.
        return PageResult(
            kind=_kind_from_url(source_url),
            status=PageStatus.BROKEN,
            error=f"unexpected page state shape: {type(exc).__name__}: {exc}",
        )


# What a state of an unexpected shape can raise while being read (RecursionError: belt and braces,
# decoding caps nesting).
_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError, OverflowError, RecursionError)


class _Ctx:
    """Provenance copied onto every post parsed from one page/response."""

    __slots__ = ("backend", "proxy_id", "scraped_at", "source_url")

    def __init__(self, *, source_url: str, scraped_at: datetime, proxy_id: str | None, backend: str):
        self.source_url = source_url
        self.scraped_at = scraped_at
        self.proxy_id = proxy_id
        self.backend = backend

    def post(self, item: Any) -> Post:
        return item_to_post(
            item,
            source_url=self.source_url,
            scraped_at=self.scraped_at,
            proxy_id=self.proxy_id,
            backend=self.backend,
        )


def _parse_universal(scopes: Mapping[str, Any], ctx: _Ctx) -> PageResult:
    if VIDEO_SCOPE in scopes:
        return _parse_video_detail(scopes[VIDEO_SCOPE], ctx)
    if USER_SCOPE in scopes:
        return _parse_user_detail(scopes[USER_SCOPE], ctx)
    if CHALLENGE_SCOPE in scopes:
        return _parse_challenge_detail(scopes[CHALLENGE_SCOPE], ctx)
    seo = scopes.get("seo.abtest")
    canonical = seo.get("canonical") if isinstance(seo, Mapping) else None
    kind = _kind_from_url(ctx.source_url)
    if kind is PageKind.UNKNOWN and isinstance(canonical, str):
        kind = _kind_from_url(canonical)
    return PageResult(
        kind=kind,
        status=PageStatus.EMPTY_SHELL,
        error="page state has no video/user/challenge detail scope (HTTP 200 without content)",
    )


def _detail_status(detail: Mapping[str, Any]) -> tuple[int | None, PageStatus, str | None]:
    code = _status_code_of(detail)
    status = status_for_code(code)
    error = None
    if status is not PageStatus.OK:
        msg = detail.get("statusMsg") or detail.get("status_msg")
        error = f"statusCode {code}" + (f": {msg}" if isinstance(msg, str) and msg else "")
    return code, status, error


def _parse_video_detail(detail: Any, ctx: _Ctx) -> PageResult:
    if not isinstance(detail, Mapping):
        return PageResult(
            kind=PageKind.VIDEO, status=PageStatus.BROKEN, error=f"{VIDEO_SCOPE} is not an object"
        )
    code, status, error = _detail_status(detail)
    if status is not PageStatus.OK:
        return PageResult(kind=PageKind.VIDEO, status=status, status_code=code, error=error)
    item_info = detail.get("itemInfo")
    item = item_info.get("itemStruct") if isinstance(item_info, Mapping) else None
    if not item:
        return PageResult(
            kind=PageKind.VIDEO,
            status=PageStatus.EMPTY_SHELL,
            status_code=code,
            error=f"{VIDEO_SCOPE} has no itemInfo.itemStruct",
        )
    posts, bad = _items_to_posts([item], ctx)
    return _with_items(PageKind.VIDEO, code, posts, bad)


def _parse_user_detail(detail: Any, ctx: _Ctx) -> PageResult:
    if not isinstance(detail, Mapping):
        return PageResult(
            kind=PageKind.USER, status=PageStatus.BROKEN, error=f"{USER_SCOPE} is not an object"
        )
    code, status, error = _detail_status(detail)
    user_info = detail.get("userInfo")
    user = _user_info(user_info) if isinstance(user_info, Mapping) else None
    if status is not PageStatus.OK:
        return PageResult(kind=PageKind.USER, status=status, status_code=code, user=user, error=error)
    if user is None:
        return PageResult(
            kind=PageKind.USER,
            status=PageStatus.EMPTY_SHELL,
            status_code=code,
            error=f"{USER_SCOPE} has no userInfo.user",
        )
    # The server-rendered profile normally holds no videos (they come from item_list later),
    # but parse any it does carry.
    raw_items = user_info.get("itemList") if isinstance(user_info, Mapping) else None
    posts, bad = _items_to_posts(raw_items if isinstance(raw_items, list) else [], ctx)
    return PageResult(
        kind=PageKind.USER, status=PageStatus.OK, status_code=code, user=user, posts=posts, bad_items=bad
    )


def _parse_challenge_detail(detail: Any, ctx: _Ctx) -> PageResult:
    if not isinstance(detail, Mapping):
        return PageResult(
            kind=PageKind.CHALLENGE, status=PageStatus.BROKEN, error=f"{CHALLENGE_SCOPE} is not an object"
        )
    code, status, error = _detail_status(detail)
    info = detail.get("challengeInfo")
    challenge = _challenge_info(info) if isinstance(info, Mapping) else None
    if status is not PageStatus.OK:
        return PageResult(
            kind=PageKind.CHALLENGE, status=status, status_code=code, challenge=challenge, error=error
        )
    if challenge is None:
        return PageResult(
            kind=PageKind.CHALLENGE,
            status=PageStatus.EMPTY_SHELL,
            status_code=code,
            error=f"{CHALLENGE_SCOPE} has no challengeInfo.challenge",
        )
    raw_items = detail.get("itemList")
    posts, bad = _items_to_posts(raw_items if isinstance(raw_items, list) else [], ctx)
    return PageResult(
        kind=PageKind.CHALLENGE,
        status=PageStatus.OK,
        status_code=code,
        challenge=challenge,
        posts=posts,
        bad_items=bad,
    )


def _parse_sigi(data: Mapping[str, Any], ctx: _Ctx) -> PageResult:
    item_module = data.get("ItemModule")
    items: list[Any] = list(item_module.values()) if isinstance(item_module, Mapping) else []
    user_module = data.get("UserModule")
    users = user_module.get("users") if isinstance(user_module, Mapping) else None
    users = users if isinstance(users, Mapping) else {}
    user_stats = user_module.get("stats") if isinstance(user_module, Mapping) else None
    user_stats = user_stats if isinstance(user_stats, Mapping) else {}

    kind, page = PageKind.UNKNOWN, None
    for key, candidate in (
        ("ChallengePage", PageKind.CHALLENGE),
        ("UserPage", PageKind.USER),
        ("VideoPage", PageKind.VIDEO),
    ):
        if isinstance(data.get(key), Mapping):
            kind, page = candidate, data[key]
            break
    if kind is PageKind.UNKNOWN:
        kind = _kind_from_url(ctx.source_url)
        if kind is PageKind.UNKNOWN and items:
            kind = PageKind.VIDEO if len(items) == 1 else PageKind.USER

    code, status, error = _detail_status(page) if page is not None else (None, PageStatus.OK, None)

    # SIGI items name their author by uniqueId only; the UserModule has the rest of the profile.
    enriched = [_sigi_enrich_author(item, users) for item in items]

    user = None
    if kind is PageKind.USER or (kind is PageKind.VIDEO and users):
        unique_id = page.get("uniqueId") if isinstance(page, Mapping) else None
        if not isinstance(unique_id, str) or unique_id not in users:
            unique_id = next(iter(users)) if len(users) == 1 else None
        if unique_id is not None and isinstance(users.get(unique_id), Mapping):
            stats = user_stats.get(unique_id)
            user = _user_info(
                {"user": users[unique_id], "stats": stats if isinstance(stats, Mapping) else {}}
            )

    challenge = None
    if kind is PageKind.CHALLENGE:
        info = page.get("challengeInfo") if isinstance(page, Mapping) else None
        if not isinstance(info, Mapping):
            info = data.get("ChallengeInfo") if isinstance(data.get("ChallengeInfo"), Mapping) else None
        challenge = _challenge_info(info) if info is not None else None

    if status is not PageStatus.OK:
        return PageResult(
            kind=kind, status=status, status_code=code, user=user, challenge=challenge, error=error
        )

    # Dead-letter the item as it was on the page, not the enriched copy.
    posts, bad = _items_to_posts(enriched, ctx, originals=items)
    has_header = (kind is PageKind.USER and user is not None) or (
        kind is PageKind.CHALLENGE and challenge is not None
    )
    if not posts and not bad and not has_header:
        return PageResult(
            kind=kind,
            status=PageStatus.EMPTY_SHELL,
            status_code=code,
            user=user,
            challenge=challenge,
            error="SIGI_STATE has no ItemModule items and no page header",
        )
    if not posts and bad and not has_header:
        return PageResult(
            kind=kind, status=PageStatus.BROKEN, status_code=code, bad_items=bad, error=bad[0][1]
        )
    return PageResult(
        kind=kind,
        status=PageStatus.OK,
        status_code=code,
        posts=posts,
        user=user,
        challenge=challenge,
        bad_items=bad,
    )


def _sigi_enrich_author(item: Any, users: Mapping[str, Any]) -> Any:
    if not isinstance(item, Mapping) or not isinstance(item.get("author"), str):
        return item
    handle = item["author"]
    profile = users.get(handle)
    profile = profile if isinstance(profile, Mapping) else {}
    author = {
        "id": item.get("authorId") or profile.get("id"),
        "uniqueId": handle,
        "nickname": item.get("nickname") or profile.get("nickname"),
        "secUid": item.get("authorSecId") or profile.get("secUid"),
        "signature": profile.get("signature"),
        "verified": profile.get("verified"),
    }
    return {**item, "author": author}


def _with_items(
    kind: PageKind, code: int | None, posts: list[Post], bad: list[tuple[Any, str]]
) -> PageResult:
    if posts:
        return PageResult(kind=kind, status=PageStatus.OK, status_code=code, posts=posts, bad_items=bad)
    # The page's only item was unusable: the page as a whole gave us nothing.
    return PageResult(kind=kind, status=PageStatus.BROKEN, status_code=code, bad_items=bad, error=bad[0][1])


def _items_to_posts(
    items: list[Any], ctx: _Ctx, *, originals: list[Any] | None = None
) -> tuple[list[Post], list[tuple[Any, str]]]:
    posts: list[Post] = []
    bad: list[tuple[Any, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            post = ctx.post(item)
        except ValueError as exc:
            bad.append((originals[index] if originals is not None else item, str(exc)))
            continue
        if post.post_id not in seen:  # TikTok repeats pinned items across list pages
            seen.add(post.post_id)
            posts.append(post)
    return posts, bad


# Keys of a profile's or hashtag's TikTok state that hold a partial capture's scope names.
_SCOPE_KEY_RE = re.compile(r'"((?:webapp|seo)\.[A-Za-z0-9_.\-]+)"\s*:\s*\{')
# Anchored at a found '"canonical"' and bounded: a regex search for an unterminated value would
# rescan the rest of the page from every occurrence (quadratic).
_CANONICAL_VALUE_RE = re.compile(r'\s*:\s*("(?:[^"\\]|\\.){0,2048}+")')
_CANONICAL_TRIES = 3


def _canonical_url(html: str) -> str | None:
    position = 0
    for _attempt in range(_CANONICAL_TRIES):
        found = html.find('"canonical"', position)
        if found < 0:
            return None
        position = found + len('"canonical"')
        match = _CANONICAL_VALUE_RE.match(html, position)
        if match:
            with contextlib.suppress(ValueError, TypeError):
                value = json.loads(match.group(1))
                return value if isinstance(value, str) else None
    return None


def _from_partial_capture(html: str, *, source_url: str, reason: str) -> PageResult:
    """Classify a page whose state script has no opening tag in the captured text.

    A truncated capture (e.g. only the tail of the page was stored) still shows the state's scope
    keys. If the app-shell scopes are there but no detail scope, the page was an empty shell; if a
    detail scope is there we cannot read it, so the page is broken; with no scope keys at all this
    is not a TikTok app page (WAF/captcha/error page): broken.
    """
    keys = set(_SCOPE_KEY_RE.findall(html))
    kind = _kind_from_url(source_url)
    if kind is PageKind.UNKNOWN:
        canonical = _canonical_url(html)
        if canonical:
            kind = _kind_from_url(canonical)
    if not keys:
        return PageResult(kind=kind, status=PageStatus.BROKEN, error=reason)
    if keys & {VIDEO_SCOPE, USER_SCOPE, CHALLENGE_SCOPE}:
        return PageResult(
            kind=kind, status=PageStatus.BROKEN, error=f"{reason}; a detail scope is present but unreadable"
        )
    return PageResult(
        kind=kind,
        status=PageStatus.EMPTY_SHELL,
        error="partial page state without any video/user/challenge detail scope (HTTP 200 without content)",
    )


_VIDEO_PATH_RE = re.compile(r"/@[^/]*/(?:video|photo)/\d+")
_USER_PATH_RE = re.compile(r"/@[^/]+/?$")


def _kind_from_url(url: str | None) -> PageKind:
    if not url:
        return PageKind.UNKNOWN
    path = urlsplit(url).path
    if _VIDEO_PATH_RE.search(path):
        return PageKind.VIDEO
    if "/tag/" in path:
        return PageKind.CHALLENGE
    if _USER_PATH_RE.search(path):
        return PageKind.USER
    return PageKind.UNKNOWN


def _user_info(user_info: Mapping[str, Any]) -> UserInfo | None:
    user = user_info.get("user")
    if not isinstance(user, Mapping) or not (user.get("id") or user.get("uniqueId")):
        return None
    stats = user_info.get("stats")
    stats_v2 = user_info.get("statsV2")
    # statsV2 holds exact strings; stats holds rounded ints (68300 vs "68259"), so V2 wins.
    sources = [s for s in (stats_v2, stats) if isinstance(s, Mapping)]
    return UserInfo(
        id=_lenient_str(user.get("id")),
        unique_id=_lenient_str(user.get("uniqueId")),
        sec_uid=_lenient_str(user.get("secUid")),
        nickname=_lenient_str(user.get("nickname")),
        signature=_lenient_str(user.get("signature")),
        verified=_lenient_bool(user.get("verified")),
        private_account=_lenient_bool(user.get("privateAccount")),
        follower_count=_first_count(sources, "followerCount"),
        following_count=_first_count(sources, "followingCount"),
        heart_count=_first_count(sources, "heartCount", "heart"),
        video_count=_first_count(sources, "videoCount"),
    )


def _challenge_info(info: Mapping[str, Any]) -> ChallengeInfo | None:
    challenge = info.get("challenge")
    if not isinstance(challenge, Mapping) or not (challenge.get("id") or challenge.get("title")):
        return None
    sources = [s for s in (info.get("statsV2"), info.get("stats")) if isinstance(s, Mapping)]
    return ChallengeInfo(
        id=_lenient_str(challenge.get("id")),
        title=_lenient_str(challenge.get("title")),
        video_count=_first_count(sources, "videoCount"),
        view_count=_first_count(sources, "viewCount"),
    )


def _first_count(sources: list[Mapping[str, Any]], *keys: str) -> int | None:
    """Header counts are informational: a bad value becomes None rather than failing the page."""
    for source in sources:
        for key in keys:
            try:
                value = parse_count(source.get(key))
            except ValueError:
                continue
            if value is not None:
                return value
    return None


def _lenient_str(value: Any) -> str | None:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 4 * _MAX_ID_CHARS:
        return str(value)
    return None


def _lenient_bool(value: Any) -> bool | None:
    try:
        return _opt_bool(value, "flag")
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------------------

_DIGITS_RE = re.compile(r"\d+", re.ASCII)
# Ids are short (TikTok's are 19 digits): a longer "id" is junk, and echoing it in a reason or
# converting it with int() would cost work proportional to whatever the page sent.
_MAX_ID_CHARS = 128
# Counts land in BIGINT/NUMBER(19) columns: a larger value is junk and would fail the load.
MAX_COUNT = 2**63 - 1
# Lone UTF-16 surrogates ("\ud800" in JSON) are valid Python str but cannot be encoded as UTF-8:
# they would crash printing and loading. They become U+FFFD.
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """``value`` with lone surrogates replaced by U+FFFD (json.loads already pairs valid ones)."""
    if value.isascii():  # the common case, checked at C speed
        return value
    return _LONE_SURROGATE_RE.sub("\ufffd", value)
# Hashtags end at whitespace/punctuation/emoji. \w alone misses combining marks (Mn/Mc), which
# Devanagari, Thai and friends need inside a word, so those ranges are added explicitly.
_TAG_CHARS = r"(?:\w|[\u0300-\u036f\u0900-\u0dff\u0e00-\u0eff\u200c\u200d])+"
_DESC_HASHTAG_RE = re.compile(rf"(?<![\w&#])#({_TAG_CHARS})")
# TikTok handles: letters, digits, underscore, period (2-24 on the real site; no upper bound here so
# a long handle is never cut short). The look-behind skips e-mail addresses.
_DESC_MENTION_RE = re.compile(r"(?<![\w@.])@([A-Za-z0-9_.]{2,})")
_COUNT_KEYS: dict[str, str] = {
    "play_count": "playCount",
    "like_count": "diggCount",
    "comment_count": "commentCount",
    "share_count": "shareCount",
    "collect_count": "collectCount",
}


def item_to_post(
    item: Any,
    *,
    source_url: str,
    scraped_at: datetime,
    proxy_id: str | None = None,
    backend: str = "browser",
    platform: str = "tiktok",
) -> Post:
    """Convert one TikTok item (``itemStruct`` / ``itemList[i]`` / ``ItemModule[id]``) to a Post.

    Raises ``ValueError`` with a reason naming the item id and the bad field; never leaks a
    ``KeyError``/``TypeError``. Reasons name fields and counts only, never caption text, so they
    are safe to store next to a dead letter.
    """
    if not isinstance(item, Mapping):
        raise ValueError(f"item is a {type(item).__name__}, not an object")
    raw_id = item.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id) if raw_id.bit_length() <= 4 * _MAX_ID_CHARS else "x" * (_MAX_ID_CHARS + 1)
    item_id = clean_text(raw_id.strip()) if isinstance(raw_id, str) else ""
    if not item_id:
        raise ValueError("item has no id")
    if len(item_id) > _MAX_ID_CHARS:
        raise ValueError(f"item id is {len(item_id)} characters long (at most {_MAX_ID_CHARS})")
    try:
        return _item_to_post(
            item,
            item_id,
            source_url=source_url,
            scraped_at=scraped_at,
            proxy_id=proxy_id,
            backend=backend,
            platform=platform,
        )
    except ValidationError as exc:
        # include_input=False: the inputs are caption/author text, i.e. personal data.
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors(include_input=False)
        )
        raise ValueError(f"item {item_id}: invalid post: {problems}") from None
    except ValueError as exc:
        raise ValueError(f"item {item_id}: {exc}") from None
    except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise ValueError(f"item {item_id}: malformed ({type(exc).__name__}: {exc})") from None


def _item_to_post(
    item: Mapping[str, Any],
    item_id: str,
    *,
    source_url: str,
    scraped_at: datetime,
    proxy_id: str | None,
    backend: str,
    platform: str,
) -> Post:
    desc = item.get("desc")
    if desc is None:
        desc = ""
    elif not isinstance(desc, str):
        raise ValueError(f"desc is a {type(desc).__name__}, not text")
    desc = clean_text(desc)

    author = item.get("author")
    if isinstance(author, Mapping):
        author_fields = {
            "author_id": _opt_id(author.get("id"), "author.id"),
            "author_handle": _opt_str(author.get("uniqueId"), "author.uniqueId"),
            "author_nickname": _opt_str(author.get("nickname"), "author.nickname"),
            "author_sec_uid": _opt_str(author.get("secUid"), "author.secUid"),
            "author_bio": _opt_str(author.get("signature"), "author.signature"),
            "author_verified": _opt_bool(author.get("verified"), "author.verified"),
        }
    elif isinstance(author, str) or author is None:
        # SIGI/list shape: author is the handle, the rest sits flat on the item.
        author_fields = {
            "author_id": _opt_id(item.get("authorId"), "authorId"),
            "author_handle": author or None,
            "author_nickname": _opt_str(item.get("nickname"), "nickname"),
            "author_sec_uid": _opt_str(item.get("authorSecId"), "authorSecId"),
            "author_bio": None,
            "author_verified": None,
        }
    else:
        raise ValueError(f"author is a {type(author).__name__}, not an object")

    stats = optional_mapping(item.get("stats"), "stats")
    stats_v2 = optional_mapping(item.get("statsV2"), "statsV2")
    counts = {field: _item_count(stats, stats_v2, key) for field, key in _COUNT_KEYS.items()}

    hashtags, mentions = _tags_and_mentions(item, desc)

    music = optional_mapping(item.get("music"), "music")
    video = optional_mapping(item.get("video"), "video")

    return Post(
        platform=platform,
        post_id=item_id,
        description=desc,
        created_at=_created_at(item.get("createTime"), item_id),
        **author_fields,
        **counts,
        hashtags=hashtags,
        mentions=mentions,
        music_id=_opt_id(music.get("id"), "music.id"),
        music_title=_opt_str(music.get("title"), "music.title"),
        music_author=_opt_str(music.get("authorName"), "music.authorName"),
        music_original=_opt_bool(music.get("original"), "music.original"),
        duration_seconds=_duration(video.get("duration")),
        location_created=_opt_str(item.get("locationCreated"), "locationCreated") or None,
        is_ad=bool(_opt_bool(item.get("isAd"), "isAd")),
        is_slideshow=_is_slideshow(item.get("imagePost")),
        source_url=source_url,
        scraped_at=scraped_at,
        proxy_id=proxy_id,
        backend=backend,
    )


def _created_at(raw: Any, item_id: str) -> datetime:
    seconds: int | None = None
    if raw not in (None, "", 0, "0"):
        try:
            seconds = parse_count(raw)
        except ValueError:
            raise ValueError(f"createTime {short_repr(raw)} is not unix seconds") from None
    if not seconds:
        # TikTok ids are snowflakes whose top 32 bits are the creation time in unix seconds.
        if _DIGITS_RE.fullmatch(item_id) and int(item_id) >> 32 > 0:
            seconds = int(item_id) >> 32
        else:
            raise ValueError("createTime missing and id is not a numeric TikTok id")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"createTime {short_repr(raw)} is out of range") from None


def _item_count(stats: Mapping[str, Any], stats_v2: Mapping[str, Any], key: str) -> int | None:
    """``stats`` first (ints, but ``collectCount`` is a string), then ``statsV2`` (all strings)."""
    bad: list[str] = []
    for name, source in (("stats", stats), ("statsV2", stats_v2)):
        value = source.get(key)
        if value is None or value == "":
            continue
        try:
            return parse_count(value)
        except ValueError:
            bad.append(f"{name}.{key}={short_repr(value)}")
    if bad:
        raise ValueError(f"{' and '.join(bad)} is not a non-negative count")
    return None


def parse_count(value: Any) -> int | None:
    """A non-negative count from an int, an integral float or a digit string; None when missing."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a count")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and len(value) <= _MAX_ID_CHARS and _DIGITS_RE.fullmatch(value.strip()):
        result = int(value.strip())
    else:
        raise ValueError(f"{short_repr(value)} is not a count")
    if result < 0:
        raise ValueError(f"{short_repr(value)} is negative")
    if result > MAX_COUNT:
        raise ValueError(f"{short_repr(value)} is out of range")
    return result


def short_repr(value: Any) -> str:
    """``repr`` for a reason, cut short: a hostile value can be megabytes long."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<integer of {value.bit_length()} bits>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _tags_and_mentions(item: Mapping[str, Any], desc: str) -> tuple[list[str], list[str]]:
    hashtags: dict[str, None] = {}  # dict as an insertion-ordered set
    mentions: dict[str, None] = {}

    def add(target: dict[str, None], value: Any, prefix: str) -> None:
        if isinstance(value, str):
            cleaned = clean_text(value).strip().lstrip(prefix).strip().lower()
            if cleaned:
                target.setdefault(cleaned, None)

    for challenge in optional_list(item.get("challenges"), "challenges"):
        if isinstance(challenge, Mapping):
            add(hashtags, challenge.get("title"), "#")
    for extra in optional_list(item.get("textExtra"), "textExtra"):
        if not isinstance(extra, Mapping):
            continue
        kind = extra.get("type")
        if kind in (1, "1"):
            add(hashtags, extra.get("hashtagName"), "#")
        elif kind in (0, "0"):
            add(mentions, extra.get("userUniqueId"), "@")
    # challenges/textExtra can be empty while the caption has #tags and @handles: read it too.
    for tag in _DESC_HASHTAG_RE.findall(desc):
        add(hashtags, tag, "#")
    for handle in _DESC_MENTION_RE.findall(desc):
        add(mentions, handle.rstrip("."), "@")
    return list(hashtags), list(mentions)


def _duration(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("video.duration is a boolean")
    if isinstance(value, str) and len(value) > _MAX_ID_CHARS:
        raise ValueError(f"video.duration {short_repr(value)} is not a number")
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"video.duration {short_repr(value)} is not a number") from None
    if not math.isfinite(seconds) or seconds < 0:  # NaN, Infinity or negative
        raise ValueError(f"video.duration {short_repr(value)} is not a valid duration")
    # Slideshows report 0: no real duration, which is what None says.
    return seconds or None


def _is_slideshow(image_post: Any) -> bool:
    if isinstance(image_post, Mapping):
        images = image_post.get("images")
        return bool(images) if "images" in image_post else bool(image_post)
    return bool(image_post)


def optional_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{field} is a {type(value).__name__}, not an object")
    return value


def optional_list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{field} is a {type(value).__name__}, not a list")
    return value


def _opt_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return clean_text(value)
    raise ValueError(f"{field} is a {type(value).__name__}, not text")


def _opt_id(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 4 * _MAX_ID_CHARS:
        value = str(value)
    if isinstance(value, str):
        if len(value) > _MAX_ID_CHARS:
            raise ValueError(f"{field} is {len(value)} characters long, not an id")
        return clean_text(value)
    raise ValueError(f"{field} is a {type(value).__name__}, not an id")


def _opt_bool(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return bool(int(value))
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{field} {short_repr(value)} is not a boolean")


def _status_code_of(payload: Mapping[str, Any]) -> int | None:
    for key in ("statusCode", "status_code"):
        value = payload.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            break
        if isinstance(value, int):
            return value
        if isinstance(value, str) and len(value) <= 32 and re.fullmatch(r"-?\d+", value.strip()):
            return int(value.strip())
        break
    return None


# --------------------------------------------------------------------------------------------------
# Item-list API responses
# --------------------------------------------------------------------------------------------------


def parse_item_list(
    payload: Any,
    *,
    source_url: str,
    scraped_at: datetime,
    proxy_id: str | None = None,
    backend: str = "browser",
    platform: str = "tiktok",
) -> ItemListResult:
    """Parse one ``/api/post/item_list/`` or ``/api/challenge/item_list/`` response.

    ``itemList`` is missing or ``null`` on empty pages; ``hasMore`` is a bool or 0/1; ``cursor``
    a string or number. Bad items are returned in ``bad_items``. Never raises on content: a
    payload that is not an object, or whose ``itemList`` is not a list, comes back with
    ``error`` set and :attr:`ItemListResult.status` ``BROKEN``.
    """
    if not isinstance(payload, Mapping):
        return ItemListResult(error=f"item list response is a {type(payload).__name__}, not an object")
    raw_items = payload.get("itemList")
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list):
        return ItemListResult(
            error=f"item list response: itemList is a {type(raw_items).__name__}, not a list",
            status_code=_status_code_of(payload),
        )
    posts: list[Post] = []
    bad: list[tuple[Any, str]] = []
    seen: set[str] = set()
    for item in raw_items:
        try:
            post = item_to_post(
                item,
                source_url=source_url,
                scraped_at=scraped_at,
                proxy_id=proxy_id,
                backend=backend,
                platform=platform,
            )
        except ValueError as exc:
            bad.append((item, str(exc)))
            continue
        if post.post_id not in seen:
            seen.add(post.post_id)
            posts.append(post)
    cursor = _lenient_str(payload.get("cursor"))
    return ItemListResult(
        posts=posts,
        has_more=_has_more(payload.get("hasMore", payload.get("has_more"))),
        # A cursor is a short number; anything huge is junk, not a position to resume from.
        cursor=cursor if cursor and len(cursor) <= _MAX_ID_CHARS else None,
        status_code=_status_code_of(payload),
        bad_items=bad,
    )


def _has_more(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


# --------------------------------------------------------------------------------------------------
# Output and file/CLI helpers
# --------------------------------------------------------------------------------------------------


def page_result_to_jsonl(result: PageResult) -> Iterator[str]:
    """One ``{"type": "post", ...}`` line per post, then one ``{"type": "page", ...}`` status line."""
    for post in result.posts:
        yield json.dumps({"type": "post", **post.model_dump(mode="json")}, ensure_ascii=False)
    yield json.dumps(
        {
            "type": "page",
            "kind": result.kind.value,
            "status": result.status.value,
            "status_code": result.status_code,
            "posts": len(result.posts),
            "error": result.error,
        },
        ensure_ascii=False,
    )


# A bare ``__DEFAULT_SCOPE__["webapp.*"]`` value is recognised by its top-level key.
_BARE_SCOPE_KEYS: dict[str, str] = {
    "itemInfo": VIDEO_SCOPE,
    "userInfo": USER_SCOPE,
    "challengeInfo": CHALLENGE_SCOPE,
}
_SIGI_KEYS = ("ItemModule", "UserModule", "VideoPage", "UserPage", "ChallengePage")


def parse_document(
    text: str,
    *,
    source_url: str,
    scraped_at: datetime,
    proxy_id: str | None = None,
    backend: str = "browser",
) -> PageResult:
    """Parse either an HTML page or a JSON document.

    JSON documents may be a whole state (``{"__DEFAULT_SCOPE__": …}``), a SIGI state, a bare
    ``webapp.*-detail`` value (top level ``itemInfo`` / ``userInfo`` / ``challengeInfo``, as in
    the fixtures' ``.json`` files), or an item-list API response (top level ``itemList``).
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped.startswith(("{", "[")):
        return parse_page(
            text, source_url=source_url, scraped_at=scraped_at, proxy_id=proxy_id, backend=backend
        )
    try:
        value = loads_bounded(stripped)
    except UnparseableJSON as exc:
        return _unparseable(source_url, str(exc))
    kwargs: dict[str, Any] = {
        "source_url": source_url,
        "scraped_at": scraped_at,
        "proxy_id": proxy_id,
        "backend": backend,
    }
    if not isinstance(value, dict):
        return PageResult(
            kind=_kind_from_url(source_url), status=PageStatus.BROKEN, error="JSON is not an object"
        )
    if "__DEFAULT_SCOPE__" in value:
        return parse_state(PageState(form="universal", script_id="json", data=value), **kwargs)
    for key, scope in _BARE_SCOPE_KEYS.items():
        if key in value:
            return parse_state(
                PageState(form="universal", script_id="json", data={"__DEFAULT_SCOPE__": {scope: value}}),
                **kwargs,
            )
    if any(key in value for key in _SIGI_KEYS):
        return parse_state(PageState(form="sigi", script_id="json", data=value), **kwargs)
    if "itemList" in value:
        listing = parse_item_list(value, **kwargs)
        if listing.error is not None:
            return PageResult(kind=_kind_from_url(source_url), status=PageStatus.BROKEN, error=listing.error)
        status = status_for_code(listing.status_code)
        return PageResult(
            kind=_kind_from_url(source_url),
            status=status,
            status_code=listing.status_code,
            posts=listing.posts,
            bad_items=listing.bad_items,
            error=None if status is PageStatus.OK else f"statusCode {listing.status_code}",
        )
    code = _status_code_of(value)
    if code is not None:
        # A detail value with nothing but a status (e.g. {"statusCode": 10204, "statusMsg": ""}).
        status = status_for_code(code)
        return PageResult(
            kind=_kind_from_url(source_url),
            status=PageStatus.EMPTY_SHELL if status is PageStatus.OK else status,
            status_code=code,
            error=f"statusCode {code} without content",
        )
    return PageResult(
        kind=_kind_from_url(source_url),
        status=PageStatus.BROKEN,
        error="JSON is not a recognised TikTok payload",
    )


def parse_file(
    path: str | Path,
    *,
    source_url: str | None = None,
    scraped_at: datetime | None = None,
    proxy_id: str | None = None,
    backend: str = "browser",
) -> PageResult:
    """Parse a saved ``.html`` page or ``.json`` payload (the ``ingest-platform parse-page`` CLI).

    ``source_url`` defaults to the file's ``file://`` URI and ``scraped_at`` to now (UTC).
    """
    file_path = Path(path).expanduser().resolve()
    text = file_path.read_text(encoding="utf-8", errors="replace")
    return parse_document(
        text,
        source_url=source_url or file_path.as_uri(),
        scraped_at=scraped_at or datetime.now(UTC),
        proxy_id=proxy_id,
        backend=backend,
    )
