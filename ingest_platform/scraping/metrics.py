"""Run metrics of a scrape: what the UI plots and the asset checks judge.

Plain data, no Dagster: the Dagster layer turns ``as_metadata()`` into numeric metadata.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def _rate(numerator: float, denominator: float, *, empty: float) -> float:
    return numerator / denominator if denominator else empty


@dataclass
class ScrapeMetrics:
    """Counters for one scrape run; merge per-session metrics with ``merge``."""

    pages_attempted: int = 0
    pages_succeeded: int = 0
    posts_collected: int = 0
    records_rejected: int = 0
    blocks: Counter[str] = field(default_factory=Counter)
    proxy_requests: int = 0
    proxy_failures: int = 0
    captchas_seen: int = 0
    captchas_solved: int = 0
    captcha_cost_usd: float = 0.0
    bytes_via_proxies: int = 0
    sessions_started: int = 0
    sessions_retired: int = 0

    @property
    def success_rate(self) -> float:
        # No page attempted is not a failure of the scraper; the check on posts collected catches it.
        return _rate(self.pages_succeeded, self.pages_attempted, empty=1.0)

    @property
    def proxy_failure_rate(self) -> float:
        return _rate(self.proxy_failures, self.proxy_requests, empty=0.0)

    @property
    def captcha_solve_rate(self) -> float:
        return _rate(self.captchas_solved, self.captchas_seen, empty=1.0)

    def merge(self, other: ScrapeMetrics) -> ScrapeMetrics:
        for name in (
            "pages_attempted",
            "pages_succeeded",
            "posts_collected",
            "records_rejected",
            "proxy_requests",
            "proxy_failures",
            "captchas_seen",
            "captchas_solved",
            "captcha_cost_usd",
            "bytes_via_proxies",
            "sessions_started",
            "sessions_retired",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.blocks.update(other.blocks)
        return self

    def as_metadata(self) -> dict[str, float | int]:
        """Flat numeric metrics, named for the UI's plots."""
        data: dict[str, float | int] = {
            "pages_attempted": self.pages_attempted,
            "pages_succeeded": self.pages_succeeded,
            "success_rate": round(self.success_rate, 4),
            "posts_collected": self.posts_collected,
            "records_rejected": self.records_rejected,
            "blocks_total": sum(self.blocks.values()),
            "proxy_requests": self.proxy_requests,
            "proxy_failures": self.proxy_failures,
            "proxy_failure_rate": round(self.proxy_failure_rate, 4),
            "captchas_seen": self.captchas_seen,
            "captchas_solved": self.captchas_solved,
            "captcha_solve_rate": round(self.captcha_solve_rate, 4),
            "captcha_cost_usd": round(self.captcha_cost_usd, 6),
            "bytes_via_proxies": self.bytes_via_proxies,
            "sessions_started": self.sessions_started,
            "sessions_retired": self.sessions_retired,
        }
        for kind, count in sorted(self.blocks.items()):
            data[f"blocks_{kind}"] = count
        return data
