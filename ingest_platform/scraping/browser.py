"""Playwright + Chromium scraper for TikTok pages (pure library, no Dagster).

It reads each page the way a person's browser does: the server-rendered rehydration JSON, then
the item-list responses the page's own JavaScript fetches (intercepted, never forged, since the
real site signs them). Playwright is imported lazily so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ingest_platform.models import Post
from ingest_platform.scraping.metrics import ScrapeMetrics
from ingest_platform.scraping.proxy_config import ProxyEndpoint, redact_secrets
from ingest_platform.scraping.targets import Target
from ingest_platform.scraping.tiktok_page import PageStatus, parse_item_list, parse_page

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
)

ITEM_LIST_PATHS = ("/api/post/item_list/", "/api/challenge/item_list/")


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
    base_url: str = "https://www.tiktok.com"
    executable_path: str | None = None
    headless: bool = True
    # Politeness: random spacing between the requests this scraper causes (page loads, load-more).
    min_delay_s: float = 3.0
    max_delay_s: float = 8.0
    page_timeout_s: float = 30.0
    # How long to wait for the page's own item-list request before calling the page empty.
    list_wait_s: float = 10.0
    concurrent_sessions: int = 2

    def __post_init__(self) -> None:
        if self.min_delay_s < 0 or self.max_delay_s < self.min_delay_s:
            raise ValueError(
                "delays must satisfy 0 <= min_delay_s <= max_delay_s, "
                f"got {self.min_delay_s}..{self.max_delay_s}"
            )
        if self.concurrent_sessions < 1:
            raise ValueError("concurrent_sessions must be at least 1")


@dataclass
class RejectedRecord:
    """A page or item the scraper could not turn into posts, kept with its reason."""

    source_url: str
    reason: str
    payload: str


@dataclass
class TargetOutcome:
    target: str
    url: str
    status: str
    posts: int
    proxy_id: str | None


@dataclass
class ScrapeOutcome:
    posts: list[Post] = field(default_factory=list)
    rejects: list[RejectedRecord] = field(default_factory=list)
    metrics: ScrapeMetrics = field(default_factory=ScrapeMetrics)
    targets: list[TargetOutcome] = field(default_factory=list)


def _user_agent_for(browser_version: str) -> str:
    # Headless Chromium announces "HeadlessChrome/N": real sites block on that string alone.
    major = browser_version.split(".")[0] or "120"
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )


class _Session:
    """One browser context bound to one proxy for its whole life (sticky session)."""

    def __init__(self, context: Any, proxy: ProxyEndpoint | None) -> None:
        self.context = context
        self.proxy = proxy

    @property
    def proxy_id(self) -> str | None:
        return self.proxy.proxy_id if self.proxy else None


class BrowserScraper:
    """Scrapes targets with N concurrent sticky sessions in one Chromium."""

    def __init__(
        self,
        settings: BrowserSettings,
        proxies: Sequence[ProxyEndpoint] = (),
        *,
        rng: random.Random | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.proxies = list(proxies)
        self._rng = rng or random.Random()
        self._progress = progress or logger.info

    async def _polite_delay(self) -> None:
        delay = self._rng.uniform(self.settings.min_delay_s, self.settings.max_delay_s)
        if delay > 0:
            await asyncio.sleep(delay)

    async def scrape(self, targets: Sequence[Target]) -> ScrapeOutcome:
        from playwright.async_api import async_playwright

        outcome = ScrapeOutcome()
        if not targets:
            return outcome
        executable = resolve_browser_executable(self.settings.executable_path)
        queue: asyncio.Queue[Target] = asyncio.Queue()
        for target in targets:
            queue.put_nowait(target)
        sessions_wanted = min(self.settings.concurrent_sessions, len(targets))

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable,
                headless=self.settings.headless,
                args=list(CHROMIUM_ARGS),
            )
            try:
                user_agent = _user_agent_for(browser.version)

                async def worker(index: int) -> None:
                    proxy = self.proxies[index % len(self.proxies)] if self.proxies else None
                    context = await browser.new_context(
                        proxy=proxy.playwright_proxy() if proxy else None,
                        user_agent=user_agent,
                        locale="en-US",
                        viewport={"width": 1366, "height": 768},
                    )
                    outcome.metrics.sessions_started += 1
                    session = _Session(context, proxy)
                    try:
                        while True:
                            try:
                                target = queue.get_nowait()
                            except asyncio.QueueEmpty:
                                return
                            await self._scrape_target(session, target, outcome)
                    finally:
                        await context.close()

                await asyncio.gather(*(worker(i) for i in range(sessions_wanted)))
            finally:
                await browser.close()
        return outcome

    async def _scrape_target(self, session: _Session, target: Target, outcome: ScrapeOutcome) -> None:
        url = target.url(self.settings.base_url)
        metrics = outcome.metrics
        page = await session.context.new_page()
        lists: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

        async def on_response(response: Any) -> None:
            if urlparse(response.url).path not in ITEM_LIST_PATHS:
                return
            try:
                payload = await response.json()
            except Exception:  # the page got a body that is not JSON: keep it as a reject
                payload = None
            await lists.put((response.status, payload))

        page.on("response", on_response)
        status_label = "failed"
        collected: dict[str, Post] = {}
        try:
            await self._polite_delay()
            metrics.pages_attempted += 1
            if session.proxy is not None:
                metrics.proxy_requests += 1
            try:
                response = await page.goto(
                    url, wait_until="domcontentloaded", timeout=self.settings.page_timeout_s * 1000
                )
            except Exception as error:  # connection refused, proxy down, timeout
                if session.proxy is not None:
                    metrics.proxy_failures += 1
                metrics.blocks["connection_error"] += 1
                outcome.rejects.append(
                    RejectedRecord(url, f"navigation failed: {redact_secrets(str(error))[:300]}", "")
                )
                status_label = "connection_error"
                return
            http_status = response.status if response is not None else 0
            if http_status in (403, 429):
                metrics.blocks[f"http_{http_status}"] += 1
                status_label = f"http_{http_status}"
                return
            if urlparse(page.url).path.rstrip("/").endswith("/login"):
                metrics.blocks["login_redirect"] += 1
                status_label = "login_redirect"
                return

            html = await page.content()
            scraped_at = datetime.now(UTC)
            context = {"source_url": url, "scraped_at": scraped_at, "proxy_id": session.proxy_id}
            result = parse_page(html, backend="browser", **context)
            status_label = result.status.value
            if result.status is PageStatus.BROKEN:
                outcome.rejects.append(RejectedRecord(url, f"page state unreadable: {result.error}", html))
                return
            if result.status is PageStatus.IP_BLOCKED:
                metrics.blocks["status_10204"] += 1
                return
            if result.status is PageStatus.EMPTY_SHELL:
                metrics.blocks["empty_200"] += 1
                return
            if result.status is not PageStatus.OK:
                # Private or missing content is an answer, not a scraper failure.
                metrics.pages_succeeded += 1
                return

            for post in result.posts:
                collected[post.post_id] = post
            if target.kind in ("profile", "hashtag"):
                got_list = await self._follow_item_lists(page, target, lists, collected, outcome, context)
                if not got_list:
                    metrics.blocks["empty_200"] += 1
                    status_label = "empty_item_list"
                    return
            metrics.pages_succeeded += 1
        finally:
            posts = list(collected.values())[: target.max_posts]
            outcome.posts.extend(posts)
            metrics.posts_collected += len(posts)
            outcome.targets.append(
                TargetOutcome(target.text, url, status_label, len(posts), session.proxy_id)
            )
            self._progress(f"{target.text}: {status_label}, {len(posts)} posts")
            await page.close()

    async def _follow_item_lists(
        self,
        page: Any,
        target: Target,
        lists: asyncio.Queue[tuple[int, Any]],
        collected: dict[str, Post],
        outcome: ScrapeOutcome,
        context: dict[str, Any],
    ) -> bool:
        """Read the page's own item-list responses, scrolling for more until hasMore ends."""
        got_items = False
        while len(collected) < target.max_posts:
            try:
                http_status, payload = await asyncio.wait_for(lists.get(), self.settings.list_wait_s)
            except TimeoutError:
                return got_items
            if payload is None or not isinstance(payload, dict):
                outcome.rejects.append(
                    RejectedRecord(context["source_url"], f"item list HTTP {http_status} was not JSON", "")
                )
                return got_items
            listing = parse_item_list(payload, backend="browser", **context)
            for item, reason in listing.bad_items:
                outcome.rejects.append(RejectedRecord(context["source_url"], reason, _dump(item)))
            outcome.metrics.records_rejected += len(listing.bad_items)
            if listing.posts:
                got_items = True
            for post in listing.posts:
                collected.setdefault(post.post_id, post)
            if not listing.has_more:
                # A last page that is empty still proves the list was served.
                return got_items or listing.status_code == 0
            await self._polite_delay()
            await page.mouse.wheel(0, 6000)
            await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        return got_items


def _dump(item: Any) -> str:
    import json

    return json.dumps(item, default=str, sort_keys=True)


def scrape_sync(
    targets: Sequence[Target],
    settings: BrowserSettings,
    proxies: Sequence[ProxyEndpoint] = (),
    *,
    progress: Callable[[str], None] | None = None,
) -> ScrapeOutcome:
    """Blocking entry point for callers without an event loop (Dagster assets, the CLI)."""
    return asyncio.run(BrowserScraper(settings, proxies, progress=progress).scrape(targets))
