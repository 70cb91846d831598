"""An offline TikTok-like web site (aiohttp) serving ``SandboxContent``, which can fight back.

It reproduces what a scraper meets on the real site (REFERENCE §3):

* HTML pages embed their state in ``<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">`` as
  ``{"__DEFAULT_SCOPE__": {"webapp.app-context": …, "webapp.<kind>": …}}`` with ``/ < >``
  escaped as ``\\u002F \\u003C \\u003E`` inside the JSON;
* profile and hashtag pages carry no videos server-side: their own inline JavaScript fetches
  ``/api/post/item_list/`` or ``/api/challenge/item_list/`` (30 a page, ``cursor`` +
  ``hasMore``) and renders the items, loading more on scroll or ``window.__loadMore()``; a
  browser scraper intercepts those responses, as it must on the real site;
* status codes live in the JSON (``statusCode`` 10221 = user not found) while HTTP says 200;
* anti-bot defences (all off by default, see ``SiteScenario``): per-client rate limits and
  random 429 bursts, permanent bans (HTTP 403 or ``statusCode`` 10204), reCAPTCHA / hCaptcha /
  image captchas verified against a ``CaptchaRegistry`` (the site plays Google), TikTok's own
  slider captcha (unsolvable by a service), a SHA-256 proof-of-work WAF page only a
  JavaScript-running browser passes, redirects to ``/login``, empty item lists, and detection
  of ``HeadlessChrome`` user agents and of ``navigator.webdriver``.

Routes::

    GET  /                                  index of profiles and hashtags (for humans)
    GET  /@{handle}                         webapp.user-detail
    GET  /@{handle}/video/{id}              webapp.video-detail
    GET  /tag/{name}                        webapp.challenge-detail
    GET  /login                             a login page
    GET  /api/post/item_list/?secUid=&count=&cursor=
    GET  /api/challenge/item_list/?challengeID=&count=&cursor=
    GET  /api/user/detail/?uniqueId=
    GET  /api/challenge/detail/?challengeName=
    POST /__captcha/verify                  captcha form target (return_to + token or text)
    POST /__bd/report                       the pages' navigator.webdriver beacon
    GET  /__sandbox__/health                {"ok": true}
    GET  /__sandbox__/clients               per-client request and anti-bot counters

``SiteScenario`` controls misbehaviour. It is read on every request, so a test may change a
running server's scenario (the model validates assignments). ``HOSTILE_CONTRACT.md`` beside
this file documents the anti-bot contract (fields, markup, counters) for scraper authors.

Where hostile behaviour plugs in: every request passes ``_client_middleware``, which counts it
per client (``ClientKey``: the last ``X-Forwarded-For`` entry, else the socket peer, plus the
User-Agent) and asks ``_hostile_response`` whether to answer instead of the real handler. Every
random decision is a hash of (scenario seed, client, the client's request number, decision), so
a run is reproducible whatever the interleaving of clients.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import html
import itertools
import json
import math
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal, NamedTuple

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ingest_platform.sandbox.captcha_registry import CaptchaRegistry, fraction, render_digits_png
from ingest_platform.sandbox.content import SandboxContent, SandboxHashtag, SandboxProfile

__all__ = [
    "CAPTCHA_PASS_COOKIE",
    "CLIENTS_KEY",
    "CLIENT_RECORD_KEY",
    "CONTENT_KEY",
    "DEFAULT_PAGE_SIZE",
    "HOSTILE_COUNTERS",
    "REGISTRY_KEY",
    "SCENARIO_KEY",
    "STATUS_INVALID_PARAMS",
    "STATUS_IP_BLOCKED",
    "STATUS_NOT_FOUND",
    "STATUS_OK",
    "STATUS_USER_NOT_FOUND",
    "VERIFY_SLIDE_RESPONSE",
    "WAF_COOKIE",
    "ClientKey",
    "ClientRecord",
    "ClientTracker",
    "SiteScenario",
    "build_app",
    "render_universal_data",
    "route_kind",
]

STATUS_OK = 0
STATUS_IP_BLOCKED = 10204  # as on the real site
STATUS_USER_NOT_FOUND = 10221  # as on the real site
STATUS_NOT_FOUND = 10201  # unknown video or challenge (sandbox choice; 10204 means "IP blocked")
STATUS_INVALID_PARAMS = 10101  # sandbox choice, sent with HTTP 400

DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 30

WAF_COOKIE = "_wafchallengeid"
CAPTCHA_PASS_COOKIE = "captcha_pass"
#: What TikTok's APIs answer while a client owes a slider captcha.
VERIFY_SLIDE_RESPONSE: dict[str, str] = {"code": "10000", "type": "verify", "subtype": "slide"}

#: Every per-client anti-bot counter (``ClientRecord.counters``), in reporting order.
HOSTILE_COUNTERS: tuple[str, ...] = (
    "rate_limited",  # 429 from rate_limit_per_minute
    "burst_429",  # 429 from a random burst
    "ban_imposed",  # the client was banned (once per client)
    "banned",  # a banned client was refused (403 or 10204), incl. the request that banned it
    "headless_blocked",  # a HeadlessChrome user agent was refused
    "webdriver_detected",  # navigator.webdriver reported true (the client is banned)
    "waf_challenged",  # the WAF proof-of-work page was served
    "waf_passed",  # a page load carried a valid WAF cookie
    "waf_bad_cookie",  # a page load carried a WAF cookie that does not verify
    "login_redirect",  # 302 to /login
    "captcha_challenged",  # a new captcha challenge was issued (any kind)
    "captcha_slider",  # ...of which TikTok slider challenges
    "captcha_shown",  # a captcha page was served (new or repeated challenge)
    "captcha_solved",  # /__captcha/verify accepted a solution
    "captcha_failed",  # /__captcha/verify rejected a solution
    "captcha_pass_used",  # a page load skipped the captcha thanks to a captcha_pass cookie
    "captcha_api_verify",  # an API answered VERIFY_SLIDE_RESPONSE
    "empty_list",  # an item-list API answered an empty 200 (soft block)
)

BanMode = Literal["http_403", "status_10204"]
CaptchaKind = Literal["recaptcha", "hcaptcha", "image"]


class SiteScenario(BaseModel):
    """How the site misbehaves. Empty = a perfectly well-behaved site.

    Rates are probabilities per request, decided deterministically from ``seed``, the client and
    the client's request number. Only page loads (``/``, ``/@…``, ``/tag/…``) and ``/api/…``
    calls are subject to (and count towards) the anti-bot rules.
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
    seed: int = Field(default=0, description="Seed of every random anti-bot decision.")

    # -- rate limits -------------------------------------------------------------------------
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, description="Page/API requests a client may make per window; then 429."
    )
    rate_limit_window_s: float = Field(
        default=60.0, gt=0, description="The rate-limit window (a minute, shorter in tests)."
    )
    burst_429_rate: float = Field(
        default=0.0, ge=0, le=1, description="Chance a request starts a 429 burst of 1-3 requests."
    )

    # -- bans --------------------------------------------------------------------------------
    ban_after_requests: int | None = Field(
        default=None, ge=0, description="A client's page/API requests after this many are banned for good."
    )
    ban_mode: BanMode = Field(
        default="http_403",
        description="http_403: banned clients get 403; status_10204: 200 with statusCode 10204.",
    )

    # -- captchas ----------------------------------------------------------------------------
    captcha_rate: float = Field(default=0.0, ge=0, le=1, description="Chance a page load is a captcha.")
    captcha_slider_fraction: float = Field(
        default=0.0, ge=0, le=1, description="Share of captchas that are TikTok's own slider."
    )
    captcha_kind: CaptchaKind = Field(default="recaptcha", description="The solvable captcha's kind.")
    captcha_pass_pages: int = Field(
        default=10, ge=0, description="Page loads a solved captcha exempts (with the captcha_pass cookie)."
    )
    recaptcha_sitekey: str = "6LcSandboxAAAAAOfflineTikTokStandInKey00"
    hcaptcha_sitekey: str = "5a1d3c2e-0f00-4bad-9e11-5a4db0c0ffee"

    # -- WAF ---------------------------------------------------------------------------------
    waf_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Chance a page load without a valid WAF cookie gets the proof-of-work page "
        "(1.0 = every client must pass it on its first visit).",
    )
    waf_difficulty: int = Field(
        default=3, ge=1, le=6, description="Leading zero hex digits the SHA-256 proof of work needs."
    )

    # -- other defences ----------------------------------------------------------------------
    login_redirect_rate: float = Field(default=0.0, ge=0, le=1, description="Chance of 302 to /login.")
    empty_list_rate: float = Field(
        default=0.0, ge=0, le=1, description="Chance an item-list API answers an empty 200 (soft block)."
    )
    detect_headless_ua: bool = Field(default=False, description="Refuse 'HeadlessChrome' user agents.")
    detect_webdriver: bool = Field(
        default=False, description="Ban clients whose pages report navigator.webdriver = true."
    )

    def json_is_broken(self, path: str) -> bool:
        return any(fnmatchcase(path, pattern) for pattern in self.broken_json_paths)

    @property
    def hostile(self) -> bool:
        """Whether any anti-bot rule is switched on."""
        return bool(
            self.rate_limit_per_minute
            or self.burst_429_rate
            or self.ban_after_requests is not None
            or self.captcha_rate
            or self.waf_rate
            or self.login_redirect_rate
            or self.empty_list_rate
            or self.detect_headless_ua
            or self.detect_webdriver
        )


