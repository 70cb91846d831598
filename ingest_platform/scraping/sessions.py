"""Sticky sessions: one proxy, one browser context and one fingerprint for a session's whole life.

A site ties its trust (cookies, WAF clearance, rate-limit counters, bans) to the combination of
IP and browser identity, so a session never changes either: when it is blocked it is *retired*
(context closed, proxy lease handed back with the failure already scored in the pool) and the
page is retried on a fresh session, which gets a new proxy and a new fingerprint.

Two sessions open at once on the same proxy get different user agents when the fingerprint
factory can offer one: with the same IP and user agent they would be one client to the site,
making requests at twice the rate and sharing one request budget and one ban.

Page traffic is measured per session for the ``bytes_via_proxies`` metric: on every finished
request the context reports ``await request.sizes()`` (request headers + body, response headers +
body, as Chromium's network stack counted them). Requests Chromium makes outside any page
(component updates and the like) never reach a context's events and are not counted; neither are
failed requests. The count is therefore the bytes of the scraper's own page traffic, which is what
a per-GB residential proxy bills for, give or take TLS and CONNECT overhead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ingest_platform.scraping.fingerprints import FingerprintFactory, SessionFingerprint
from ingest_platform.scraping.proxy_pool import ProxyLease, ProxyPool

__all__ = ["BrowserSession", "SessionManager"]

logger = logging.getLogger(__name__)

# Closing a context waits this long for outstanding request.sizes() calls.
_SIZES_DRAIN_TIMEOUT_S = 2.0


@dataclass
class BrowserSession:
    """One sticky session. ``context`` is a Playwright ``BrowserContext``."""

    session_id: str
    lease: ProxyLease
    fingerprint: SessionFingerprint
    context: Any
    page: Any = None  # the session's one tab, opened on first use
    waf_cookie: str | None = None  # the last WAF clearance cookie seen in this context
    pages_loaded: int = 0
    successes: int = 0
    bytes_transferred: int = 0
    retired_reason: str | None = None
    # Politeness: when this session may start its next request (time.monotonic()).
    next_start: float = 0.0
    last_start: float = 0.0
    _size_tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def proxy_id(self) -> str:
        return self.lease.proxy_id

    @property
    def proxied(self) -> bool:
        return not self.lease.direct

    def __repr__(self) -> str:
        return f"BrowserSession({self.session_id}, {self.proxy_id}, {self.fingerprint.describe()})"


class SessionManager:
    """Opens and retires sessions on one Playwright ``Browser``."""

    def __init__(
        self,
        browser: Any,
        pool: ProxyPool,
        fingerprints: FingerprintFactory,
        *,
        stealth: bool = True,
        measure_bytes: bool = True,
    ) -> None:
        self.browser = browser
        self.pool = pool
        self.fingerprints = fingerprints
        self.stealth = stealth
        self.measure_bytes = measure_bytes
        self._ids = itertools.count(1)
        self.opened = 0  # contexts opened, pre-warmed spares included
        self.started = 0  # sessions that loaded at least one page (counted when they close)
        self.retired = 0
        self.bytes_via_proxies = 0
        self.bytes_direct = 0
        # (proxy, user agent) identities a site has banned or challenged: never reused.
        self._burnt: dict[str, set[str]] = {}
        # User agents of the sessions open right now, per proxy (a count: rare collisions happen
        # when every identity on a proxy is live or burnt).
        self._live: dict[str, Counter[str]] = {}

    async def open(self, *, avoid: set[str] | frozenset[str] = frozenset()) -> BrowserSession:
        """A new session on the healthiest proxy (raises ``ProxyPoolExhausted``)."""
        lease = self.pool.acquire(avoid=avoid)
        fingerprint = self.fingerprints.generate(avoid_user_agents=self._identities_in_use(lease.proxy_id))
        # Claimed before the first await: sessions opened concurrently must see each other.
        live = self._live.setdefault(lease.proxy_id, Counter())
        live[fingerprint.user_agent] += 1
        options = fingerprint.context_options()
        if lease.proxy is not None:
            options["proxy"] = lease.proxy.playwright_proxy()
        try:
            context = await self.browser.new_context(**options)
            if self.stealth:
                await fingerprint.stealth().apply_stealth_async(context)
        except BaseException:
            live[fingerprint.user_agent] -= 1
            self.pool.release(lease)
            raise
        session = BrowserSession(
            session_id=f"s-{next(self._ids)}", lease=lease, fingerprint=fingerprint, context=context
        )
        if self.measure_bytes:
            context.on("requestfinished", lambda request: self._count_bytes(session, request))
        self.opened += 1
        logger.debug("opened %r", session)
        return session

    def _identities_in_use(self, proxy_id: str) -> set[str]:
        """User agents a new session on ``proxy_id`` should not take: burnt ones and live ones."""
        live = self._live.get(proxy_id, Counter())
        return self._burnt.get(proxy_id, set()) | {agent for agent, count in live.items() if count > 0}

    def _count_bytes(self, session: BrowserSession, request: Any) -> None:
        async def measure() -> None:
            try:
                sizes = await request.sizes()
            except Exception:  # the page or context went away first: nothing to count
                return
            session.bytes_transferred += int(
                sizes.get("requestHeadersSize", 0)
                + sizes.get("requestBodySize", 0)
                + sizes.get("responseHeadersSize", 0)
                + sizes.get("responseBodySize", 0)
            )

        task = asyncio.get_running_loop().create_task(measure())
        session._size_tasks.add(task)
        task.add_done_callback(session._size_tasks.discard)

    async def retire(self, session: BrowserSession, reason: str, *, burnt: bool = True) -> None:
        """Retire a blocked (or worn-out) session: it is never used again.

        ``burnt``: the site now distrusts this IP + user agent (ban, captcha owed, rate limit), so
        later sessions on the same proxy get another identity.
        """
        session.retired_reason = reason
        self.retired += 1
        if burnt:
            self._burnt.setdefault(session.proxy_id, set()).add(session.fingerprint.user_agent)
        await self.close(session)

    def burnt_identities(self, proxy_id: str) -> frozenset[str]:
        return frozenset(self._burnt.get(proxy_id, ()))

    async def close(self, session: BrowserSession) -> None:
        """Close the context, account its bytes and hand the proxy lease back (idempotent)."""
        if session.context is None:
            return
        context, session.context, session.page = session.context, None, None
        self._live.get(session.proxy_id, Counter())[session.fingerprint.user_agent] -= 1
        if session.pages_loaded:
            self.started += 1
        if session._size_tasks:
            _done, pending = await asyncio.wait(set(session._size_tasks), timeout=_SIZES_DRAIN_TIMEOUT_S)
            for task in pending:
                task.cancel()
        if session.proxied:
            self.bytes_via_proxies += session.bytes_transferred
        else:
            self.bytes_direct += session.bytes_transferred
        try:
            await context.close()
        except Exception:  # the browser may already be gone at shutdown
            logger.debug("closing %s failed", session.session_id, exc_info=True)
        finally:
            self.pool.release(session.lease)
