"""Playwright + Chromium scraper for TikTok pages that survives anti-bot defences (no Dagster).

It reads each page the way a person's browser does: the server-rendered rehydration JSON, then
the item-list responses the page's own JavaScript fetches (intercepted, never forged, since the
real site signs them). Around that sits the anti-bot machinery:

- **sticky sessions** (``sessions.py``): one proxy + one browser context + one browserforge
  fingerprint (``fingerprints.py``) + playwright-stealth per session; ``concurrent_sessions``
  workers each drive one session at a time;
- **a scored proxy pool** (``proxy_pool.py``): the healthiest proxy first, exponential quarantine
  after 403/429/10204/captcha/connection errors, :class:`ProxyPoolExhausted` when none is left;
- **parsing off the event loop**: each loaded page is parsed and classified (``parse_page``,
  ``classify_page``) and each item-list response read, in a worker thread (``asyncio.to_thread``),
  so one large or hostile page never stalls the other sessions (the parsers are linear-time too);
- **block detection** (``blocking.py``) on every load and every item-list response; a blocked page
  retires its session and is retried on a new one (another proxy, another fingerprint), at most
  ``max_attempts_per_target`` loads per page;
- **WAF pages** are left to the page's own JavaScript (bounded by ``waf_wait_s``); **captchas** go
  to the optional :class:`~ingest_platform.scraping.captcha.CaptchaSolver` (reCAPTCHA, hCaptcha,
  image) or, for TikTok's slider and when solving is off, to rotation;
- **politeness**: each session spaces the starts of its page loads (and load-more requests) by a
  random ``uniform(min_delay_s, max_delay_s)``, and a new session keeps that gap from its proxy's
  last request, so neither a session nor an IP ever asks faster than that.

Playwright is imported lazily so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ingest_platform.models import Post
from ingest_platform.scraping.blocking import (
    WAF_COOKIE,
    BlockKind,
    BlockSignal,
    classify_item_list,
    classify_page,
    detect_captcha,
)
from ingest_platform.scraping.fingerprints import BROWSER_LOCALE_ARGS, FingerprintFactory, chromium_major_of
from ingest_platform.scraping.metrics import ScrapeMetrics
from ingest_platform.scraping.proxy_config import ProxyEndpoint, redact_secrets
from ingest_platform.scraping.proxy_pool import PoolSettings, ProxyPool, ProxyPoolExhausted, ProxySnapshot
from ingest_platform.scraping.schema_drift import SchemaTally
from ingest_platform.scraping.sessions import BrowserSession, SessionManager
from ingest_platform.scraping.targets import Target
from ingest_platform.scraping.tiktok_page import PageResult, PageStatus, parse_item_list, parse_page

if TYPE_CHECKING:
    from ingest_platform.scraping.captcha import CaptchaSolver

__all__ = [
    "BROWSER_PATH_ENV",
    "CHROMIUM_ARGS",
    "BrowserNotFoundError",
    "BrowserScraper",
    "BrowserSettings",
    "ProxyPoolExhausted",
    "RejectedRecord",
    "ScrapeOutcome",
    "TargetOutcome",
    "resolve_browser_executable",
    "scrape_sync",
]

logger = logging.getLogger(__name__)

BROWSER_PATH_ENV = "INGEST_BROWSER_PATH"
DEBIAN_CHROMIUM = "/usr/bin/chromium"

# --disable-blink-features=AutomationControlled keeps navigator.webdriver false; the rest stop
# Chromium's background traffic (update checks, sync) from going through the scraping proxies.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--disable-blink-features=AutomationControlled",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    # The browser's own locale: en-US sessions then send Chrome's real Accept-Language q-list.
    *BROWSER_LOCALE_ARGS,
)

ITEM_LIST_PATHS = ("/api/post/item_list/", "/api/challenge/item_list/")
# Interstitials one load may pass through (WAF, then a captcha, then the page) before giving up.
_MAX_INTERSTITIALS = 3
_LIST_REQUEST_FAILED = -1


class BrowserNotFoundError(RuntimeError):
    """No Chromium to drive: names the setting that fixes it."""


def resolve_browser_executable(configured: str | None = None) -> str | None:
    """The Chromium binary to launch, or None to use Playwright's own downloaded browser.

    Order: the explicit setting, ``INGEST_BROWSER_PATH``, Debian's ``/usr/bin/chromium``, ``chromium``
    or ``google-chrome`` on PATH. None means "let Playwright find its bundled browser", which works
    wherever ``playwright install chromium`` has run.
    """
    candidate = configured or os.environ.get(BROWSER_PATH_ENV)
    if candidate:
        if not Path(candidate).exists():
            raise BrowserNotFoundError(
                f"{BROWSER_PATH_ENV} / browser_executable points to {candidate!r}, which does not exist"
            )
        return candidate
    if Path(DEBIAN_CHROMIUM).exists():
        return DEBIAN_CHROMIUM
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class BrowserSettings:
    """How the browser scraper behaves; production defaults, tests shrink the times."""

    base_url: str = "https://www.tiktok.com"
    executable_path: str | None = None
    headless: bool = True
    # Politeness: each session starts page loads (and load-more requests) at least a random
    # uniform(min_delay_s, max_delay_s) apart, start to start (see _Worker).
    min_delay_s: float = 3.0
    max_delay_s: float = 8.0
    page_timeout_s: float = 30.0
    # How long to wait for the page's own item-list request before calling the page empty.
    list_wait_s: float = 10.0
    concurrent_sessions: int = 2
    # Loads per target page, first one included; each retry runs on a fresh session.
    max_attempts_per_target: int = 4
    # Retire a session after this many page loads even if never blocked (None: only on blocks).
    max_pages_per_session: int | None = None
    # Time the page's own JavaScript gets to clear a WAF proof-of-work page.
    waf_wait_s: float = 15.0
    # How long a worker may wait for a quarantined proxy to come back before the pool counts as
    # exhausted for the rest of the run.
    pool_wait_max_s: float = 60.0
    quarantine_base_s: float = 30.0
    quarantine_max_s: float = 1800.0
    # Keep one session per worker opened ahead (context, fingerprint, stealth) so a blocked page
    # is retried without waiting for a new context.
    prewarm_sessions: bool = True
    # Fingerprinting and stealth; turning them off is for experiments only.
    stealth: bool = True
    locales: tuple[str, ...] = ("en-US",)
    timezones: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.min_delay_s < 0 or self.max_delay_s < self.min_delay_s:
            raise ValueError(
                "delays must satisfy 0 <= min_delay_s <= max_delay_s, "
                f"got {self.min_delay_s}..{self.max_delay_s}"
            )
        if self.concurrent_sessions < 1:
            raise ValueError("concurrent_sessions must be at least 1")
        if self.max_attempts_per_target < 1:
            raise ValueError("max_attempts_per_target must be at least 1")
        if self.max_pages_per_session is not None and self.max_pages_per_session < 1:
            raise ValueError("max_pages_per_session must be at least 1 (or None)")
        if self.waf_wait_s < 0 or self.pool_wait_max_s < 0:
            raise ValueError("waf_wait_s and pool_wait_max_s must not be negative")

    @property
    def mean_delay_s(self) -> float:
        return (self.min_delay_s + self.max_delay_s) / 2

    def pool_settings(self) -> PoolSettings:
        return PoolSettings(quarantine_base_s=self.quarantine_base_s, quarantine_max_s=self.quarantine_max_s)


@dataclass
class RejectedRecord:
    """A page or item the scraper could not turn into posts, kept with its reason."""

    source_url: str
    reason: str
    payload: str


@dataclass
class TargetOutcome:
    """How one target page ended: its status (``ok``, a block kind, ``broken``, ``proxy_pool_exhausted``,
    or a page status such as ``private_account``), posts kept, loads used and the blocks met."""

    target: str
    url: str
    status: str
    posts: int
    proxy_id: str | None
    attempts: int = 0
    blocks: list[str] = field(default_factory=list)


@dataclass
class ScrapeOutcome:
    """Everything a run produced. Safe to log: proxies appear by id / redacted URL only."""

    posts: list[Post] = field(default_factory=list)
    rejects: list[RejectedRecord] = field(default_factory=list)
    metrics: ScrapeMetrics = field(default_factory=ScrapeMetrics)
    targets: list[TargetOutcome] = field(default_factory=list)
    # Targets not finished because the proxy pool ran dry: hand them to another backend.
    remaining_targets: list[Target] = field(default_factory=list)
    pool_exhausted: bool = False
    proxies: list[ProxySnapshot] = field(default_factory=list)
    captcha_disabled_reason: str | None = None
    # Wall time: launching Chromium, then scraping (first session opened -> last page done).
    browser_start_s: float = 0.0
    scrape_s: float = 0.0
    # Field paths and JSON types of the raw items read (for the schema-drift check).
    schema: SchemaTally = field(default_factory=SchemaTally)


@dataclass
class _Load:
    """What one page load ended as."""

    ok: bool = False
    final: bool = False  # an answer that retrying cannot change (private, not found, broken page)
    status: str = "failed"
    block: BlockSignal | None = None


class _Worker:
    """One concurrent slot: drives at most one live session at a time.

    Politeness is per session and start-to-start: a session starts a request (page load or
    load-more) at least ``uniform(min_delay_s, max_delay_s)`` after its previous one started, so
    the time a load takes counts towards the gap instead of being added to it. A new session on a
    proxy also keeps that gap from the proxy's last request (a retired session's included), so
    no IP ever sees this scraper faster than the delay, even right after a rotation.
    """

    def __init__(self, index: int, rng: random.Random) -> None:
        self.index = index
        self.session: BrowserSession | None = None
        self.spare: asyncio.Task[BrowserSession | None] | None = None
        self._rng = rng

    async def take_spare(self) -> BrowserSession | None:
        """The pre-warmed next session, if one was being opened (waits for it to be ready)."""
        task, self.spare = self.spare, None
        if task is None:
            return None
        try:
            return await task
        except Exception:  # the spare's context failed to open: open a fresh one instead
            logger.debug("pre-warmed session failed to open", exc_info=True)
            return None

    def interval(self, settings: BrowserSettings) -> float:
        return self._rng.uniform(settings.min_delay_s, settings.max_delay_s)

    async def space(
        self, session: BrowserSession, settings: BrowserSettings, proxy_last_start: dict[str, float]
    ) -> float:
        """Wait until ``session`` may start its next request; returns the seconds slept.

        ``proxy_last_start`` (proxy id -> monotonic time of its last request) is shared by all
        workers of a run.
        """
        if session.last_start == 0.0 and session.proxy_id in proxy_last_start:
            # The session's first request: keep the gap from the proxy's previous one.
            earliest = proxy_last_start[session.proxy_id] + self.interval(settings)
            session.next_start = max(session.next_start, earliest)
        wait = max(0.0, session.next_start - time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        start = time.monotonic()
        session.last_start = start
        session.next_start = start + self.interval(settings)
        proxy_last_start[session.proxy_id] = start
        return wait

    @staticmethod
    def refund(session: BrowserSession) -> None:
        """The last request never reached the site (dead proxy): the next may start at once."""
        session.next_start = session.last_start


class BrowserScraper:
    """Scrapes targets with N concurrent sticky sessions in one Chromium."""

    def __init__(
        self,
        settings: BrowserSettings,
        proxies: Sequence[ProxyEndpoint] | ProxyPool = (),
        *,
        captcha: CaptchaSolver | None = None,
        rng: random.Random | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        # Every random choice (delays, proxy tie-breaks, operating systems) derives from ``rng``:
        # a seeded one makes which identities the site sees reproducible.
        self._rng = rng or random.Random()
        self.pool = (
            proxies
            if isinstance(proxies, ProxyPool)
            else ProxyPool(proxies, settings.pool_settings(), rng=random.Random(self._rng.random()))
        )
        self.captcha = captcha
        self._progress_sink = progress or logger.info
        self._exhausted: ProxyPoolExhausted | None = None
        self._proxy_last_start: dict[str, float] = {}

    def _progress(self, message: str) -> None:
        # Third-party error text (Playwright, proxies) is redacted before it reaches any log.
        self._progress_sink(redact_secrets(message, secrets=self.pool.secrets))

    # -- run ---------------------------------------------------------------------------------
    async def scrape(self, targets: Sequence[Target], *, raise_on_exhausted: bool = False) -> ScrapeOutcome:
        from playwright.async_api import async_playwright

        outcome = ScrapeOutcome()
        if not targets:
            return outcome
        executable = resolve_browser_executable(self.settings.executable_path)
        queue: asyncio.Queue[Target] = asyncio.Queue()
        for target in targets:
            queue.put_nowait(target)
        workers_wanted = min(self.settings.concurrent_sessions, len(targets))
        quarantines_before = self.pool.quarantine_events
        captcha_before = _captcha_counts(self.captcha)

        launch_started = time.monotonic()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=self.settings.headless, args=list(CHROMIUM_ARGS)
            )
            scrape_started = time.monotonic()
            outcome.browser_start_s = scrape_started - launch_started
            manager = SessionManager(
                browser,
                self.pool,
                FingerprintFactory(
                    chrome_major=chromium_major_of(browser.version),
                    locales=self.settings.locales,
                    timezones=self.settings.timezones,
                    rng=random.Random(self._rng.random()),
                ),
                stealth=self.settings.stealth,
            )
            try:
                workers = [_Worker(i, random.Random(self._rng.random())) for i in range(workers_wanted)]
                await asyncio.gather(*(self._work(w, queue, manager, outcome) for w in workers))
                outcome.scrape_s = time.monotonic() - scrape_started
            finally:
                await browser.close()

        metrics = outcome.metrics
        metrics.sessions_started += manager.started
        metrics.sessions_retired += manager.retired
        metrics.bytes_via_proxies += manager.bytes_via_proxies
        metrics.proxies_quarantined += self.pool.quarantine_events - quarantines_before
        captcha_after = _captcha_counts(self.captcha)
        metrics.captcha_tasks += captcha_after[0] - captcha_before[0]
        metrics.captcha_cost_usd += captcha_after[1] - captcha_before[1]
        metrics.targets_unfinished += len(outcome.remaining_targets)
        outcome.pool_exhausted = self._exhausted is not None
        outcome.proxies = self.pool.snapshot()
        outcome.captcha_disabled_reason = self.captcha.disabled_reason if self.captcha else None
        if outcome.remaining_targets and raise_on_exhausted:
            error = self._exhausted or ProxyPoolExhausted(
                "proxy pool exhausted", retry_after_s=self.pool.retry_after_s(), pool_size=len(self.pool)
            )
            error.partial = outcome
            error.remaining_targets = list(outcome.remaining_targets)
            raise error
        return outcome

    async def _work(
        self, worker: _Worker, queue: asyncio.Queue[Target], manager: SessionManager, outcome: ScrapeOutcome
    ) -> None:
        try:
            while True:
                try:
                    target = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if self._exhausted is not None:
                    self._give_up(target, outcome)
                    continue
                await self._scrape_target(worker, target, manager, outcome)
        finally:
            if worker.session is not None:
                await manager.close(worker.session)
                worker.session = None
            spare = await worker.take_spare()
            if spare is not None:
                await manager.close(spare)

    def _give_up(self, target: Target, outcome: ScrapeOutcome) -> None:
        # Counted as attempted and not succeeded: the browser backend did not deliver it.
        outcome.metrics.pages_attempted += 1
        outcome.remaining_targets.append(target)
        outcome.targets.append(
            TargetOutcome(target.text, target.url(self.settings.base_url), "proxy_pool_exhausted", 0, None)
        )

    async def _session_for(
        self, worker: _Worker, manager: SessionManager, avoid: set[str]
    ) -> BrowserSession | None:
        """The worker's live session, opening one when needed; None when the pool is exhausted."""
        session = worker.session
        limit = self.settings.max_pages_per_session
        if session is not None and limit is not None and session.pages_loaded >= limit:
            # Worn out, not blocked: no score change and the identity stays usable.
            await manager.retire(session, "rotation", burnt=False)
            worker.session = session = None
        if session is not None:
            return session
        spare = await worker.take_spare()
        if spare is not None:
            if spare.proxy_id not in avoid and not self.pool.is_quarantined(spare.proxy_id):
                worker.session = spare
                self._prewarm(worker, manager)
                return spare
            await manager.close(spare)  # its proxy went bad meanwhile, or failed this very page
        waited = 0.0
        while True:
            if self._exhausted is not None:
                return None
            try:
                worker.session = await manager.open(avoid=avoid)
                self._prewarm(worker, manager)
                return worker.session
            except ProxyPoolExhausted as error:
                budget = self.settings.pool_wait_max_s - waited
                if error.retry_after_s > budget:
                    if self._exhausted is None:
                        self._exhausted = error
                        self._progress(f"{error}; unfinished targets are left for another backend")
                    return None
                pause = max(error.retry_after_s, 0.01)
                await asyncio.sleep(pause)
                waited += pause

    def _prewarm(self, worker: _Worker, manager: SessionManager) -> None:
        """Open the worker's next session in the background while the current one works.

        A blocked page is then retried at once instead of after a new context, fingerprint and
        stealth set-up (about half a second each). The spare holds its proxy lease, so it lands on
        another proxy than the live session whenever the pool has one.
        """
        if not self.settings.prewarm_sessions or worker.spare is not None or self._exhausted is not None:
            return
        avoid = {worker.session.proxy_id} if worker.session is not None else set()

        async def open_spare() -> BrowserSession | None:
            try:
                return await manager.open(avoid=avoid)
            except ProxyPoolExhausted:
                return None  # no proxy to spare right now: rotations open one when needed

        worker.spare = asyncio.get_running_loop().create_task(open_spare())

    # -- one target ----------------------------------------------------------------------------
    async def _scrape_target(
        self, worker: _Worker, target: Target, manager: SessionManager, outcome: ScrapeOutcome
    ) -> None:
        url = target.url(self.settings.base_url)
        metrics = outcome.metrics
        metrics.pages_attempted += 1
        collected: dict[str, Post] = {}
        record = TargetOutcome(target.text, url, "failed", 0, None)
        failed_on: set[str] = set()
        result = _Load()
        for attempt in range(1, self.settings.max_attempts_per_target + 1):
            session = await self._session_for(worker, manager, failed_on)
            if session is None:
                # Keep what earlier attempts got; the rest of the page goes to another backend.
                outcome.remaining_targets.append(target)
                record.status = "proxy_pool_exhausted"
                break
            if attempt > 1:
                metrics.retries += 1
            record.attempts = attempt
            record.proxy_id = session.proxy_id
            try:
                result = await self._load(worker, session, target, url, collected, outcome)
            except Exception as error:  # a crashed tab or browser hiccup must not end the run
                metrics.browser_errors += 1
                result = _Load(status="browser_error")
                self._progress(
                    f"{target.text}: attempt {attempt} on {session.proxy_id} failed in the browser "
                    f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''})"
                )
                await manager.retire(session, "browser_error", burnt=False)
                worker.session = None
                continue
            if result.ok or result.final:
                if result.ok:
                    self.pool.mark_success(session.proxy_id)
                    session.successes += 1
                break
            block = result.block
            if block is None:  # defensive: a failure without a kind still rotates
                block = BlockSignal(BlockKind.EMPTY_200, "no content")
            # The block itself was counted in metrics.blocks where _load met it.
            record.blocks.append(block.kind.value)
            cool_down = self.pool.mark_failure(session.proxy_id, block.kind.value)
            failed_on.add(session.proxy_id)
            # A connection error says nothing about how the site sees this identity.
            await manager.retire(
                session, block.kind.value, burnt=block.kind is not BlockKind.CONNECTION_ERROR
            )
            worker.session = None
            self._progress(
                f"{target.text}: attempt {attempt} on {session.proxy_id} blocked ({block.detail})"
                + (f"; proxy quarantined {cool_down:.1f}s" if cool_down else "")
            )
        if record.status != "proxy_pool_exhausted":
            record.status = result.status
        if result.ok:
            metrics.pages_succeeded += 1
        posts = list(collected.values())[: target.max_posts]
        outcome.posts.extend(posts)
        metrics.posts_collected += len(posts)
        record.posts = len(posts)
        outcome.targets.append(record)
        self._progress(
            f"{target.text}: {record.status}, {len(posts)} posts, {record.attempts} load(s)"
            + (f", blocks: {', '.join(record.blocks)}" if record.blocks else "")
        )

    async def _load(
        self,
        worker: _Worker,
        session: BrowserSession,
        target: Target,
        url: str,
        collected: dict[str, Post],
        outcome: ScrapeOutcome,
    ) -> _Load:
        """One page load on ``session``: classify it, get past WAF/captcha, read its lists."""
        from playwright.async_api import Error as PlaywrightError

        settings = self.settings
        metrics = outcome.metrics
        # One tab per session, reused load after load like a person's: a fresh page per load would
        # cost a renderer process each time.
        page = session.page
        if page is None or page.is_closed():
            page = session.page = await session.context.new_page()
        lists: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        navigation: dict[str, Any] = {"status": 0, "count": 0}
        target_path = urlparse(url).path

        def block(signal: BlockSignal, status: str | None = None) -> _Load:
            metrics.blocks[signal.kind.value] += 1
            return _Load(status=status or signal.kind.value, block=signal)

        async def on_response(response: Any) -> None:
            if response.request.is_navigation_request() and response.frame == page.main_frame:
                navigation["status"] = response.status
                navigation["count"] += 1
                return
            if urlparse(response.url).path not in ITEM_LIST_PATHS:
                return
            referer = response.request.headers.get("referer")
            if referer and urlparse(referer).path != target_path:
                return  # a late answer to the tab's previous document, not to this page
            try:
                payload = await response.json()
            except Exception:  # a body that is not JSON: kept as a reject below
                payload = None
            await lists.put((response.status, payload))

        def on_request_failed(request: Any) -> None:
            # A list request that never got an answer (proxy died mid-page): say so at once
            # instead of waiting list_wait_s for a response that cannot come.
            if urlparse(request.url).path in ITEM_LIST_PATHS:
                lists.put_nowait((_LIST_REQUEST_FAILED, None))

        page.on("response", on_response)
        page.on("requestfailed", on_request_failed)
        try:
            await worker.space(session, settings, self._proxy_last_start)
            metrics.page_loads += 1
            session.pages_loaded += 1
            if session.proxied:
                metrics.proxy_requests += 1
            try:
                response = await page.goto(
                    url, wait_until="domcontentloaded", timeout=settings.page_timeout_s * 1000
                )
            except PlaywrightError as error:  # refused, proxy down, tunnel failed, timeout
                if session.proxied:
                    metrics.proxy_failures += 1
                if "ERR_PROXY" in str(error) or "ERR_TUNNEL" in str(error):
                    # The request never reached the site: politeness owes it nothing.
                    worker.refund(session)
                detail = redact_secrets(str(error).splitlines()[0], secrets=self.pool.secrets)[:200]
                return block(BlockSignal(BlockKind.CONNECTION_ERROR, detail))
            http_status = response.status if response is not None else 0
            parsed: PageResult | None = None
            waf_seen = False
            for _round in range(_MAX_INTERSTITIALS + 1):
                html = await _settled_content(page, settings.page_timeout_s)
                # The latest main-frame document decides (a WAF or captcha page may have moved on).
                http_status = navigation["status"] or http_status
                scraped_at = datetime.now(UTC)
                context = {"source_url": url, "scraped_at": scraped_at, "proxy_id": session.proxy_id}
                # Off the event loop: a large or hostile page must not stall every other session.
                parsed, signal = await asyncio.to_thread(
                    _parse_and_classify, html, http_status, url, page.url, context
                )
                if signal is None:
                    break
                if signal.kind is BlockKind.WAF_CHALLENGE:
                    waf_seen = True
                    metrics.blocks[BlockKind.WAF_CHALLENGE.value] += 1
                    if not await self._wait_for_waf(page):
                        metrics.waf_not_cleared += 1
                        signal = BlockSignal(BlockKind.WAF_CHALLENGE, "WAF page not cleared in time")
                        return _Load(status="waf_challenge", block=signal)  # counted just above
                    metrics.waf_cleared += 1
                    continue
                if signal.kind is BlockKind.CAPTCHA and signal.captcha is not None:
                    metrics.blocks[BlockKind.CAPTCHA.value] += 1
                    metrics.captchas_seen += 1
                    if await self._solve_captcha(page, signal, metrics):
                        continue
                    return _Load(status="captcha", block=signal)  # counted just above
                return block(signal)
            else:
                return block(
                    BlockSignal(BlockKind.CAPTCHA, "one interstitial after another"), "interstitials"
                )

            if navigation["count"] > 1 or waf_seen:
                # The tab reloaded during this load. A WAF page whose JavaScript solved its proof
                # of work before we could read it leaves one trace: a new clearance cookie.
                cookie = await _waf_cookie(session.context)
                if cookie is not None and cookie != session.waf_cookie and not waf_seen:
                    metrics.blocks[BlockKind.WAF_CHALLENGE.value] += 1
                    metrics.waf_cleared += 1
                session.waf_cookie = cookie
            assert parsed is not None
            if http_status >= 400 and parsed.status is not PageStatus.OK:
                # A 404/410-like refusal that is not a known block: the site's final word.
                outcome.rejects.append(RejectedRecord(url, f"HTTP {http_status}", html))
                metrics.records_rejected += 1
                return _Load(final=True, status=f"http_{http_status}")
            if parsed.status is PageStatus.BROKEN:
                outcome.rejects.append(RejectedRecord(url, f"page state unreadable: {parsed.error}", html))
                metrics.records_rejected += 1
                return _Load(final=True, status="broken")
            if parsed.status is not PageStatus.OK:
                # Private or missing content is the site's answer, not a scraper failure.
                return _Load(ok=True, status=parsed.status.value)
            # The schema tally itself stays on the loop: other sessions' coroutines update it too.
            video_item = await asyncio.to_thread(_video_item_of, html, parsed)
            if video_item is not None:
                outcome.schema.add(video_item)
            for post in parsed.posts:
                collected.setdefault(post.post_id, post)
            _record_bad_items(outcome, url, parsed.bad_items)
            if target.kind in ("profile", "hashtag"):
                stopped = await self._follow_item_lists(
                    worker, session, page, target, parsed, lists, collected, outcome, context
                )
                if stopped is not None:
                    if stopped.kind is BlockKind.CONNECTION_ERROR and session.proxied:
                        metrics.proxy_failures += 1  # the proxy dropped the page's list request
                    if stopped.kind is BlockKind.CAPTCHA:
                        metrics.captchas_seen += 1
                        metrics.captchas_unsolvable += 1
                    return block(stopped)
            return _Load(ok=True, status="ok")
        finally:
            # Handlers belong to this load only; the tab stays for the session's next load.
            page.remove_listener("response", on_response)
            page.remove_listener("requestfailed", on_request_failed)

    async def _wait_for_waf(self, page: Any) -> bool:
        """Let the WAF page's own JavaScript solve its proof of work and reload into the page."""
        try:
            # Cleared = the WAF document is gone. What replaced it (the page, a captcha, a 403)
            # is classified by the caller like any other load.
            await page.wait_for_function(
                "() => !document.getElementById('wci') && document.readyState !== 'loading'",
                timeout=max(self.settings.waf_wait_s, 0.001) * 1000,
                polling=100,
            )
            await page.wait_for_load_state("domcontentloaded", timeout=self.settings.page_timeout_s * 1000)
            return True
        except Exception:  # timed out, or the page died: not cleared
            return False

    async def _solve_captcha(self, page: Any, signal: BlockSignal, metrics: ScrapeMetrics) -> bool:
        """True when the captcha was solved and the site accepted it (the page moved on)."""
        challenge = signal.captcha
        assert challenge is not None
        if self.captcha is None or not challenge.kind.solvable or not self.captcha.active:
            metrics.captchas_unsolvable += 1
            return False
        result = await self.captcha.solve(page, challenge)
        if not result.submitted:  # unsupported, solving off, over budget, or the service failed
            metrics.captchas_unsolvable += 1
            return False
        try:
            html = await _settled_content(page, self.settings.page_timeout_s)
        except Exception:  # the tab died after submitting: not a verdict on the solution
            metrics.captchas_unsolvable += 1
            return False
        if detect_captcha(html) is not None:
            metrics.captchas_rejected += 1
            await self.captcha.report_incorrect(result)
            return False
        metrics.captchas_solved += 1
        return True

    async def _follow_item_lists(
        self,
        worker: _Worker,
        session: BrowserSession,
        page: Any,
        target: Target,
        parsed: PageResult,
        lists: asyncio.Queue[tuple[int, Any]],
        collected: dict[str, Post],
        outcome: ScrapeOutcome,
        context: dict[str, Any],
    ) -> BlockSignal | None:
        """Read the page's own item-list responses, scrolling for more until hasMore ends.

        Returns the block that stopped it, or None when the list was read to its end (or to
        ``max_posts``).
        """
        expected_total = _expected_items(parsed)
        first = True
        while len(collected) < target.max_posts:
            try:
                http_status, payload = await asyncio.wait_for(lists.get(), self.settings.list_wait_s)
            except TimeoutError:
                if expected_total == 0 and first:
                    return None
                return BlockSignal(BlockKind.EMPTY_200, "no item-list response from the page")
            if http_status == _LIST_REQUEST_FAILED:
                return BlockSignal(BlockKind.CONNECTION_ERROR, "the page's item-list request failed")
            if payload is None and http_status < 400:
                outcome.rejects.append(
                    RejectedRecord(context["source_url"], f"item list HTTP {http_status} was not JSON", "")
                )
                outcome.metrics.records_rejected += 1
                return BlockSignal(BlockKind.EMPTY_200, "item list was not JSON")
            items_expected = expected_total != 0 or not first
            signal = classify_item_list(http_status, payload, items_expected=items_expected)
            if signal is not None:
                return signal
            if not isinstance(payload, dict):
                return BlockSignal(BlockKind.EMPTY_200, f"item list HTTP {http_status} without a JSON object")
            outcome.schema.add_all(item for item in payload.get("itemList") or [] if isinstance(item, dict))
            listing = await asyncio.to_thread(parse_item_list, payload, backend="browser", **context)
            if listing.error is not None:
                outcome.rejects.append(RejectedRecord(context["source_url"], listing.error, _dump(payload)))
                outcome.metrics.records_rejected += 1
                return BlockSignal(BlockKind.EMPTY_200, "item list unreadable")
            _record_bad_items(outcome, context["source_url"], listing.bad_items)
            for post in listing.posts:
                collected.setdefault(post.post_id, post)
            first = False
            if listing.status_code not in (0, None):
                return None  # the site's own answer (e.g. user not found): nothing more to read
            if not listing.has_more:
                return None
            if len(collected) >= target.max_posts:
                return None
            await worker.space(session, self.settings, self._proxy_last_start)
            await page.mouse.wheel(0, 6000)
            await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        return None