class ClientKey(NamedTuple):
    """Who is asking: the real site keys its defences on IP and browser identity.

    The IP is the last ``X-Forwarded-For`` entry (set by the sandbox proxies: the address the
    site "sees" behind a proxy), else the socket peer.
    """

    ip: str
    user_agent: str

    @classmethod
    def of(cls, request: web.Request) -> ClientKey:
        forwarded = request.headers.get("X-Forwarded-For", "")
        ip = forwarded.rsplit(",", 1)[-1].strip() if forwarded.strip() else ""
        return cls(ip or request.remote or "", request.headers.get("User-Agent", ""))


RouteKind = Literal["page", "api", "other"]


def route_kind(path: str) -> RouteKind:
    """Pages and APIs are what anti-bot rules watch; everything else (login, captcha form,
    favicon, beacon, control plane) passes untouched and is not counted against the client."""
    if path == "/" or path.startswith(("/@", "/tag/")):
        return "page"
    if path.startswith("/api/"):
        return "api"
    return "other"


@dataclass
class ClientRecord:
    key: ClientKey
    requests: int = 0
    first_seen: float = 0.0  # time.monotonic()
    last_seen: float = 0.0
    last_path: str = ""
    page_requests: int = 0
    api_requests: int = 0
    banned: bool = False
    ban_reason: str | None = None  # "request_budget" | "webdriver"
    challenge: str | None = None  # the captcha this client owes: recaptcha|hcaptcha|image|slider
    image_png: bytes = b""  # the image captcha currently shown to this client
    image_answer: str = ""
    captcha_passes_left: int = 0
    burst_left: int = 0  # further requests of the current 429 burst
    last_burst_request: int = -2  # watched_requests number of the last burst refusal
    webdriver: bool | None = None  # last value the pages reported
    window: deque[float] = field(default_factory=deque)  # page/API times inside the rate window
    counters: Counter[str] = field(default_factory=Counter)

    @property
    def watched_requests(self) -> int:
        """Page + API requests: what bans and rate limits count."""
        return self.page_requests + self.api_requests

    def ban(self, reason: str) -> None:
        if not self.banned:
            self.banned, self.ban_reason = True, reason
            self.counters["ban_imposed"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "ip": self.key.ip,
            "userAgent": self.key.user_agent,
            "requests": self.requests,
            "pageRequests": self.page_requests,
            "apiRequests": self.api_requests,
            "banned": self.banned,
            "banReason": self.ban_reason,
            "challenge": self.challenge,
            "captchaPassesLeft": self.captcha_passes_left,
            "webdriver": self.webdriver,
            "counters": {name: self.counters[name] for name in HOSTILE_COUNTERS if self.counters[name]},
        }


