"""An offline stand-in for the Apify API v2, speaking exactly what apify-client 3.4.0 needs.

``ApifyStandIn(content).start()`` serves on ``127.0.0.1:<free port>`` in a background thread;
``ApifyClient(token, api_url=stand_in.api_url)`` then works unchanged (the client appends ``/v2``).

Endpoints (REFERENCE §5, checked against the installed client):

- ``POST /v2/actors/{owner~name}/runs`` (also ``/v2/acts/…``): start a run, 201 ``{"data": Run}``.
  Query ``timeout`` (s), ``memory`` (MB), ``maxItems``, ``build``, ``waitForFinish``.
- ``GET /v2/actor-runs/{id}?waitForFinish=N``: the run, held open up to N s (capped like the real
  API) until it leaves ``RUNNING`` for ``SUCCEEDED|FAILED|TIMED-OUT|ABORTED``.
- ``POST /v2/actor-runs/{id}/abort`` and ``GET /v2/actor-runs/{id}/log`` (plain text).
- ``GET /v2/datasets/{id}``: the dataset object (``itemCount``).
- ``GET /v2/datasets/{id}/items?offset&limit&desc&clean&fields&omit``: a bare JSON array plus all
  five ``X-Apify-Pagination-Offset|Limit|Count|Total|Desc`` headers (the client reads every one).
- ``GET /v2/actor-runs/{id}/dataset/items``: the same for a run's default dataset.

That is everything ``actor(...).call(logger=None)`` and dataset pagination touch: ``call`` is
``start`` + polling ``GET actor-runs/{id}``. (With the client's default logger it would also stream
the log and fetch the actor object; pass ``logger=None``, as the backend does.)

Auth is ``Authorization: Bearer <token>`` (or ``?token=``); anything else gets 401 with the API's
``{"error": {"type", "message"}}`` body. Request bodies may arrive gzip-compressed (the client
compresses bodies over 1 KB); aiohttp inflates them.

Actors:

- ``clockworks/tiktok-scraper``: input ``profiles``, ``hashtags``, ``postURLs``, ``resultsPerPage``.
  Items follow the real actor's output (see ``ingest_platform_tests/data/real/apify/``) and are
  generated from the same :class:`SandboxContent` the sandbox TikTok site serves, so both backends
  can be compared item by item (:func:`tiktok_dataset_item`).
- ``apify/facebook-posts-scraper``: input ``startUrls: [{url}]``, ``resultsLimit``. Items are
  deterministic public page posts in the actor's full schema (:func:`facebook_page_items`).

Misbehaviour is configured by :class:`ApifyStandInConfig`, read on every request (tests may change
a running stand-in's config): runs ending FAILED / TIMED-OUT / ABORTED, N requests answered 429 or
5xx (the client retries those), partial datasets (the items endpoint serves fewer items than the
dataset's ``itemCount`` and pagination ``total`` report), malformed items, and the usage/cost
fields a real run reports (``usageTotalUsd``, ``usage``, ``usageUsd``, ``stats.computeUnits``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ingest_platform.sandbox.content import REFERENCE_TIME, SandboxContent
from ingest_platform.sandbox.server import LoopbackAppServer

__all__ = [
    "DEFAULT_TOKEN",
    "FACEBOOK_ACTOR",
    "TIKTOK_ACTOR",
    "ApifyStandIn",
    "ApifyStandInConfig",
    "RequestRecord",
    "build_app",
    "facebook_page_items",
    "tiktok_dataset_item",
]

TIKTOK_ACTOR = "clockworks/tiktok-scraper"
FACEBOOK_ACTOR = "apify/facebook-posts-scraper"
DEFAULT_TOKEN = "apify_test_token"

RunStatus = Literal["SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"]
_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})
_NO_LIMIT = 999_999_999_999  # what the real API reports as the limit when none was asked for

_TIKTOK_WEB = "https://www.tiktok.com"
_FACEBOOK_WEB = "https://www.facebook.com"
# `.invalid` never resolves (RFC 2606): nothing here can reach the internet by accident.
_FB_CDN = "https://scontent.sandbox-fbcdn.invalid"
_RUN_HOST = "runs.sandbox-apify.invalid"


class ApifyStandInConfig(BaseModel):
    """What the stand-in does. Read on every request; assignments are validated."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    #: How long a run stays RUNNING before it reaches its final status.
    run_duration_s: float = Field(default=0.05, ge=0)
    #: The status every run ends with (unless its ``timeout`` is shorter than ``run_duration_s``).
    final_status: RunStatus = "SUCCEEDED"
    #: Per-actor override of ``final_status`` (``{"apify/facebook-posts-scraper": "FAILED"}``).
    final_status_by_actor: dict[str, RunStatus] = Field(default_factory=dict)
    #: Final statuses for the next runs, consumed one per run before the two settings above apply.
    next_run_statuses: list[RunStatus] = Field(default_factory=list)
    #: The real API holds ``waitForFinish`` for at most 60 s.
    max_wait_for_finish_s: float = Field(default=60.0, ge=0)
    #: The next N requests whose path matches ``fault_path`` answer 429 (the client retries).
    throttle_requests: int = Field(default=0, ge=0)
    #: The next N matching requests answer ``server_error_status`` (the client retries 5xx).
    server_error_requests: int = Field(default=0, ge=0)
    server_error_status: int = Field(default=503, ge=500, le=599)
    #: fnmatch pattern on the request path that the 429/5xx faults apply to.
    fault_path: str = "*"
    #: Partial datasets: the items endpoint omits each dataset's last N items while ``itemCount`` and
    #: the pagination total still count them (what a caller sees when items go missing).
    dataset_shortfall: int = Field(default=0, ge=0)
    #: Items per items-endpoint response at most, whatever ``limit`` asks (the real cap is 250 000).
    max_page_limit: int = Field(default=250_000, ge=1)
    #: Every Nth dataset item (1-based) is replaced by a malformed one (0 = never).
    corrupt_every: int = Field(default=0, ge=0)
    #: Share of its items a FAILED / TIMED-OUT / ABORTED run pushed before it stopped.
    failed_run_keeps: float = Field(default=0.5, ge=0, le=1)
    #: Pricing as the run reports it. ``PRICE_PER_DATASET_ITEM`` (both store actors are priced per
    #: result): ``usageTotalUsd`` is the per-result charge; ``PAY_PER_USAGE``: it is platform usage.
    pricing_model: Literal["PRICE_PER_DATASET_ITEM", "PAY_PER_USAGE"] = "PRICE_PER_DATASET_ITEM"
    usd_per_1k_results: dict[str, float] = Field(
        default_factory=lambda: {TIKTOK_ACTOR: 3.7, FACEBOOK_ACTOR: 5.0}
    )
    usd_per_compute_unit: float = Field(default=0.4, ge=0)
    compute_units_base: float = Field(default=0.004, ge=0)
    compute_units_per_item: float = Field(default=0.0006, ge=0)
    #: Posts each sandbox Facebook page has (newest first); ``resultsLimit`` takes the first N.
    facebook_posts_per_page: int = Field(default=40, ge=0)
    #: Seed of the generated Facebook pages (TikTok items come from the SandboxContent).
    facebook_seed: int = 7

    def status_for(self, actor: str) -> RunStatus:
        return self.final_status_by_actor.get(actor, self.final_status)


