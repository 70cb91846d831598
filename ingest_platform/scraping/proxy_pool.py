"""A health-scored proxy pool with exponential quarantine, after crawlee's session scoring.

Every proxy carries an **error score** (lower is healthier):

- a block or failure adds the weight of its kind (:data:`DEFAULT_ERROR_WEIGHTS`: an IP ban weighs
  more than an empty list);
- a success multiplies the score by ``success_decay`` (0.5 by default), so a proxy that recovers
  earns its place back gradually instead of being forgiven at once.

Some kinds mean "this IP is burnt for now" (HTTP 403 and 429, statusCode 10204, a captcha, a
connection error): they put the proxy in **quarantine** for ``base * 2**(strikes-1)`` seconds,
capped at ``quarantine_max_s``, where ``strikes`` counts quarantines since the proxy's last
success. A score reaching ``max_error_score`` quarantines the proxy as well, whatever the kind.

:meth:`ProxyPool.acquire` hands out the healthiest proxy that is not quarantined, preferring one no
other session is using (sticky sessions: one proxy per browser context). When every proxy is in
quarantine it raises :class:`ProxyPoolExhausted`, which says when the first one comes back: the
caller either waits that long or hands the rest of the work to another backend (Apify).

With no proxies the pool holds a single *direct* slot (``proxy is None``): the same scoring and
quarantine apply to the machine's own IP, which is exactly the back-off a direct scraper needs.

Nothing here renders a credential: proxies are named by ``proxy_id`` / ``redacted_url`` only.
Pure Python, no Dagster, no I/O; time comes from an injectable clock so tests run instantly.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ingest_platform.scraping.blocking import BlockKind
from ingest_platform.scraping.proxy_config import ProxyEndpoint

__all__ = [
    "DEFAULT_ERROR_WEIGHTS",
    "DEFAULT_QUARANTINE_KINDS",
    "DIRECT_ID",
    "PoolSettings",
    "ProxyLease",
    "ProxyPool",
    "ProxyPoolExhausted",
    "ProxySnapshot",
]

DIRECT_ID = "direct"


# Heavier weight = stronger evidence that the IP itself is burnt.
DEFAULT_ERROR_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        BlockKind.HTTP_403: 3.0,
        BlockKind.STATUS_10204: 3.0,
        BlockKind.HTTP_429: 2.0,
        BlockKind.CONNECTION_ERROR: 2.0,
        BlockKind.CAPTCHA: 1.5,
        BlockKind.LOGIN_REDIRECT: 1.5,
        BlockKind.WAF_CHALLENGE: 1.0,
        BlockKind.EMPTY_200: 1.0,
    }
)
DEFAULT_QUARANTINE_KINDS: frozenset[str] = frozenset(
    {
        BlockKind.HTTP_403,
        BlockKind.HTTP_429,
        BlockKind.STATUS_10204,
        BlockKind.CAPTCHA,
        BlockKind.CONNECTION_ERROR,
    }
)


@dataclass(frozen=True)
class PoolSettings:
    """Scoring and quarantine knobs. Production defaults: 30 s doubling up to 30 min."""

    quarantine_base_s: float = 30.0
    quarantine_max_s: float = 1800.0
    success_decay: float = 0.5
    max_error_score: float = 6.0
    error_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_ERROR_WEIGHTS)
    quarantine_kinds: frozenset[str] = DEFAULT_QUARANTINE_KINDS
    # An unknown failure kind still counts, lightly.
    default_error_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.quarantine_base_s < 0 or self.quarantine_max_s < self.quarantine_base_s:
            raise ValueError(
                "quarantine times must satisfy 0 <= quarantine_base_s <= quarantine_max_s, got "
                f"{self.quarantine_base_s}..{self.quarantine_max_s}"
            )
        if not 0 <= self.success_decay <= 1:
            raise ValueError(f"success_decay must be within [0, 1], got {self.success_decay}")
        if self.max_error_score <= 0:
            raise ValueError(f"max_error_score must be positive, got {self.max_error_score}")

    def cool_down_s(self, strikes: int) -> float:
        """Quarantine length for the ``strikes``-th quarantine in a row (1-based)."""
        if strikes < 1:
            return 0.0
        # min() before the power would still overflow for absurd strike counts: cap the exponent.
        return min(self.quarantine_base_s * (2.0 ** min(strikes - 1, 60)), self.quarantine_max_s)

    def weight(self, kind: str) -> float:
        return float(self.error_weights.get(kind, self.default_error_weight))


class ProxyPoolExhausted(RuntimeError):
    """Every proxy is quarantined. ``retry_after_s`` is when the first one is usable again.

    The message names only counts and times, never a proxy's credentials. The browser scraper may
    attach what it had done so far (``partial``) and the targets it did not finish
    (``remaining_targets``), so a fallback backend can take over exactly those.
    """

    def __init__(self, message: str, *, retry_after_s: float, pool_size: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.pool_size = pool_size
        self.partial: object | None = None
        self.remaining_targets: list[object] = []


@dataclass
class _ProxyState:
    endpoint: ProxyEndpoint | None
    order: int
    score: float = 0.0
    strikes: int = 0
    quarantined_until: float = 0.0
    in_use: int = 0
    leases: int = 0
    successes: int = 0
    failures: int = 0
    quarantines: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def proxy_id(self) -> str:
        return self.endpoint.proxy_id if self.endpoint is not None else DIRECT_ID


@dataclass(frozen=True)
class ProxyLease:
    """One session's hold on a proxy; hand it back with ``release`` when the session ends."""

    proxy: ProxyEndpoint | None
    lease_id: int

    @property
    def proxy_id(self) -> str:
        return self.proxy.proxy_id if self.proxy is not None else DIRECT_ID

    @property
    def direct(self) -> bool:
        return self.proxy is None

    def __repr__(self) -> str:  # never the credentials, even by accident in a debugger/log
        return f"ProxyLease({self.proxy_id}, #{self.lease_id})"


