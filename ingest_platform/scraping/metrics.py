"""Run metrics of a scrape: what the UI plots and the asset checks judge.

Plain data, no Dagster: the Dagster layer turns ``as_metadata()`` into numeric metadata.

Definitions (the browser scraper fills them; see ``browser.py``):

- ``pages_attempted`` / ``pages_succeeded``: target pages (one per target), counted once however
  many loads a page took; a page succeeds when it ends with the site's real answer (content, or a
  private / not-found status). ``success_rate`` is their ratio.
- ``page_loads``: every navigation, retries included; ``retries`` = loads beyond a page's first.
- ``blocks[kind]``: block answers by kind (``http_403``, ``http_429``, ``status_10204``,
  ``login_redirect``, ``waf_challenge``, ``captcha``, ``empty_200``, ``connection_error``), one per
  occurrence. ``waf_challenge`` counts every WAF page seen; ``waf_cleared`` / ``waf_not_cleared``
  split them by whether the page's own JavaScript got through in time.
- ``proxy_requests``: page loads sent through a proxy; ``proxy_failures``: those that failed at the
  connection level (proxy dead, refusing, timing out); ``proxy_failure_rate`` their ratio.
- ``captchas_seen`` (every captcha met: page overlays and list ``verify`` answers) =
  ``captchas_solved`` (solutions the site accepted) + ``captchas_rejected`` (solutions the site
  refused: reported to Anti-Captcha) + ``captchas_unsolvable`` (no solution submitted: TikTok's
  slider or another kind without a solver task, solving off or over budget, the service failed;
  all handled by rotating session and proxy); ``captcha_tasks`` (tasks created) and
  ``captcha_cost_usd`` (the ``cost`` the service reported for finished tasks).
- ``bytes_via_proxies``: request + response bytes (headers and bodies, from Playwright's
  ``request.sizes()``) of page traffic through proxies.
- ``sessions_started`` (sessions that loaded at least one page; an unused pre-warmed spare does
  not count) / ``sessions_retired`` (blocked, or worn out by ``max_pages_per_session``);
  ``proxies_quarantined`` (quarantine events).
- ``targets_unfinished``: targets left for another backend because the proxy pool ran dry
  (counted as attempted, not succeeded); ``browser_errors``: loads that failed inside the browser
  (a crashed tab), retried on a fresh session.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields


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
    page_loads: int = 0
    retries: int = 0
    waf_cleared: int = 0
    waf_not_cleared: int = 0
    captchas_rejected: int = 0
    captchas_unsolvable: int = 0
    captcha_tasks: int = 0
    proxies_quarantined: int = 0
    targets_unfinished: int = 0
    browser_errors: int = 0

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
        for spec in fields(self):
            if spec.name == "blocks":
                continue
            setattr(self, spec.name, getattr(self, spec.name) + getattr(other, spec.name))
        self.blocks.update(other.blocks)
        return self

    def as_metadata(self) -> dict[str, float | int]:
        """Flat numeric metrics, named for the UI's plots."""
        data: dict[str, float | int] = {
            "pages_attempted": self.pages_attempted,
            "pages_succeeded": self.pages_succeeded,
            "success_rate": round(self.success_rate, 4),
            "page_loads": self.page_loads,
            "retries": self.retries,
            "posts_collected": self.posts_collected,
            "records_rejected": self.records_rejected,
            "blocks_total": sum(self.blocks.values()),
            "waf_cleared": self.waf_cleared,
            "waf_not_cleared": self.waf_not_cleared,
            "proxy_requests": self.proxy_requests,
            "proxy_failures": self.proxy_failures,
            "proxy_failure_rate": round(self.proxy_failure_rate, 4),
            "proxies_quarantined": self.proxies_quarantined,
            "captchas_seen": self.captchas_seen,
            "captchas_solved": self.captchas_solved,
            "captchas_rejected": self.captchas_rejected,
            "captchas_unsolvable": self.captchas_unsolvable,
            "captcha_solve_rate": round(self.captcha_solve_rate, 4),
            "captcha_tasks": self.captcha_tasks,
            "captcha_cost_usd": round(self.captcha_cost_usd, 6),
            "bytes_via_proxies": self.bytes_via_proxies,
            "sessions_started": self.sessions_started,
            "sessions_retired": self.sessions_retired,
            "targets_unfinished": self.targets_unfinished,
            "browser_errors": self.browser_errors,
        }
        for kind, count in sorted(self.blocks.items()):
            data[f"blocks_{kind}"] = count
        return data