@dataclass(frozen=True)
class RequestRecord:
    """One request the stand-in answered (tests count retries and check what was sent)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    authorized: bool
    content_encoding: str | None = None


@dataclass
class _Dataset:
    id: str
    created_at: datetime
    items: list[dict[str, Any]] = field(default_factory=list)
    act_id: str | None = None
    run_id: str | None = None
    shortfall: int = 0  # items counted in itemCount but not served (partial dataset)

    @property
    def served(self) -> list[dict[str, Any]]:
        return self.items[: max(0, len(self.items) - self.shortfall)]


@dataclass
class _Run:
    id: str
    actor: str
    act_id: str
    started_at: datetime
    finishes_at: float  # time.monotonic() deadline
    final_status: RunStatus
    timeout_secs: int
    memory_mbytes: int
    max_items: int | None
    build: str
    input_len: int
    dataset: _Dataset
    kv_store_id: str
    request_queue_id: str
    build_id: str
    user_agent: str
    all_items: list[dict[str, Any]]
    status: str = "RUNNING"
    finished_at: datetime | None = None
    status_message: str = "Starting the crawler."


# --------------------------------------------------------------------------------------------------
# TikTok items (clockworks/tiktok-scraper output schema) from the sandbox content
# --------------------------------------------------------------------------------------------------


def _iso_ms(value: datetime) -> str:
    """``2025-07-07T14:58:13.000Z``: how Apify writes timestamps."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def tiktok_dataset_item(
    content: SandboxContent,
    post_id: str,
    *,
    input_value: str | None = None,
    search_hashtag: str | None = None,
) -> dict[str, Any]:
    """The dataset item clockworks/tiktok-scraper would push for sandbox post ``post_id``.

    Built from the exact itemStruct the sandbox site serves (``content.item_struct``), field for
    field as in ``fixtures/apify/tiktok-scraper-profile-items.json``. Real quirks kept: ``hashtags``
    mirrors ``textExtra`` (a mention contributes ``{"name": ""}``), ``mentions`` carry the ``@``,
    ``createTime`` is an int next to ``createTimeISO``, counts are ints.
    """
    item = content.item_struct(post_id)
    author = item["author"]
    profile = content.profile(author["uniqueId"])
    stats = item["stats"]
    music = item["music"]
    video = item["video"]
    handle = author["uniqueId"]
    created = datetime.fromtimestamp(int(item["createTime"]), UTC)
    author_stats = item.get("authorStats") or {}
    text_extra = item.get("textExtra") or []

    author_meta: dict[str, Any] = {
        "id": author["id"],
        "name": handle,
        "profileUrl": f"{_TIKTOK_WEB}/@{handle}",
        "nickName": author["nickname"],
        "verified": author["verified"],
        "signature": author["signature"],
        "secUid": author["secUid"],
        "originalAvatarUrl": author["avatarMedium"],
        "avatar": author["avatarMedium"],
        "privateAccount": author["privateAccount"],
        "region": profile.country if profile else None,
        "roomId": author["roomId"],
        "ttSeller": author["ttSeller"],
        "following": author_stats.get("followingCount", 0),
        "friends": author_stats.get("friendCount", 0),
        "fans": author_stats.get("followerCount", 0),
        "heart": author_stats.get("heartCount", 0),
        "video": author_stats.get("videoCount", 0),
        "digg": author_stats.get("diggCount", 0),
    }
    if profile is not None and profile.bio_link:
        author_meta["bioLink"] = profile.bio_link

    mentions = [e for e in text_extra if e.get("type") == 0]
    result: dict[str, Any] = {
        "id": item["id"],
        "text": item["desc"],
        "textLanguage": item.get("textLanguage", "un"),
        "createTime": int(item["createTime"]),
        "createTimeISO": _iso_ms(created),
        "isAd": item["isAd"],
        "authorMeta": author_meta,
        "musicMeta": {
            "musicName": music["title"],
            "musicAuthor": music["authorName"],
            "musicOriginal": music["original"],
            "playUrl": music["playUrl"],
            "coverMediumUrl": music["coverMedium"],
            "originalCoverMediumUrl": music["coverMedium"],
            "musicId": music["id"],
        },
        "webVideoUrl": f"{_TIKTOK_WEB}/@{handle}/video/{item['id']}",
        "mediaUrls": [],
        "videoMeta": {
            "height": video["height"],
            "width": video["width"],
            "duration": video["duration"],
            "coverUrl": video["cover"],
            "originalCoverUrl": video["originCover"],
            "definition": video["definition"],
            "format": video["format"],
        },
        "diggCount": stats["diggCount"],
        "shareCount": stats["shareCount"],
        "playCount": stats["playCount"],
        "collectCount": int(stats["collectCount"]),
        "commentCount": stats["commentCount"],
        "mentions": [f"@{e['userUniqueId']}" for e in mentions],
        "detailedMentions": [
            {
                "id": e.get("userId", ""),
                "name": e["userUniqueId"],
                "nickName": e["userUniqueId"],
                "profileUrl": f"{_TIKTOK_WEB}/@{e.get('userId', '')}",
            }
            for e in mentions
        ],
        # The actor lists every textExtra entry here, so a mention shows up as an empty name.
        "hashtags": [{"name": e.get("hashtagName", "")} for e in text_extra],
        "effectStickers": [],
        "isSlideshow": "imagePost" in item,
        "isPinned": False,
        "isSponsored": False,
        "locationCreated": item.get("locationCreated"),
    }
    if "imagePost" in item:
        result["slideshowImageLinks"] = [
            {"downloadLink": image["imageURL"]["urlList"][0], "tiktokLink": image["imageURL"]["urlList"][0]}
            for image in item["imagePost"]["images"]
        ]
    if input_value is not None:
        result["input"] = input_value
    if search_hashtag is not None:
        challenge = content.challenge(search_hashtag)
        result["searchHashtag"] = {
            "name": search_hashtag,
            "views": challenge.view_count if challenge else 0,
        }
    else:
        result["fromProfileSection"] = "videos"
    return result