async def _settled_content(page: Any, timeout_s: float) -> str:
    """``page.content()``, waiting out a navigation in flight (a WAF reload, a captcha redirect)."""
    for _attempt in range(3):
        try:
            return await page.content()
        except Exception:  # "execution context was destroyed": a navigation is happening
            with contextlib.suppress(Exception):
                await page.wait_for_load_state("domcontentloaded", timeout=timeout_s * 1000)
    return await page.content()


async def _waf_cookie(context: Any) -> str | None:
    try:
        cookies = await context.cookies()
    except Exception:  # the context is closing: no evidence either way
        return None
    return next((c.get("value") for c in cookies if c.get("name") == WAF_COOKIE), None)


def _expected_items(parsed: PageResult) -> int | None:
    """How many videos the page header promises (None: unknown, so items are expected)."""
    if parsed.user is not None and parsed.user.video_count is not None:
        return parsed.user.video_count
    if parsed.challenge is not None and parsed.challenge.video_count is not None:
        return parsed.challenge.video_count
    return None


def _record_bad_items(outcome: ScrapeOutcome, url: str, bad_items: Sequence[tuple[Any, str]]) -> None:
    for item, reason in bad_items:
        outcome.rejects.append(RejectedRecord(url, reason, _dump(item)))
    outcome.metrics.records_rejected += len(bad_items)