class ClientTracker:
    """Per-client request and anti-bot counters.

    ``lock`` is held while the server thread decides and counts, and while tests read, so a
    snapshot is always consistent.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._records: dict[ClientKey, ClientRecord] = {}

    def hit(self, key: ClientKey, path: str) -> ClientRecord:
        now = time.monotonic()
        with self.lock:
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = ClientRecord(key=key, first_seen=now)
            record.requests += 1
            record.last_seen = now
            record.last_path = path
            kind = route_kind(path)
            if kind == "page":
                record.page_requests += 1
            elif kind == "api":
                record.api_requests += 1
            return record

    def snapshot(self) -> dict[ClientKey, int]:
        with self.lock:
            return {key: record.requests for key, record in self._records.items()}

    def total(self) -> int:
        with self.lock:
            return sum(record.requests for record in self._records.values())

    def by_ip(self, ip: str) -> list[dict[str, Any]]:
        """Every client (one per user agent) seen from ``ip``, as ``stats()`` reports them."""
        with self.lock:
            return [r.as_dict() for r in self._records.values() if r.key.ip == ip]

    def stats(self) -> dict[str, Any]:
        """``{"clients": [...], "totals": {...}}``: what ``/__sandbox__/clients`` serves."""
        with self.lock:
            records = list(self._records.values())
            totals: dict[str, int] = {
                name: sum(r.counters[name] for r in records) for name in HOSTILE_COUNTERS
            }
            totals |= {
                "clients": len(records),
                "requests": sum(r.requests for r in records),
                "page_requests": sum(r.page_requests for r in records),
                "api_requests": sum(r.api_requests for r in records),
                "banned_clients": sum(r.banned for r in records),
                "challenged_clients": sum(r.challenge is not None for r in records),
            }
            return {"clients": [r.as_dict() for r in records], "totals": totals}

    def reset(self) -> None:
        with self.lock:
            self._records.clear()


CONTENT_KEY = web.AppKey("content", SandboxContent)
SCENARIO_KEY = web.AppKey("scenario", SiteScenario)
CLIENTS_KEY = web.AppKey("clients", ClientTracker)
REGISTRY_KEY = web.AppKey("captcha_registry", CaptchaRegistry)
_REQUEST_SEQ = web.AppKey("request_seq", itertools.count)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_RECORD_KEY = web.RequestKey("sandbox_client_record", ClientRecord)  # for handlers that need it


# --------------------------------------------------------------------------- middleware ---
async def _hostile_response(request: web.Request, record: ClientRecord | None) -> web.StreamResponse | None:
    """The anti-bot decision point: return a response to answer instead of the real page."""
    if record is None:
        return None
    scenario = request.app[SCENARIO_KEY]
    if not scenario.hostile and record.challenge is None and not record.banned:
        return None
    tracker = request.app[CLIENTS_KEY]
    with tracker.lock:  # decisions read and write the record: keep stats() readers consistent
        return _decide(request, record, scenario)


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
    params.set("wd", navigator.webdriver ? "1" : "0");  // the site's bot telemetry
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


# Bot telemetry, like the real site's: report navigator.webdriver (only when the scenario watches).
_BEACON_JS = r"""
(function () {
  try {
    navigator.sendBeacon("/__bd/report", JSON.stringify({ webdriver: Boolean(navigator.webdriver) }));
  } catch (err) { /* telemetry must never break the page */ }
})();
"""


def _page(request: web.Request, *, title: str, scope: dict[str, Any], body: str) -> web.Response:
    scenario = request.app[SCENARIO_KEY]
    full_scope = {"webapp.app-context": _app_context(request), **scope}
    data = render_universal_data(full_scope, broken=scenario.json_is_broken(request.path))
    beacon = f"    <script>{_BEACON_JS}</script>\n" if scenario.detect_webdriver else ""
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n'
        '    <meta name="viewport" content="width=device-width, initial-scale=1.0" />\n'
        f"    <title>{html.escape(title)}</title>\n    <style>{_STYLE}</style>\n  </head>\n  <body>\n"
        f'    <div id="app">{body}</div>\n'
        f'    <script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{data}</script>\n'
        f"    <script>{_PAGE_JS}</script>\n{beacon}  </body>\n</html>\n"
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


# ----------------------------------------------------------------------------- anti-bot ---
def _secret(scenario: SiteScenario) -> bytes:
    return hashlib.sha256(f"ingest-sandbox-site|{scenario.seed}".encode()).digest()


def _mac(scenario: SiteScenario, *parts: object) -> str:
    """Signs cookie material so a client cannot forge (or share) a pass."""
    message = "|".join(map(str, parts)).encode()
    return hmac.new(_secret(scenario), message, hashlib.sha256).hexdigest()[:32]


def _roll(scenario: SiteScenario, record: ClientRecord, decision: str) -> float:
    """A reproducible number in [0, 1) for this client's current request and this decision."""
    key = record.key
    return fraction(scenario.seed, key.ip, key.user_agent, record.watched_requests, decision)