def _tiktok_items(content: SandboxContent, run_input: dict[str, Any]) -> list[dict[str, Any]]:
    per_page = _positive_int(run_input.get("resultsPerPage"), default=10)
    items: list[dict[str, Any]] = []
    for raw in run_input.get("profiles") or []:
        handle = str(raw).strip()
        profile = content.profile(_profile_handle(handle))
        if profile is None:
            continue  # the actor pushes nothing for an account it cannot find
        for post_id in profile.post_ids[:per_page]:
            items.append(tiktok_dataset_item(content, post_id, input_value=handle))
    for raw in run_input.get("hashtags") or []:
        tag = str(raw).strip().lstrip("#")
        challenge = content.challenge(tag)
        if challenge is None:
            continue
        for post_id in challenge.post_ids[:per_page]:
            items.append(
                tiktok_dataset_item(content, post_id, input_value=tag, search_hashtag=challenge.title)
            )
    for raw in run_input.get("postURLs") or []:
        url = str(raw).strip()
        match = re.search(r"/video/(\d+)", url)
        if match and match.group(1) in content.posts_by_id:
            items.append(tiktok_dataset_item(content, match.group(1), input_value=url))
    return items


def _profile_handle(value: str) -> str:
    """Profiles may be given as ``name``, ``@name`` or a profile URL."""
    if "://" in value:
        path = urlsplit(value).path.strip("/")
        value = path.split("/", 1)[0]
    return value.lstrip("@").lower()


# --------------------------------------------------------------------------------------------------
# Facebook items (apify/facebook-posts-scraper output schema), generated per page
# --------------------------------------------------------------------------------------------------