@dataclass(frozen=True)
class ProxySnapshot:
    """Health of one proxy at a moment: safe to log and to put in metadata."""

    proxy_id: str
    redacted_url: str
    score: float
    strikes: int
    quarantined_for_s: float
    in_use: int
    leases: int
    successes: int
    failures: int
    quarantines: int
    failures_by_kind: dict[str, int]


class ProxyPool:
    """Scores proxies, quarantines burnt ones and hands out the healthiest. Thread-safe."""

    def __init__(
        self,
        proxies: Sequence[ProxyEndpoint] = (),
        settings: PoolSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or PoolSettings()
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        unique: dict[str, ProxyEndpoint] = {}
        for proxy in proxies:
            unique.setdefault(proxy.proxy_id, proxy)
        endpoints: list[ProxyEndpoint | None] = list(unique.values()) or [None]
        self._states: dict[str, _ProxyState] = {}
        for order, endpoint in enumerate(endpoints):
            state = _ProxyState(endpoint=endpoint, order=order)
            self._states[state.proxy_id] = state
        self._lease_seq = 0
        self._active: dict[int, str] = {}
        self.quarantine_events = 0

    # -- queries -------------------------------------------------------------------------------
    @property
    def direct(self) -> bool:
        """True when the pool has no proxies and hands out the machine's own connection."""
        return DIRECT_ID in self._states

    def __len__(self) -> int:
        return len(self._states)

    @property
    def secrets(self) -> list[str]:
        """Every password in the pool, for :func:`redact_secrets` on third-party error text."""
        return [
            s.endpoint.password.get_secret_value()
            for s in self._states.values()
            if s.endpoint is not None and s.endpoint.password is not None
        ]

    def available_count(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for s in self._states.values() if s.quarantined_until <= now)

    def retry_after_s(self) -> float:
        """Seconds until some proxy is usable (0 if one is usable now)."""
        now = self._clock()
        with self._lock:
            return max(0.0, min(s.quarantined_until for s in self._states.values()) - now)

    def snapshot(self) -> list[ProxySnapshot]:
        now = self._clock()
        with self._lock:
            return [
                ProxySnapshot(
                    proxy_id=s.proxy_id,
                    redacted_url=s.endpoint.redacted_url if s.endpoint is not None else DIRECT_ID,
                    score=round(s.score, 4),
                    strikes=s.strikes,
                    quarantined_for_s=round(max(0.0, s.quarantined_until - now), 3),
                    in_use=s.in_use,
                    leases=s.leases,
                    successes=s.successes,
                    failures=s.failures,
                    quarantines=s.quarantines,
                    failures_by_kind=dict(s.failures_by_kind),
                )
                for s in sorted(self._states.values(), key=lambda st: st.order)
            ]

    def score(self, proxy_id: str) -> float:
        with self._lock:
            return self._states[proxy_id].score

    def is_quarantined(self, proxy_id: str) -> bool:
        with self._lock:
            return self._states[proxy_id].quarantined_until > self._clock()

    # -- leasing -------------------------------------------------------------------------------
    def acquire(self, *, avoid: Iterable[str] = ()) -> ProxyLease:
        """Lease the healthiest usable proxy.

        Order: not quarantined; then not in ``avoid`` (e.g. the proxy a page just failed on) when
        another is usable; then unused by other sessions; then lowest error score; then least
        leased (spreads the load); ties broken at random. Raises :class:`ProxyPoolExhausted`.
        """
        avoided = set(avoid)
        now = self._clock()
        with self._lock:
            usable = [s for s in self._states.values() if s.quarantined_until <= now]
            if not usable:
                wait = min(s.quarantined_until for s in self._states.values()) - now
                size = len(self._states)
                what = "the direct connection is" if self.direct else f"all {size} proxies are"
                raise ProxyPoolExhausted(
                    f"proxy pool exhausted: {what} quarantined; the first is usable again in {wait:.1f}s",
                    retry_after_s=max(0.0, wait),
                    pool_size=size,
                )
            preferred = [s for s in usable if s.proxy_id not in avoided] or usable
            best = min(
                preferred,
                key=lambda s: (s.in_use > 0, s.score, s.leases, self._rng.random()),
            )
            best.in_use += 1
            best.leases += 1
            self._lease_seq += 1
            self._active[self._lease_seq] = best.proxy_id
            return ProxyLease(proxy=best.endpoint, lease_id=self._lease_seq)

    def release(self, lease: ProxyLease) -> None:
        """End a lease (idempotent)."""
        with self._lock:
            proxy_id = self._active.pop(lease.lease_id, None)
            if proxy_id is not None:
                state = self._states[proxy_id]
                state.in_use = max(0, state.in_use - 1)

    # -- feedback ------------------------------------------------------------------------------
    def mark_success(self, proxy_id: str) -> None:
        """A page came through: decay the error score and forget past strikes."""
        with self._lock:
            state = self._states[proxy_id]
            state.successes += 1
            state.score *= self.settings.success_decay
            state.strikes = 0

    def mark_failure(self, proxy_id: str, kind: str) -> float:
        """Record a failure; returns the quarantine applied now in seconds (0 if none)."""
        now = self._clock()
        with self._lock:
            state = self._states[proxy_id]
            state.failures += 1
            state.failures_by_kind[kind] = state.failures_by_kind.get(kind, 0) + 1
            state.score += self.settings.weight(kind)
            if kind not in self.settings.quarantine_kinds and state.score < self.settings.max_error_score:
                return 0.0
            state.strikes += 1
            cool_down = self.settings.cool_down_s(state.strikes)
            # A proxy already in quarantine keeps the later of the two release times.
            state.quarantined_until = max(state.quarantined_until, now + cool_down)
            state.quarantines += 1
            self.quarantine_events += 1
            return cool_down