def _decide(request: web.Request, record: ClientRecord, scenario: SiteScenario) -> web.StreamResponse | None:
    """Apply the scenario's rules in the order a real edge does: identity checks and bans, rate
    limits, then the per-page interstitials (WAF, login wall, captcha), then API soft blocks."""
    kind = route_kind(request.path)
    if kind == "other":
        return None
    counters = record.counters
    if scenario.detect_headless_ua and "HeadlessChrome" in record.key.user_agent:
        counters["headless_blocked"] += 1
        return _blocked(request, kind, scenario.ban_mode)
    budget = scenario.ban_after_requests
    if budget is not None and record.watched_requests > budget:
        record.ban("request_budget")
    if kind == "api" and scenario.detect_webdriver and request.query.get("wd") == "1":
        record.webdriver = True
        counters["webdriver_detected"] += 1
        record.ban("webdriver")
    if record.banned:
        counters["banned"] += 1
        # A webdriver ban always answers APIs with 10204, like the real site's bot verdict.
        mode: BanMode = (
            "status_10204" if record.ban_reason == "webdriver" and kind == "api" else scenario.ban_mode
        )
        return _blocked(request, kind, mode)

    now = time.monotonic()
    window = record.window
    limit = scenario.rate_limit_per_minute
    if limit is not None:
        horizon = now - scenario.rate_limit_window_s
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= limit:
            counters["rate_limited"] += 1
            return _too_many(math.ceil(window[0] - horizon))
    if record.burst_left > 0:
        record.burst_left -= 1
        record.last_burst_request = record.watched_requests
        counters["burst_429"] += 1
        return _too_many(1)
    if (
        scenario.burst_429_rate
        and record.watched_requests > record.last_burst_request + 1  # one request gets through between bursts
        and _roll(scenario, record, "burst") < scenario.burst_429_rate
    ):
        record.burst_left = int(_roll(scenario, record, "burst_length") * 3)  # 0-2 more: 1-3 in all
        record.last_burst_request = record.watched_requests
        counters["burst_429"] += 1
        return _too_many(1)
    if limit is not None:
        window.append(now)  # only requests that got past the limiter use up the allowance

    if kind == "api":
        if record.challenge == "slider":
            counters["captcha_api_verify"] += 1
            return _json(VERIFY_SLIDE_RESPONSE)
        if (
            scenario.empty_list_rate
            and request.path.endswith("/item_list/")
            and _roll(scenario, record, "empty_list") < scenario.empty_list_rate
        ):
            counters["empty_list"] += 1
            return _json({"statusCode": STATUS_OK, "itemList": [], "hasMore": False, "cursor": "0"})
        return None

    if scenario.waf_rate:
        waf_cookie = _waf_cookie_state(request, record, scenario)
        if waf_cookie == "ok":
            counters["waf_passed"] += 1
        else:
            if waf_cookie == "bad":
                counters["waf_bad_cookie"] += 1
            if _roll(scenario, record, "waf") < scenario.waf_rate:
                counters["waf_challenged"] += 1
                return _waf_page(record, scenario)
    if scenario.login_redirect_rate and _roll(scenario, record, "login") < scenario.login_redirect_rate:
        counters["login_redirect"] += 1
        location = "/login?redirect_url=" + urllib.parse.quote(str(request.url), safe="")
        return web.Response(status=302, headers={"Location": location})
    if record.challenge is None and scenario.captcha_rate:
        if record.captcha_passes_left > 0 and _captcha_pass_ok(request, record, scenario):
            record.captcha_passes_left -= 1
            counters["captcha_pass_used"] += 1
            return None
        if _roll(scenario, record, "captcha") < scenario.captcha_rate:
            slider = _roll(scenario, record, "slider") < scenario.captcha_slider_fraction
            _issue_challenge(request, record, "slider" if slider else scenario.captcha_kind)
    if record.challenge is not None:  # owed until solved: reloading does not make it go away
        counters["captcha_shown"] += 1
        return _captcha_page(record, scenario, return_to=request.path_qs)
    return None


