"""An offline TikTok-like web site (aiohttp) serving ``SandboxContent``.

It reproduces what a scraper meets on the real site (REFERENCE §3):

* HTML pages embed their state in ``<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">`` as
  ``{"__DEFAULT_SCOPE__": {"webapp.app-context": …, "webapp.<kind>": …}}`` with ``/ < >``
  escaped as ``\\u002F \\u003C \\u003E`` inside the JSON;
* profile and hashtag pages carry no videos server-side: their own inline JavaScript fetches
  ``/api/post/item_list/`` or ``/api/challenge/item_list/`` (30 a page, ``cursor`` +
  ``hasMore``) and renders the items, loading more on scroll or ``window.__loadMore()``; a
  browser scraper intercepts those responses, as it must on the real site;
* status codes live in the JSON (``statusCode`` 10221 = user not found) while HTTP says 200.

Routes::

    GET /                                  index of profiles and hashtags (for humans)
    GET /@{handle}                         webapp.user-detail
    GET /@{handle}/video/{id}              webapp.video-detail
    GET /tag/{name}                        webapp.challenge-detail
    GET /login                             a login page
    GET /api/post/item_list/?secUid=&count=&cursor=
    GET /api/challenge/item_list/?challengeID=&count=&cursor=
    GET /api/user/detail/?uniqueId=
    GET /api/challenge/detail/?challengeName=
    GET /__sandbox__/health                {"ok": true}
    GET /__sandbox__/clients               per-client request counters

``SiteScenario`` controls misbehaviour. It is read on every request, so a test may change a
running server's scenario (the model validates assignments).

Where hostile behaviour plugs in: every request passes ``_client_middleware``, which counts it
per client (IP + User-Agent, ``ClientTracker``) and then asks ``_hostile_response`` whether to
answer instead of the real handler. Anti-bot behaviours (rate limits answering 429 or an empty
200, IP bans with statusCode 10204, redirects to /login, the slider captcha, the WAF
proof-of-work page) become new ``SiteScenario`` fields decided there from the ``ClientRecord``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import html
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ingest_platform.sandbox.content import SandboxContent, SandboxHashtag, SandboxProfile

__all__ = [
    "CLIENTS_KEY",
    "CLIENT_RECORD_KEY",
    "CONTENT_KEY",
    "DEFAULT_PAGE_SIZE",
    "SCENARIO_KEY",
    "STATUS_INVALID_PARAMS",
    "STATUS_NOT_FOUND",
    "STATUS_OK",
    "STATUS_USER_NOT_FOUND",
    "ClientKey",
    "ClientRecord",
    "ClientTracker",
    "SiteScenario",
    "build_app",
    "render_universal_data",
]

STATUS_OK = 0
STATUS_USER_NOT_FOUND = 10221  # as on the real site
STATUS_NOT_FOUND = 10201  # unknown video or challenge (sandbox choice; 10204 means "IP blocked")
STATUS_INVALID_PARAMS = 10101  # sandbox choice, sent with HTTP 400

DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 30


class SiteScenario(BaseModel):
    """How the site misbehaves. Empty = a perfectly well-behaved site.

    Later anti-bot behaviours (rate limits, bans, captcha, WAF) are added here as more fields
    and enforced in ``_hostile_response``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    broken_json_paths: set[str] = Field(
        default_factory=set,
        description="Request paths (fnmatch patterns, e.g. '/@alice' or '/tag/*') whose "
        "rehydration JSON is served truncated, so it no longer parses.",
    )
    item_list_latency_ms: int = Field(
        default=0, ge=0, description="Delay before answering the two item_list APIs."
    )

    def json_is_broken(self, path: str) -> bool:
        return any(fnmatchcase(path, pattern) for pattern in self.broken_json_paths)