_FB_SENTENCES = (
    "Thank you to everyone who joined us at the community market this weekend!",
    "New opening hours from Monday: 8am to 6pm, every day.",
    "Behind the scenes of our latest project. More soon.",
    "We are hiring! Send us a message if you want to join the team.",
    "A huge thank you to our volunteers for another great clean-up day.",
    "Our autumn menu is here, come and try it.",
    "Live Q&A tonight at 7pm, bring your questions.",
    "Throwback to the festival last summer, what a day.",
    "Important update about deliveries during the holidays.",
    "Meet the team: today we introduce our head of customer care.",
)
_FB_TAGS = ("community", "local", "smallbusiness", "events", "news", "thankyou", "weekend", "hiring")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _page_name(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if segments and segments[0] == "profile.php":
        return parse_qs(parts.query).get("id", ["profile"])[0]
    return segments[0] if segments else "facebook"


def facebook_page_items(page_url: str, *, seed: int = 7, count: int = 40) -> list[dict[str, Any]]:
    """``count`` posts (newest first) of the public page at ``page_url``, in the actor's full schema.

    Deterministic in ``(seed, page name)``: the same page always yields the same posts. URLs mix the
    shapes real pages show (``/reel/<id>/``, ``/<page>/videos/<id>/`` and ``/<page>/posts/pfbid…``
    with the numeric id only in ``postId`` / ``topLevelUrl``).
    """
    page = _page_name(page_url)
    digest = hashlib.sha256(f"{seed}:facebook:{page.lower()}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    page_id = str(100_000_000_000_000 + rng.randrange(10**14))
    display_name = page.replace(".", " ").replace("_", " ").title()
    facebook_url = f"{_FACEBOOK_WEB}/{page}"
    reference = int(REFERENCE_TIME.timestamp())
    posted = reference - rng.randint(600, 7200)
    followers = rng.randint(500, 500_000)
    items: list[dict[str, Any]] = []
    used_ids: set[str] = set()
    for _ in range(count):
        posted -= rng.randint(1_800, 3 * 86_400)
        while True:
            post_id = str(rng.randrange(10**14, 10**16))
            if post_id not in used_ids:
                used_ids.add(post_id)
                break
        kind = rng.choices(("post", "reel", "video"), weights=(5, 4, 1))[0]
        tags = rng.sample(_FB_TAGS, rng.choice((0, 0, 1, 2)))
        text = rng.choice(_FB_SENTENCES)
        if tags:
            text += "\n\n" + " ".join(f"#{tag.capitalize() if rng.random() < 0.3 else tag}" for tag in tags)
        if rng.random() < 0.1:
            text = ""  # real pages post media without a caption
        likes = int(followers * rng.uniform(0.0005, 0.02)) + rng.randint(0, 30)
        item: dict[str, Any] = {
            "facebookUrl": facebook_url,
            "postId": post_id,
            "pageName": page,
            "url": _fb_post_url(rng, kind, page, post_id),
            "topLevelUrl": f"{_FACEBOOK_WEB}/{page_id}/posts/{post_id}",
            "time": _iso_ms(datetime.fromtimestamp(posted, UTC)),
            "timestamp": posted,
            "user": {
                "id": page_id,
                "name": display_name,
                "profileUrl": facebook_url,
                "profilePic": f"{_FB_CDN}/v/t39.30808-1/{page_id}_n.jpg",
            },
            "text": text,
            "textReferences": [
                {
                    "url": f"{_FACEBOOK_WEB}/hashtag/{tag}",
                    "mobileUrl": f"https://m.facebook.com/hashtag/{tag}",
                    "id": str(int.from_bytes(hashlib.sha256(tag.encode()).digest()[:6], "big")),
                }
                for tag in tags
            ],
            "likes": likes,
            "comments": int(likes * rng.uniform(0.0, 0.3)),
            "shares": int(likes * rng.uniform(0.0, 0.15)),
            "topReactionsCount": rng.randint(1, 3) if likes else 0,
            "feedbackId": base64.b64encode(f"feedback:{post_id}".encode()).decode(),
            "facebookId": page_id,
            "isVideo": kind != "post",
        }
        if kind == "post":
            item["media"] = [
                {
                    "thumbnail": f"{_FB_CDN}/v/t39.30808-6/{post_id}_n.jpg",
                    "photo_image": {
                        "uri": f"{_FB_CDN}/v/t39.30808-6/{post_id}_n.jpg",
                        "height": 1080,
                        "width": 1080,
                    },
                    "__typename": "Photo",
                }
            ]
        else:
            item["viewsCount"] = likes * rng.randint(5, 40)
            item["media"] = [
                {
                    "thumbnail": f"{_FB_CDN}/v/t15.5256-10/{post_id}_n.jpg",
                    "__typename": "Video",
                    "id": post_id,
                }
            ]
        items.append(item)
    return items


def _fb_post_url(rng: random.Random, kind: str, page: str, post_id: str) -> str:
    if kind == "reel":
        return f"{_FACEBOOK_WEB}/reel/{post_id}/"
    if kind == "video":
        return f"{_FACEBOOK_WEB}/{page}/videos/{post_id}/"
    token = "pfbid0" + "".join(rng.choice(_B58) for _ in range(60)) + "l"
    return f"{_FACEBOOK_WEB}/{page}/posts/{token}"


def _facebook_items(config: ApifyStandInConfig, run_input: dict[str, Any]) -> list[dict[str, Any]]:
    limit = _positive_int(run_input.get("resultsLimit"), default=20)
    items: list[dict[str, Any]] = []
    for entry in run_input.get("startUrls") or []:
        url = str(entry.get("url", "") if isinstance(entry, dict) else entry).strip()
        host = (urlsplit(url if "://" in url else f"https://{url}").hostname or "").lower()
        if not host.endswith("facebook.com"):
            # The actor reports an unusable start URL as an error item, not as a run failure.
            items.append(
                {"url": url, "error": "Invalid Facebook URL", "errorDescription": "not facebook.com"}
            )
            continue
        count = min(limit, config.facebook_posts_per_page)
        for item in facebook_page_items(url, seed=config.facebook_seed, count=count):
            items.append({**item, "facebookUrl": url, "inputUrl": url})
    return items


def _positive_int(value: Any, *, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------

_ACTORS = (TIKTOK_ACTOR, FACEBOOK_ACTOR)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _State:
    """Everything the app holds: runs, datasets, config and the request log."""

    def __init__(self, content: SandboxContent, token: str, config: ApifyStandInConfig) -> None:
        self.content = content
        self.token = token
        self.config = config
        self.runs: dict[str, _Run] = {}
        self.datasets: dict[str, _Dataset] = {}
        self.requests: list[RequestRecord] = []
        self.user_id = _make_id("user", token)
        self._counter = 0
        self._lock = threading.Lock()

    def new_id(self, kind: str) -> str:
        with self._lock:
            self._counter += 1
            return _make_id(kind, f"{self.content.seed}:{self._counter}")

    def next_status(self, actor: str) -> RunStatus:
        with self._lock:
            if self.config.next_run_statuses:
                return self.config.next_run_statuses.pop(0)
        return self.config.status_for(actor)

    def take_fault(self, path: str) -> int | None:
        """Consume one injected fault for ``path`` if any is pending: 429 first, then 5xx."""
        config = self.config
        if not fnmatchcase(path, config.fault_path):
            return None
        with self._lock:
            if config.throttle_requests > 0:
                config.throttle_requests -= 1
                return 429
            if config.server_error_requests > 0:
                config.server_error_requests -= 1
                return config.server_error_status
        return None


_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _make_id(kind: str, salt: str) -> str:
    """A 17-character id like Apify's, deterministic in ``(kind, salt)``."""
    number = int.from_bytes(hashlib.sha256(f"{kind}:{salt}".encode()).digest(), "big")
    chars = []
    for _ in range(17):
        number, index = divmod(number, len(_ID_CHARS))
        chars.append(_ID_CHARS[index])
    return "".join(chars)


STATE_KEY: web.AppKey[_State] = web.AppKey("apify_state", _State)


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": error_type, "message": message}}, status=status)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token")


@web.middleware
async def _middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    # Never record the token: tests assert on this log, and it may be printed.
    query = {k: v for k, v in request.query.items() if k != "token"}
    authorized = _bearer(request) == state.token
    fault = state.take_fault(request.path)
    if fault == 429:
        response: web.StreamResponse = _error(
            429, "rate-limit-exceeded", "You have exceeded the rate limit. Please try again later."
        )
    elif fault is not None:
        response = _error(fault, "internal-server-error", "Server encountered an error, please try again.")
    elif not authorized:
        response = _error(
            401,
            "token-not-valid",
            "Authentication token is not valid or is missing (send it in the Authorization header).",
        )
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _error(
                exc.status, "record-not-found" if exc.status == 404 else "invalid-request", exc.reason
            )
    state.requests.append(
        RequestRecord(
            request.method,
            request.path,
            query,
            response.status,
            authorized,
            request.headers.get("Content-Encoding"),
        )
    )
    return response


def _actor_name(raw: str) -> str:
    return unquote(raw).replace("~", "/")


async def _start_run(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    actor = _actor_name(request.match_info["actor"])
    if actor not in _ACTORS:
        return _error(404, "record-not-found", f"Actor was not found: {actor}")
    body = await request.read()  # aiohttp has already inflated a gzip body
    try:
        run_input = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _error(400, "invalid-input", "Input is not valid JSON")
    if not isinstance(run_input, dict):
        return _error(400, "invalid-input", "Input must be a JSON object")
    problem = _input_problem(actor, run_input)
    if problem:
        return _error(400, "invalid-input", f"Input is not valid: {problem}")

    config = state.config
    query = request.query
    timeout_secs = _positive_int(query.get("timeout"), default=3600)
    memory = _positive_int(query.get("memory"), default=1024)
    max_items = _positive_int(query.get("maxItems"), default=0) or None

    items = (
        _tiktok_items(state.content, run_input)
        if actor == TIKTOK_ACTOR
        else _facebook_items(config, run_input)
    )
    if max_items is not None:
        items = items[:max_items]
    if config.corrupt_every:
        items = [
            _corrupt(item) if (index + 1) % config.corrupt_every == 0 else item
            for index, item in enumerate(items)
        ]

    final: RunStatus = state.next_status(actor)
    duration = config.run_duration_s
    if duration > timeout_secs:
        # The platform stops a run at its timeout.
        final, duration = "TIMED-OUT", float(timeout_secs)
    now = datetime.now(UTC)
    run_id = state.new_id("run")
    dataset = _Dataset(
        id=state.new_id("dataset"), created_at=now, act_id=_make_id("actor", actor), run_id=run_id
    )
    state.datasets[dataset.id] = dataset
    run = _Run(
        id=run_id,
        actor=actor,
        act_id=_make_id("actor", actor),
        started_at=now,
        finishes_at=time.monotonic() + duration,
        final_status=final,
        timeout_secs=timeout_secs,
        memory_mbytes=memory,
        max_items=max_items,
        build=query.get("build", "latest"),
        input_len=len(body),
        dataset=dataset,
        kv_store_id=state.new_id("kvs"),
        request_queue_id=state.new_id("rq"),
        build_id=_make_id("build", actor),
        user_agent=request.headers.get("User-Agent", ""),
        all_items=items,
    )
    state.runs[run_id] = run
    wait = _float(query.get("waitForFinish"))
    if wait:
        await _wait_for(run, state, wait)
    return web.json_response({"data": _run_json(run, state)}, status=201)


def _input_problem(actor: str, run_input: dict[str, Any]) -> str | None:
    if actor == TIKTOK_ACTOR:
        keys = ("profiles", "hashtags", "postURLs", "searchQueries")
        for key in keys:
            if key in run_input and not isinstance(run_input[key], list):
                return f"field input.{key} must be array"
        if not any(run_input.get(key) for key in keys):
            return (
                "provide at least one of input.profiles, input.hashtags, input.postURLs, input.searchQueries"
            )
        return None
    start_urls = run_input.get("startUrls")
    if not isinstance(start_urls, list) or not start_urls:
        return "field input.startUrls is required and must be a non-empty array"
    return None


def _corrupt(item: dict[str, Any]) -> dict[str, Any]:
    """A malformed version of ``item``: wrong types where a normalizer must notice."""
    broken = copy.deepcopy(item)
    if "postId" in broken or "facebookUrl" in broken:
        broken["time"] = "yesterday-ish"
        broken.pop("timestamp", None)
    else:
        broken["diggCount"] = "lots"
    return broken


def _float(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


def _refresh(run: _Run, state: _State) -> None:
    """Move a run to its final status once its time is up (lazily, on every read)."""
    if run.status != "RUNNING" or time.monotonic() < run.finishes_at:
        return
    _finish(run, state, run.final_status)


def _finish(run: _Run, state: _State, status: str) -> None:
    run.status = status
    run.finished_at = datetime.now(UTC)
    items = run.all_items
    if status != "SUCCEEDED":
        items = items[: int(len(items) * state.config.failed_run_keeps)]
    run.dataset.items = items
    run.dataset.shortfall = min(state.config.dataset_shortfall, len(items))
    run.status_message = {
        "SUCCEEDED": f"Finished! Total {len(items)} results.",
        "FAILED": "The Actor process was terminated: exit code 1.",
        "TIMED-OUT": f"The run timed out after {run.timeout_secs} seconds.",
        "ABORTED": "The run was aborted.",
    }.get(status, status)


async def _wait_for(run: _Run, state: _State, wait_s: float) -> None:
    deadline = time.monotonic() + min(wait_s, state.config.max_wait_for_finish_s)
    while True:
        _refresh(run, state)
        now = time.monotonic()
        if run.status in _TERMINAL or now >= deadline:
            return
        await asyncio.sleep(max(0.0, min(run.finishes_at, deadline) - now) + 0.001)


def _run_json(run: _Run, state: _State) -> dict[str, Any]:
    config = state.config
    finished = run.status in _TERMINAL
    end = run.finished_at or datetime.now(UTC)
    duration_ms = max(1, int((end - run.started_at).total_seconds() * 1000))
    items = len(run.dataset.items) if finished else 0
    compute_units = round(
        (config.compute_units_base + config.compute_units_per_item * items) * run.memory_mbytes / 1024, 6
    )
    usage = {
        "ACTOR_COMPUTE_UNITS": compute_units,
        "DATASET_READS": 0,
        "DATASET_WRITES": items,
        "KEY_VALUE_STORE_READS": 1,
        "KEY_VALUE_STORE_WRITES": 2,
        "KEY_VALUE_STORE_LISTS": 0,
        "REQUEST_QUEUE_READS": items,
        "REQUEST_QUEUE_WRITES": items,
        "DATA_TRANSFER_INTERNAL_GBYTES": round(items * 40_000 / 1e9, 6),
        "DATA_TRANSFER_EXTERNAL_GBYTES": 0,
        "PROXY_RESIDENTIAL_TRANSFER_GBYTES": round(items * 350_000 / 1e9, 6),
        "PROXY_SERPS": 0,
    }
    usage_usd = {
        "ACTOR_COMPUTE_UNITS": round(compute_units * config.usd_per_compute_unit, 6),
        "DATASET_READS": 0,
        "DATASET_WRITES": round(items * 0.000005, 6),
        "KEY_VALUE_STORE_READS": 0.000005,
        "KEY_VALUE_STORE_WRITES": 0.0001,
        "KEY_VALUE_STORE_LISTS": 0,
        "REQUEST_QUEUE_READS": round(items * 0.000004, 6),
        "REQUEST_QUEUE_WRITES": round(items * 0.00002, 6),
        "DATA_TRANSFER_INTERNAL_GBYTES": round(usage["DATA_TRANSFER_INTERNAL_GBYTES"] * 0.05, 6),
        "DATA_TRANSFER_EXTERNAL_GBYTES": 0,
        "PROXY_RESIDENTIAL_TRANSFER_GBYTES": round(usage["PROXY_RESIDENTIAL_TRANSFER_GBYTES"] * 8.0, 6),
        "PROXY_SERPS": 0,
    }
    price_per_item = config.usd_per_1k_results.get(run.actor, 0.0) / 1000
    data: dict[str, Any] = {
        "id": run.id,
        "actId": run.act_id,
        "userId": state.user_id,
        "actorTaskId": None,
        "startedAt": _iso_ms(run.started_at),
        "finishedAt": _iso_ms(run.finished_at) if run.finished_at else None,
        "status": run.status,
        "statusMessage": run.status_message,
        "isStatusMessageTerminal": finished,
        "meta": {"origin": "API", "clientIp": "127.0.0.1", "userAgent": run.user_agent},
        "stats": {
            "inputBodyLen": run.input_len,
            "migrationCount": 0,
            "rebootCount": 0,
            "restartCount": 0,
            "resurrectCount": 0,
            "memAvgBytes": run.memory_mbytes * 1024 * 1024 * 0.4,
            "memMaxBytes": int(run.memory_mbytes * 1024 * 1024 * 0.7),
            "memCurrentBytes": 0 if finished else int(run.memory_mbytes * 1024 * 1024 * 0.5),
            "cpuAvgUsage": 35.5,
            "cpuMaxUsage": 120.25,
            "cpuCurrentUsage": 0 if finished else 40.0,
            "netRxBytes": items * 350_000,
            "netTxBytes": items * 12_000,
            "durationMillis": duration_ms,
            "runTimeSecs": duration_ms / 1000,
            "metamorph": 0,
            "computeUnits": compute_units,
        },
        "options": {
            "build": run.build,
            "timeoutSecs": run.timeout_secs,
            "memoryMbytes": run.memory_mbytes,
            "diskMbytes": run.memory_mbytes * 2,
            **({"maxItems": run.max_items} if run.max_items is not None else {}),
        },
        "buildId": run.build_id,
        "buildNumber": "0.3.112",
        "exitCode": None if not finished else (0 if run.status == "SUCCEEDED" else 1),
        "generalAccess": "FOLLOW_USER_SETTING",
        "defaultKeyValueStoreId": run.kv_store_id,
        "defaultDatasetId": run.dataset.id,
        "defaultRequestQueueId": run.request_queue_id,
        "containerUrl": f"https://{run.id.lower()}.{_RUN_HOST}",
        "usage": usage,
        "usageUsd": usage_usd,
    }
    if config.pricing_model == "PRICE_PER_DATASET_ITEM":
        # The user pays per result; the platform usage above is the developer's, shown for reference.
        data["pricingInfo"] = {
            "pricingModel": "PRICE_PER_DATASET_ITEM",
            "unitName": "result",
            "pricePerUnitUsd": price_per_item,
            "apifyMarginPercentage": 0.2,
            "createdAt": "2025-01-01T00:00:00.000Z",
            "startedAt": "2025-01-01T00:00:00.000Z",
        }
        data["platformUsageBillingModel"] = "DEVELOPER"
        data["usageTotalUsd"] = round(items * price_per_item, 6)
    else:
        data["platformUsageBillingModel"] = "USER"
        data["usageTotalUsd"] = round(sum(usage_usd.values()), 6)
    return data


def _get_run_or_404(request: web.Request) -> _Run:
    state = request.app[STATE_KEY]
    run = state.runs.get(request.match_info["run_id"])
    if run is None:
        raise web.HTTPNotFound(reason="Actor run was not found")
    return run


async def _get_run(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    run = _get_run_or_404(request)
    wait = _float(request.query.get("waitForFinish"))
    if wait:
        await _wait_for(run, state, wait)
    else:
        _refresh(run, state)
    return web.json_response({"data": _run_json(run, state)})


async def _abort_run(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    run = _get_run_or_404(request)
    _refresh(run, state)
    if run.status == "RUNNING":
        _finish(run, state, "ABORTED")
    return web.json_response({"data": _run_json(run, state)})


async def _run_log(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    run = _get_run_or_404(request)
    _refresh(run, state)
    lines = [f"{_iso_ms(run.started_at)} INFO  Starting {run.actor} (sandbox stand-in)"]
    if run.status in _TERMINAL:
        lines.append(f"{_iso_ms(run.finished_at or run.started_at)} INFO  {run.status_message}")
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def _dataset_json(dataset: _Dataset, state: _State) -> dict[str, Any]:
    now = _iso_ms(datetime.now(UTC))
    return {
        "id": dataset.id,
        "name": None,
        "userId": state.user_id,
        "createdAt": _iso_ms(dataset.created_at),
        "modifiedAt": now,
        "accessedAt": now,
        "itemCount": len(dataset.items),
        "cleanItemCount": len(dataset.items),
        "actId": dataset.act_id,
        "actRunId": dataset.run_id,
        "consoleUrl": f"https://console.{_RUN_HOST}/storage/datasets/{dataset.id}",
        "generalAccess": "FOLLOW_USER_SETTING",
        "stats": {
            "readCount": 0,
            "writeCount": len(dataset.items),
            "storageBytes": 40_000 * len(dataset.items),
        },
    }


def _dataset_or_404(request: web.Request) -> _Dataset:
    state = request.app[STATE_KEY]
    if "run_id" in request.match_info:
        return _get_run_or_404(request).dataset
    dataset = state.datasets.get(request.match_info["dataset_id"])
    if dataset is None:
        raise web.HTTPNotFound(reason="Dataset was not found")
    return dataset


async def _get_dataset(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"data": _dataset_json(_dataset_or_404(request), state)})


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true")


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


async def _dataset_items(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    dataset = _dataset_or_404(request)
    query = request.query
    offset = int(_float(query.get("offset")))
    requested = _positive_int(query.get("limit"), default=0)
    limit = min(requested or _NO_LIMIT, state.config.max_page_limit)
    desc = _flag(query.get("desc"))
    served = dataset.served[::-1] if desc else dataset.served
    rows = served[offset : offset + limit]
    skip_hidden = _flag(query.get("clean")) or _flag(query.get("skipHidden"))
    skip_empty = _flag(query.get("clean")) or _flag(query.get("skipEmpty"))
    fields, omit = _csv(query.get("fields")), set(_csv(query.get("omit")))
    items = []
    for row in rows:
        item = {k: v for k, v in row.items() if not (skip_hidden and k.startswith("#")) and k not in omit}
        if fields:
            item = {k: item[k] for k in fields if k in item}
        if skip_empty and not item:
            continue
        items.append(item)
    headers = {
        "X-Apify-Pagination-Offset": str(offset),
        # Asked for no limit: the API says so (the cap still bounds the rows, `count` tells).
        "X-Apify-Pagination-Limit": str(limit if requested else _NO_LIMIT),
        # Count is rows scanned (what the client advances its offset by), Total is the dataset's
        # itemCount, which for a partial dataset is more than will ever be served.
        "X-Apify-Pagination-Count": str(len(rows)),
        "X-Apify-Pagination-Total": str(len(dataset.items)),
        "X-Apify-Pagination-Desc": "true" if desc else "false",
    }
    return web.json_response(items, headers=headers)


def build_app(
    content: SandboxContent, *, token: str = DEFAULT_TOKEN, config: ApifyStandInConfig | None = None
) -> web.Application:
    """The aiohttp application (``ApifyStandIn`` runs it on loopback in a thread)."""
    app = web.Application(middlewares=[_middleware])
    app[STATE_KEY] = _State(content, token, config or ApifyStandInConfig())
    for prefix in ("/v2/actors", "/v2/acts"):
        app.router.add_post(prefix + "/{actor}/runs", _start_run)
    app.router.add_get("/v2/actor-runs/{run_id}", _get_run)
    app.router.add_post("/v2/actor-runs/{run_id}/abort", _abort_run)
    app.router.add_get("/v2/actor-runs/{run_id}/log", _run_log)
    app.router.add_get("/v2/logs/{run_id}", _run_log)
    app.router.add_get("/v2/actor-runs/{run_id}/dataset", _get_dataset)
    app.router.add_get("/v2/actor-runs/{run_id}/dataset/items", _dataset_items)
    app.router.add_get("/v2/datasets/{dataset_id}", _get_dataset)
    app.router.add_get("/v2/datasets/{dataset_id}/items", _dataset_items)
    return app


class ApifyStandIn(LoopbackAppServer):
    """The stand-in on ``127.0.0.1:<port>``, served like every sandbox service (``LoopbackAppServer``:
    a daemon thread with its own event loop).

    ``api_url`` is what ``ApifyClient(api_url=…)`` takes. ``config`` may be changed while running.
    """

    thread_name = "sandbox-apify-api"

    def __init__(
        self,
        content: SandboxContent | None = None,
        *,
        token: str = DEFAULT_TOKEN,
        config: ApifyStandInConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.content = content if content is not None else SandboxContent.generate()
        self.config = config if config is not None else ApifyStandInConfig()
        self.token = token
        super().__init__(host, port)

    def _build_app(self) -> web.Application:
        return build_app(self.content, token=self.token, config=self.config)

    @property
    def api_url(self) -> str:
        return self.base_url

    def reset_config(self) -> None:
        """Every ``config`` field back to its default, in place (the running app reads it per request)."""
        defaults = ApifyStandInConfig()
        for name in ApifyStandInConfig.model_fields:
            setattr(self.config, name, getattr(defaults, name))

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, in order (without the token)."""
        return self.app[STATE_KEY].requests

    def runs(self) -> list[dict[str, Any]]:
        """The JSON of every run started so far (what ``GET actor-runs/{id}`` would return)."""
        state = self.app[STATE_KEY]
        return [_run_json(run, state) for run in state.runs.values()]