_ACCESS_DENIED = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="UTF-8" /><title>Access Denied</title></head>'
    '<body><h1 id="access-denied">Access Denied</h1>'
    "<p>You don't have permission to access this page.</p></body></html>\n"
)


def _blocked(request: web.Request, kind: RouteKind, mode: BanMode) -> web.Response:
    if mode == "http_403":
        return web.Response(status=403, text=_ACCESS_DENIED, content_type="text/html", charset="utf-8")
    payload: dict[str, Any] = {"statusCode": STATUS_IP_BLOCKED, "statusMsg": ""}
    if kind == "api":
        if request.path.endswith("/item_list/"):
            payload |= {"itemList": [], "hasMore": False, "cursor": "0"}
        return _json(payload)
    path = request.path
    if "/video/" in path:
        scope_key = "webapp.video-detail"
    elif path.startswith("/tag/"):
        scope_key = "webapp.challenge-detail"
    else:
        scope_key = "webapp.user-detail"
    body = '<main><p data-e2e="ip-blocked">Too many attempts. Try again later.</p></main>'
    return _page(request, title="TikTok - Make Your Day", scope={scope_key: payload}, body=body)


def _too_many(retry_after_s: int) -> web.Response:
    return web.Response(
        status=429, text="Too Many Requests", headers={"Retry-After": str(max(1, retry_after_s))}
    )