class ClientKey(NamedTuple):
    """Who is asking: the real site keys its defences on IP and browser identity."""

    ip: str
    user_agent: str

    @classmethod
    def of(cls, request: web.Request) -> ClientKey:
        return cls(request.remote or "", request.headers.get("User-Agent", ""))


@dataclass
class ClientRecord:
    key: ClientKey
    requests: int = 0
    first_seen: float = 0.0  # time.monotonic(): for future per-window rate limits
    last_seen: float = 0.0
    last_path: str = ""


class ClientTracker:
    """Per-client request counters. Locked because the server thread writes while tests read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[ClientKey, ClientRecord] = {}

    def hit(self, key: ClientKey, path: str) -> ClientRecord:
        now = time.monotonic()
        with self._lock:
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = ClientRecord(key=key, first_seen=now)
            record.requests += 1
            record.last_seen = now
            record.last_path = path
            return record

    def snapshot(self) -> dict[ClientKey, int]:
        with self._lock:
            return {key: record.requests for key, record in self._records.items()}

    def total(self) -> int:
        with self._lock:
            return sum(record.requests for record in self._records.values())

    def reset(self) -> None:
        with self._lock:
            self._records.clear()


CONTENT_KEY = web.AppKey("content", SandboxContent)
SCENARIO_KEY = web.AppKey("scenario", SiteScenario)
CLIENTS_KEY = web.AppKey("clients", ClientTracker)
_REQUEST_SEQ = web.AppKey("request_seq", itertools.count)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_RECORD_KEY = web.RequestKey("sandbox_client_record", ClientRecord)  # for handlers that need it


# --------------------------------------------------------------------------- middleware ---
async def _hostile_response(request: web.Request, record: ClientRecord | None) -> web.StreamResponse | None:
    """The anti-bot decision point: return a response to answer instead of the real page.

    Nothing is hostile yet. Future ``SiteScenario`` fields (rate limit per client, banned IPs,
    captcha after N requests, WAF challenge, login wall) are checked here against ``record``.
    """
    del request, record
    return None


@web.middleware
async def _client_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    record = None
    if not request.path.startswith("/__sandbox__/"):  # the control plane is not "traffic"
        record = request.app[CLIENTS_KEY].hit(ClientKey.of(request), request.path)
        request[CLIENT_RECORD_KEY] = record
    blocked = await _hostile_response(request, record)
    if blocked is not None:
        return blocked
    return await handler(request)


# ------------------------------------------------------------------------------ helpers ---
_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def _json(payload: Any, *, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=_dumps)


def render_universal_data(scope: dict[str, Any], *, broken: bool = False) -> str:
    """The rehydration script's text, escaped like the real site; ``broken`` truncates it."""
    text = _dumps({"__DEFAULT_SCOPE__": scope})
    # The real site escapes these so the JSON can never close its <script> element early.
    text = text.replace("/", "\\u002F").replace("<", "\\u003C").replace(">", "\\u003E")
    if broken:
        text = text[: len(text) // 2]  # cut mid-payload, like a response that was dropped
    return text


def _app_context(request: web.Request) -> dict[str, Any]:
    key = ClientKey.of(request)
    wid = str(int(hashlib.sha256(repr(key).encode()).hexdigest()[:15], 16))
    return {
        "language": "en",
        "region": "US",
        "appId": 1233,
        "appType": "m",
        "wid": wid,
        "nonce": hashlib.sha256(f"{wid}:{id(request)}".encode()).hexdigest()[:21],
        "botType": "others",
        "requestId": str(next(request.app[_REQUEST_SEQ])),
        "clusterRegion": "SANDBOX",
        "csrfToken": "",
        "userAgent": key.user_agent,
        "encryptedWebid": "",
        "host": request.host,
    }


def _fmt_count(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}K"
    return str(value)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#fff;color:#161823}
header{padding:24px}
#item-list{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px;padding:0 24px}
#item-list>div{height:320px;background:#f1f1f2;border-radius:8px;overflow:hidden;padding:8px}
#list-status{padding:24px;color:#888}
"""

# The page's own "app": reads the rehydrated state, fetches the list API, renders items, loads
# more on scroll. Scrapers watch these requests, as they must on the real site.
_PAGE_JS = r"""
(function () {
  "use strict";
  var app = document.getElementById("sandbox-app");
  if (!app || !app.dataset.listEndpoint) { return; }
  var listEl = document.getElementById("item-list");
  var statusEl = document.getElementById("list-status");
  var state = { cursor: "0", hasMore: true, loaded: 0, pages: 0, error: null, loading: null };
  window.__sandboxState = state;

  function listKey() {
    try {
      var raw = document.getElementById("__UNIVERSAL_DATA_FOR_REHYDRATION__").textContent;
      var node = JSON.parse(raw)["__DEFAULT_SCOPE__"][app.dataset.scopeKey];
      app.dataset.keyPath.split(".").forEach(function (part) { node = node[part]; });
      if (node) { return String(node); }
    } catch (err) { /* broken state: fall back to the attribute, like a resilient app */ }
    return app.dataset.listValue;
  }

  function render(items) {
    items.forEach(function (item) {
      var tile = document.createElement("div");
      tile.setAttribute("data-e2e", app.dataset.itemE2e);
      tile.setAttribute("data-id", item.id);
      var link = document.createElement("a");
      link.href = "/@" + item.author.uniqueId + "/video/" + item.id;
      link.textContent = item.desc;
      tile.appendChild(link);
      listEl.appendChild(tile);
    });
    state.loaded += items.length;
    listEl.setAttribute("data-loaded", String(state.loaded));
  }

  function loadMore() {
    if (state.loading) { return state.loading; }
    if (!state.hasMore) { return Promise.resolve(state.loaded); }
    var params = new URLSearchParams();
    params.set(app.dataset.listParam, listKey());
    params.set("count", "30");
    params.set("cursor", state.cursor);
    state.loading = fetch(app.dataset.listEndpoint + "?" + params.toString(), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (data) {
      if (data.statusCode !== 0) { state.hasMore = false; throw new Error("statusCode " + data.statusCode); }
      render(data.itemList || []);
      state.cursor = String(data.cursor);
      state.hasMore = Boolean(data.hasMore);
      state.pages += 1;
      statusEl.textContent = state.hasMore ? "" : "No more videos";
      return state.loaded;
    }).catch(function (err) {
      state.error = String(err);
      statusEl.textContent = "Something went wrong";
      return state.loaded;
    }).finally(function () { state.loading = null; });
    return state.loading;
  }

  window.__loadMore = loadMore;
  window.addEventListener("scroll", function () {
    var bottom = window.innerHeight + window.scrollY;
    if (bottom >= document.documentElement.scrollHeight - 400) { loadMore(); }
  }, { passive: true });
  loadMore();
})();
"""


def _page(request: web.Request, *, title: str, scope: dict[str, Any], body: str) -> web.Response:
    full_scope = {"webapp.app-context": _app_context(request), **scope}
    data = render_universal_data(full_scope, broken=request.app[SCENARIO_KEY].json_is_broken(request.path))
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n'
        '    <meta name="viewport" content="width=device-width, initial-scale=1.0" />\n'
        f"    <title>{html.escape(title)}</title>\n    <style>{_STYLE}</style>\n  </head>\n  <body>\n"
        f'    <div id="app">{body}</div>\n'
        f'    <script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{data}</script>\n'
        f"    <script>{_PAGE_JS}</script>\n  </body>\n</html>\n"
    )
    return web.Response(text=document, content_type="text/html", charset="utf-8")


def _list_container(
    *, endpoint: str, param: str, value: str, scope_key: str, key_path: str, item_e2e: str, list_e2e: str
) -> str:
    attrs = {
        "data-list-endpoint": endpoint,
        "data-list-param": param,
        "data-list-value": value,
        "data-scope-key": scope_key,
        "data-key-path": key_path,
        "data-item-e2e": item_e2e,
    }
    rendered = " ".join(f'{name}="{html.escape(val)}"' for name, val in attrs.items())
    return (
        f'<main id="sandbox-app" {rendered}>'
        f'<div id="item-list" data-e2e="{list_e2e}" data-loaded="0"></div>'
        '<div id="list-status" data-e2e="list-status"></div></main>'
    )


def _share_meta_user(profile: SandboxProfile) -> dict[str, str]:
    stats = profile.stats_struct()
    return {
        "title": f"{profile.nickname} on TikTok",
        "desc": (
            f"@{profile.unique_id} {_fmt_count(stats['followerCount'])} Followers, "
            f"{stats['followingCount']} Following, {_fmt_count(stats['heartCount'])} Likes - "
            f"Watch awesome short videos created by {profile.nickname}"
        ),
    }


# ----------------------------------------------------------------------------- handlers ---
async def _index(request: web.Request) -> web.Response:
    content = request.app[CONTENT_KEY]
    users = "".join(
        f'<li><a href="/@{html.escape(p.unique_id)}">@{html.escape(p.unique_id)}</a></li>'
        for p in content.profiles
    )
    tags = "".join(
        f'<li><a href="/tag/{html.escape(h.title)}">#{html.escape(h.title)}</a></li>'
        for h in content.hashtags
    )
    body = f"<header><h1>TikTok sandbox</h1></header><ul>{users}</ul><ul>{tags}</ul>"
    return _page(request, title="TikTok - Make Your Day", scope={}, body=body)


async def _user_page(request: web.Request) -> web.Response:
    content = request.app[CONTENT_KEY]
    handle = request.match_info["handle"]
    profile = content.profile(handle)
    if profile is None:
        detail = {"statusCode": STATUS_USER_NOT_FOUND, "statusMsg": "", "needFix": False}
        scope = {"webapp.user-detail": detail}
        body = '<main><p data-e2e="user-not-found">Couldn\'t find this account</p></main>'
        return _page(request, title="TikTok - Make Your Day", scope=scope, body=body)

    stats = profile.stats_struct()
    scope = {
        "webapp.user-detail": {
            "userInfo": profile.user_info(),
            "shareMeta": _share_meta_user(profile),
            "statusCode": STATUS_OK,
            "statusMsg": "",
            "needFix": False,
        }
    }
    header = (
        '<header data-e2e="user-page">'
        f'<h1 data-e2e="user-title">{html.escape(profile.unique_id)}</h1>'
        f'<h2 data-e2e="user-subtitle">{html.escape(profile.nickname)}</h2>'
        f'<strong data-e2e="following-count">{_fmt_count(stats["followingCount"])}</strong> Following '
        f'<strong data-e2e="followers-count">{_fmt_count(stats["followerCount"])}</strong> Followers '
        f'<strong data-e2e="likes-count">{_fmt_count(stats["heartCount"])}</strong> Likes'
        f'<h2 data-e2e="user-bio">{html.escape(profile.signature)}</h2></header>'
    )
    body = header + _list_container(
        endpoint="/api/post/item_list/",
        param="secUid",
        value=profile.sec_uid,
        scope_key="webapp.user-detail",
        key_path="userInfo.user.secUid",
        item_e2e="user-post-item",
        list_e2e="user-post-item-list",
    )
    title = f"{profile.nickname} (@{profile.unique_id}) | TikTok"
    return _page(request, title=title, scope=scope, body=body)


async def _video_page(request: web.Request) -> web.Response:
    content = request.app[CONTENT_KEY]
    post = content.posts_by_id.get(request.match_info["video_id"])
    # Like the real site, the handle in the URL is not checked: the id decides.
    if post is None:
        scope = {"webapp.video-detail": {"statusCode": STATUS_NOT_FOUND, "statusMsg": "item doesn't exist"}}
        body = '<main><p data-e2e="video-not-found">Video currently unavailable</p></main>'
        return _page(request, title="TikTok - Make Your Day", scope=scope, body=body)
    item = post.item
    nickname = item["author"]["nickname"]
    scope = {
        "webapp.video-detail": {
            "itemInfo": {"itemStruct": item},
            "shareMeta": {"title": f"{nickname} on TikTok", "desc": item["desc"]},
            "statusCode": STATUS_OK,
            "statusMsg": "",
        }
    }
    body = (
        '<main data-e2e="browse-video">'
        f'<a data-e2e="browse-username" href="/@{html.escape(post.author_unique_id)}">'
        f"{html.escape(post.author_unique_id)}</a>"
        f'<h1 data-e2e="browse-video-desc">{html.escape(post.desc)}</h1></main>'
    )
    return _page(request, title=f"{nickname} on TikTok", scope=scope, body=body)


async def _tag_page(request: web.Request) -> web.Response:
    content = request.app[CONTENT_KEY]
    challenge = content.challenge(request.match_info["name"])
    if challenge is None:
        scope = {"webapp.challenge-detail": {"statusCode": STATUS_NOT_FOUND, "statusMsg": ""}}
        body = '<main><p data-e2e="challenge-not-found">Couldn\'t find this hashtag</p></main>'
        return _page(request, title="TikTok - Make Your Day", scope=scope, body=body)
    scope = {
        "webapp.challenge-detail": {
            "challengeInfo": challenge.challenge_info(),
            "shareMeta": {"title": f"#{challenge.title} on TikTok", "desc": f"#{challenge.title} videos"},
            "statusCode": STATUS_OK,
            "statusMsg": "",
        }
    }
    header = (
        '<header data-e2e="challenge-page">'
        f'<h1 data-e2e="challenge-title">#{html.escape(challenge.title)}</h1>'
        f'<h2 data-e2e="challenge-vvcount">{_fmt_count(challenge.view_count)} views</h2></header>'
    )
    body = header + _list_container(
        endpoint="/api/challenge/item_list/",
        param="challengeID",
        value=challenge.id,
        scope_key="webapp.challenge-detail",
        key_path="challengeInfo.challenge.id",
        item_e2e="challenge-item",
        list_e2e="challenge-item-list",
    )
    return _page(request, title=f"#{challenge.title} | TikTok", scope=scope, body=body)


async def _login_page(request: web.Request) -> web.Response:
    body = (
        '<main data-e2e="login-modal"><h1>Log in to TikTok</h1>'
        '<form method="post" action="/login">'
        '<input name="username" type="text" placeholder="Email or username" autocomplete="username" />'
        '<input name="password" type="password" placeholder="Password" autocomplete="current-password" />'
        '<button type="submit" data-e2e="login-button">Log in</button></form></main>'
    )
    scope = {"webapp.login": {"statusCode": STATUS_OK}}
    return _page(request, title="Log in | TikTok", scope=scope, body=body)


def _bad_request(message: str) -> web.Response:
    return _json({"statusCode": STATUS_INVALID_PARAMS, "statusMsg": message}, status=400)


async def _paged_items(request: web.Request, post_ids: Sequence[str]) -> web.Response:
    try:
        count = int(request.query.get("count", DEFAULT_PAGE_SIZE))
        offset = int(request.query.get("cursor", "0") or "0")
    except ValueError:
        return _bad_request("invalid count or cursor")
    if offset < 0:
        return _bad_request("invalid cursor")
    count = max(1, min(count, MAX_PAGE_SIZE))
    latency = request.app[SCENARIO_KEY].item_list_latency_ms
    if latency:
        await asyncio.sleep(latency / 1000)
    content = request.app[CONTENT_KEY]
    page = post_ids[offset : offset + count]
    end = min(offset + count, len(post_ids))
    return _json(
        {
            "statusCode": STATUS_OK,
            "statusMsg": "",
            "itemList": [content.posts_by_id[post_id].item for post_id in page],
            "hasMore": end < len(post_ids),
            "cursor": str(end),  # opaque to clients: send it back as it came
        }
    )


async def _api_post_item_list(request: web.Request) -> web.Response:
    sec_uid = request.query.get("secUid", "")
    if not sec_uid:
        return _bad_request("secUid is required")
    profile = request.app[CONTENT_KEY].profiles_by_sec_uid.get(sec_uid)
    if profile is None:
        return _json(
            {
                "statusCode": STATUS_USER_NOT_FOUND,
                "statusMsg": "",
                "itemList": [],
                "hasMore": False,
                "cursor": "0",
            }
        )
    return await _paged_items(request, profile.post_ids)


async def _api_challenge_item_list(request: web.Request) -> web.Response:
    challenge_id = request.query.get("challengeID", "")
    if not challenge_id:
        return _bad_request("challengeID is required")
    challenge: SandboxHashtag | None = request.app[CONTENT_KEY].challenges_by_id.get(challenge_id)
    if challenge is None:
        return _json(
            {"statusCode": STATUS_NOT_FOUND, "statusMsg": "", "itemList": [], "hasMore": False, "cursor": "0"}
        )
    return await _paged_items(request, challenge.post_ids)


async def _api_user_detail(request: web.Request) -> web.Response:
    profile = request.app[CONTENT_KEY].profile(request.query.get("uniqueId", ""))
    if profile is None:
        return _json({"statusCode": STATUS_USER_NOT_FOUND, "statusMsg": "", "userInfo": {}})
    return _json({"statusCode": STATUS_OK, "statusMsg": "", "userInfo": profile.user_info()})


async def _api_challenge_detail(request: web.Request) -> web.Response:
    challenge = request.app[CONTENT_KEY].challenge(request.query.get("challengeName", ""))
    if challenge is None:
        return _json({"statusCode": STATUS_NOT_FOUND, "statusMsg": "", "challengeInfo": {}})
    return _json({"statusCode": STATUS_OK, "statusMsg": "", "challengeInfo": challenge.challenge_info()})


async def _health(request: web.Request) -> web.Response:
    del request
    return _json({"ok": True})


async def _clients(request: web.Request) -> web.Response:
    snapshot = request.app[CLIENTS_KEY].snapshot()
    return _json(
        {
            "clients": [
                {"ip": key.ip, "userAgent": key.user_agent, "requests": count}
                for key, count in snapshot.items()
            ]
        }
    )


async def _favicon(request: web.Request) -> web.Response:
    del request
    return web.Response(status=204)  # keeps browser tests free of 404 noise


def build_app(content: SandboxContent, scenario: SiteScenario | None = None) -> web.Application:
    """The sandbox site as an aiohttp application (run it with ``SandboxServer``)."""
    app = web.Application(middlewares=[_client_middleware])
    app[CONTENT_KEY] = content
    app[SCENARIO_KEY] = scenario if scenario is not None else SiteScenario()
    app[CLIENTS_KEY] = ClientTracker()
    app[_REQUEST_SEQ] = itertools.count(1)
    app.router.add_get("/", _index)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_get("/login", _login_page)
    app.router.add_get("/@{handle}", _user_page)
    app.router.add_get("/@{handle}/video/{video_id}", _video_page)
    app.router.add_get("/tag/{name}", _tag_page)
    app.router.add_get("/api/post/item_list/", _api_post_item_list)
    app.router.add_get("/api/challenge/item_list/", _api_challenge_item_list)
    app.router.add_get("/api/user/detail/", _api_user_detail)
    app.router.add_get("/api/challenge/detail/", _api_challenge_detail)
    app.router.add_get("/__sandbox__/health", _health)
    app.router.add_get("/__sandbox__/clients", _clients)
    return app