def _captcha_counts(solver: CaptchaSolver | None) -> tuple[int, float]:
    if solver is None:
        return 0, 0.0
    return solver.stats.tasks_created, solver.stats.cost_usd


def _parse_and_classify(
    html: str, http_status: int, requested_url: str, final_url: str, context: dict[str, Any]
) -> tuple[PageResult, BlockSignal | None]:
    """Parse a loaded page and classify it: run in a worker thread (linear work, never raises)."""
    parsed = parse_page(html, backend="browser", **context)
    signal = classify_page(
        http_status=http_status, requested_url=requested_url, final_url=final_url, html=html, page=parsed
    )
    return parsed, signal


def _dump(item: Any) -> str:
    try:
        return json.dumps(item, default=str, sort_keys=True)
    except (RecursionError, ValueError, TypeError) as error:
        # A response nested past the recursion limit (or with keys sort cannot order): keep what
        # can be said about it rather than crash the scrape.
        return json.dumps({"unserialisable": type(item).__name__, "reason": type(error).__name__})


def _video_item_of(html: str, parsed: PageResult) -> dict[str, Any] | None:
    """Video pages carry their item in the page state: its schema is tallied too."""
    if not parsed.posts:
        return None
    from ingest_platform.scraping.tiktok_page import extract_state

    try:
        scope = extract_state(html).scopes.get("webapp.video-detail")
    except ValueError:  # already reported by parse_page
        return None
    info = scope.get("itemInfo") if isinstance(scope, dict) else None
    item = info.get("itemStruct") if isinstance(info, dict) else None
    return item if isinstance(item, dict) else None


def scrape_sync(
    targets: Sequence[Target],
    settings: BrowserSettings,
    proxies: Sequence[ProxyEndpoint] | ProxyPool = (),
    *,
    progress: Callable[[str], None] | None = None,
    captcha: CaptchaSolver | None = None,
    raise_on_exhausted: bool = False,
    rng: random.Random | None = None,
) -> ScrapeOutcome:
    """Blocking entry point for callers without an event loop (Dagster assets, the CLI).

    ``proxies``: endpoints (a pool is built with ``settings``' quarantine times) or a ready
    :class:`ProxyPool`; empty means direct. ``captcha``: a solver for reCAPTCHA/hCaptcha/image
    captchas (None: rotate on every captcha). With ``raise_on_exhausted`` a run whose pool ran dry
    raises :class:`ProxyPoolExhausted` carrying ``partial`` (this outcome) and
    ``remaining_targets``; otherwise those are on the returned outcome.
    """
    scraper = BrowserScraper(settings, proxies, captcha=captcha, rng=rng, progress=progress)
    return asyncio.run(scraper.scrape(targets, raise_on_exhausted=raise_on_exhausted))