# -- WAF proof of work ------------------------------------------------------------------------
_WAF_JS = r"""
(async function () {
  "use strict";
  var statusEl = document.getElementById("waf-status");
  try {
    var cs = JSON.parse(atob(document.getElementById("cs").textContent.trim()));
    var cookieName = document.getElementById("wci").textContent.trim();
    var prefix = new Array(cs.v.d + 1).join("0");
    var encoder = new TextEncoder();
    var limit = Math.pow(16, cs.v.d) * 64;  // bounded: give up rather than spin forever
    for (var n = 0; n < limit; n++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(cs.v.c + n));
      var hex = Array.prototype.map.call(new Uint8Array(digest), function (b) {
        return (b < 16 ? "0" : "") + b.toString(16);
      }).join("");
      if (hex.slice(0, cs.v.d) === prefix) {
        document.cookie = cookieName + "=" + cs.v.c + "." + n + "; path=/; SameSite=Lax";
        location.reload();
        return;
      }
    }
    statusEl.textContent = "Verification failed";
  } catch (err) {
    statusEl.textContent = "Verification failed: " + err;
  }
})();
"""


def _waf_challenge(record: ClientRecord, scenario: SiteScenario) -> str:
    """``salt.mac``: the string to hash. The mac binds it to this client and difficulty, so the
    server can verify a cookie without remembering the challenge, and a cookie cannot be shared."""
    key = record.key
    n = record.watched_requests
    salt = f"{n:x}{_mac(scenario, 'waf-salt', key.ip, key.user_agent, n)[:8]}"
    return f"{salt}.{_mac(scenario, 'waf', salt, key.ip, key.user_agent, scenario.waf_difficulty)}"


def _waf_cookie_state(request: web.Request, record: ClientRecord, scenario: SiteScenario) -> str:
    """ "ok", "missing" or "bad" for the ``_wafchallengeid`` cookie (``salt.mac.nonce``)."""
    value = request.cookies.get(WAF_COOKIE, "")
    if not value:
        return "missing"
    parts = value.split(".")
    if len(parts) != 3 or not parts[2].isdigit() or len(parts[2]) > 12:
        return "bad"
    salt, mac, nonce = parts
    key = record.key
    expected = _mac(scenario, "waf", salt, key.ip, key.user_agent, scenario.waf_difficulty)
    if not hmac.compare_digest(mac, expected):
        return "bad"
    digest = hashlib.sha256(f"{salt}.{mac}{nonce}".encode()).hexdigest()
    return "ok" if digest.startswith("0" * scenario.waf_difficulty) else "bad"


def _waf_page(record: ClientRecord, scenario: SiteScenario) -> web.Response:
    challenge = {"v": {"a": "SHA-256", "c": _waf_challenge(record, scenario), "d": scenario.waf_difficulty}}
    encoded = base64.b64encode(_dumps(challenge).encode()).decode()
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n'
        '    <meta name="robots" content="noindex, nofollow" />\n    <title>Please wait...</title>\n'
        "  </head>\n  <body>\n"
        '    <div id="waf-container"><p>Please wait...</p>\n'
        f'    <p id="cs" class="csrf" style="display:none">{encoded}</p>\n'
        f'    <p id="wci" class="{WAF_COOKIE}" style="display:none">{WAF_COOKIE}</p>\n'
        '    <p id="waf-status"></p></div>\n'
        f"    <script>{_WAF_JS}</script>\n  </body>\n</html>\n"
    )
    return web.Response(text=document, content_type="text/html", charset="utf-8")


# -- captchas ---------------------------------------------------------------------------------
_SLIDER_BACKGROUND = (
    "data:image/png;base64," + base64.b64encode(render_digits_png("", noise_seed="bg", scale=20)).decode()
)
_SLIDER_PIECE = (
    "data:image/png;base64," + base64.b64encode(render_digits_png("", noise_seed="piece")).decode()
)


def _issue_challenge(request: web.Request, record: ClientRecord, challenge: str) -> None:
    record.challenge = challenge
    record.counters["captcha_challenged"] += 1
    if challenge == "slider":
        record.counters["captcha_slider"] += 1
    if challenge == "image":
        _new_image(request, record)


def _new_image(request: web.Request, record: ClientRecord) -> None:
    key = record.key
    png, answer = request.app[REGISTRY_KEY].new_image(f"{key.ip}|{key.user_agent}|{record.watched_requests}")
    record.image_png, record.image_answer = png, answer


def _captcha_pass_ok(request: web.Request, record: ClientRecord, scenario: SiteScenario) -> bool:
    nonce, _, mac = request.cookies.get(CAPTCHA_PASS_COOKIE, "").partition(".")
    key = record.key
    return bool(nonce) and hmac.compare_digest(mac, _mac(scenario, "captcha", nonce, key.ip, key.user_agent))


def _captcha_page(
    record: ClientRecord, scenario: SiteScenario, *, return_to: str, error: str = ""
) -> web.Response:
    kind = record.challenge or "recaptcha"
    if kind == "slider":
        # TikTok's own (secsdk) slider: no form a solving service could fill in.
        inner = (
            '<div class="captcha_verify_container captcha-disable-scroll">'
            '<div class="captcha_verify_bar">Drag the slider to fit the puzzle</div>'
            '<div class="captcha_verify_img--wrapper">'
            f'<img id="captcha-verify-image" alt="Captcha" src="{_SLIDER_BACKGROUND}" />'
            f'<img class="captcha_verify_img_slide" alt="Captcha" src="{_SLIDER_PIECE}" />'
            "</div>"
            '<div class="captcha_verify_slide--slidebar">'
            '<div id="secsdk-captcha-drag-wrapper" class="secsdk-captcha-drag-wrapper">'
            '<div class="secsdk-captcha-drag-icon"></div></div></div></div>'
        )
    else:
        if kind == "recaptcha":
            widget = (
                f'<div class="g-recaptcha" data-sitekey="{html.escape(scenario.recaptcha_sitekey)}"></div>'
                '<textarea id="g-recaptcha-response" name="g-recaptcha-response" '
                'class="g-recaptcha-response" style="display:none"></textarea>'
            )
        elif kind == "hcaptcha":
            widget = (
                f'<div class="h-captcha" data-sitekey="{html.escape(scenario.hcaptcha_sitekey)}"></div>'
                '<textarea id="h-captcha-response" name="h-captcha-response" style="display:none"></textarea>'
            )
        else:
            picture = base64.b64encode(record.image_png).decode()
            widget = (
                f'<img id="captcha-image" alt="captcha" src="data:image/png;base64,{picture}" />'
                '<input id="captcha-text" name="captcha_text" type="text" autocomplete="off" />'
            )
        inner = (
            '<form id="captcha-form" method="post" action="/__captcha/verify">'
            f'<input type="hidden" name="return_to" value="{html.escape(return_to)}" />'
            f'{widget}<button id="captcha-submit" type="submit">Verify</button></form>'
        )
    error_html = f'<p id="captcha-error">{html.escape(error)}</p>' if error else ""
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n'
        '    <meta name="robots" content="noindex, nofollow" />\n    <title>Security Check | TikTok</title>\n'
        "  </head>\n  <body>\n"
        f'    <div id="captcha-container" data-captcha-kind="{kind}"><h1>Verify to continue</h1>'
        f"{error_html}{inner}</div>\n  </body>\n</html>\n"
    )
    return web.Response(text=document, content_type="text/html", charset="utf-8")


def _safe_return(value: str) -> str:
    """Only same-site paths: the form must not become an open redirect."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def _captcha_verify(request: web.Request) -> web.Response:
    record = request[CLIENT_RECORD_KEY]
    scenario = request.app[SCENARIO_KEY]
    registry = request.app[REGISTRY_KEY]
    form = await request.post()
    return_to = _safe_return(str(form.get("return_to") or "/"))
    with request.app[CLIENTS_KEY].lock:
        challenge = record.challenge
        if challenge is None:  # nothing owed: just go back
            return web.Response(status=302, headers={"Location": return_to})
        if challenge == "recaptcha":
            token = str(form.get("g-recaptcha-response") or "")
            solved = registry.redeem_token(token, kind="recaptcha", sitekey=scenario.recaptcha_sitekey)
        elif challenge == "hcaptcha":
            token = str(form.get("h-captcha-response") or form.get("g-recaptcha-response") or "")
            solved = registry.redeem_token(token, kind="hcaptcha", sitekey=scenario.hcaptcha_sitekey)
        elif challenge == "image":
            text = str(form.get("captcha_text") or "").strip()
            solved = bool(record.image_answer) and text == record.image_answer
        else:
            solved = False  # the slider cannot be answered with a token
        if not solved:
            record.counters["captcha_failed"] += 1
            record.counters["captcha_shown"] += 1
            if challenge == "image":
                _new_image(request, record)  # a fresh picture after a wrong answer, as real sites do
            return _captcha_page(
                record, scenario, return_to=return_to, error="Verification failed. Try again."
            )
        record.challenge, record.image_png, record.image_answer = None, b"", ""
        record.captcha_passes_left = scenario.captcha_pass_pages
        record.counters["captcha_solved"] += 1
        key = record.key
        nonce = f"{record.requests:x}{record.counters['captcha_solved']:x}"
        cookie = f"{nonce}.{_mac(scenario, 'captcha', nonce, key.ip, key.user_agent)}"
    response = web.Response(status=302, headers={"Location": return_to})
    response.set_cookie(CAPTCHA_PASS_COOKIE, cookie, path="/", httponly=True, samesite="Lax")
    return response


async def _webdriver_beacon(request: web.Request) -> web.Response:
    """The pages report ``navigator.webdriver`` here (when ``detect_webdriver`` is on)."""
    record = request[CLIENT_RECORD_KEY]
    try:
        data = json.loads(await request.text() or "{}")
    except ValueError:
        data = {}
    webdriver = bool(isinstance(data, dict) and data.get("webdriver"))
    with request.app[CLIENTS_KEY].lock:
        record.webdriver = webdriver
        if webdriver and request.app[SCENARIO_KEY].detect_webdriver:
            record.counters["webdriver_detected"] += 1
            record.ban("webdriver")
    return web.Response(status=204)


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
    return _json(request.app[CLIENTS_KEY].stats())


async def _favicon(request: web.Request) -> web.Response:
    del request
    return web.Response(status=204)  # keeps browser tests free of 404 noise


def build_app(
    content: SandboxContent,
    scenario: SiteScenario | None = None,
    *,
    registry: CaptchaRegistry | None = None,
) -> web.Application:
    """The sandbox site as an aiohttp application (run it with ``SandboxServer``).

    ``registry`` holds the captcha tokens the site accepts: share it with the Anti-Captcha
    stand-in so the tokens that service issues verify here.
    """
    scenario = scenario if scenario is not None else SiteScenario()
    app = web.Application(middlewares=[_client_middleware])
    app[CONTENT_KEY] = content
    app[SCENARIO_KEY] = scenario
    app[CLIENTS_KEY] = ClientTracker()
    app[REGISTRY_KEY] = registry if registry is not None else CaptchaRegistry(seed=scenario.seed)
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
    app.router.add_post("/__captcha/verify", _captcha_verify)
    app.router.add_post("/__bd/report", _webdriver_beacon)
    app.router.add_get("/__sandbox__/health", _health)
    app.router.add_get("/__sandbox__/clients", _clients)
    return app
