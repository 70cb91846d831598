"""What a thousand posts cost through each backend, so the choice between them is a number.

Browser backend: you pay for proxy traffic (residential proxies bill per GB) and CAPTCHA solves.
Apify backend: you pay what the run reports (``usageTotalUsd``). When a run does not report it
(e.g. runs you do not own), it is estimated from compute units and the actor's per-result price.

Prices are configuration (:class:`BackendPrices`), not facts: put your plan's numbers there. The
defaults are typical list prices at the time of writing. GB here is 10^9 bytes, as proxy vendors
bill. Everything is pure arithmetic: no Dagster, no network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "BYTES_PER_GB",
    "BackendCostReport",
    "BackendPrices",
    "apify_cost_usd",
    "browser_cost_usd",
    "cheapest",
    "cost_per_1k_posts_apify",
    "cost_per_1k_posts_browser",
]

BYTES_PER_GB = 1_000_000_000


@dataclass(frozen=True)
class BackendPrices:
    """Unit prices in USD. All configurable; negative prices are refused."""

    #: Residential proxy traffic.
    proxy_usd_per_gb: float = 8.0
    #: CAPTCHA solving, used only when the solver did not report what it actually charged.
    captcha_usd_per_1k: float = 2.0
    #: The actor's price per 1,000 results (pay-per-result actors).
    apify_usd_per_1k_results: float = 3.7
    #: Apify platform compute unit (1 GB-hour of actor memory).
    apify_usd_per_compute_unit: float = 0.4

    def __post_init__(self) -> None:
        for name in (
            "proxy_usd_per_gb",
            "captcha_usd_per_1k",
            "apify_usd_per_1k_results",
            "apify_usd_per_compute_unit",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def _per_1k(total_usd: float, posts: int) -> float | None:
    """Cost per 1,000 posts; None when nothing was collected (the ratio is undefined, not zero)."""
    if posts < 0:
        raise ValueError("posts must not be negative")
    return total_usd / posts * 1000 if posts else None


def browser_cost_usd(
    bytes_via_proxies: int,
    captcha_cost_usd: float | None = 0.0,
    *,
    captchas_solved: int = 0,
    prices: BackendPrices | None = None,
) -> tuple[float, float]:
    """``(proxy_usd, captcha_usd)`` of a browser run.

    ``captcha_cost_usd`` is what the solver reported (Anti-Captcha returns a ``cost`` per task); when
    it is None, ``captchas_solved`` is priced at ``captcha_usd_per_1k``.
    """
    prices = prices or BackendPrices()
    if bytes_via_proxies < 0:
        raise ValueError("bytes_via_proxies must not be negative")
    proxy_usd = bytes_via_proxies / BYTES_PER_GB * prices.proxy_usd_per_gb
    if captcha_cost_usd is None:
        captcha_usd = captchas_solved / 1000 * prices.captcha_usd_per_1k
    else:
        if captcha_cost_usd < 0:
            raise ValueError("captcha_cost_usd must not be negative")
        captcha_usd = captcha_cost_usd
    return proxy_usd, captcha_usd


def cost_per_1k_posts_browser(
    bytes_via_proxies: int,
    captcha_cost_usd: float | None,
    posts: int,
    *,
    captchas_solved: int = 0,
    prices: BackendPrices | None = None,
) -> float | None:
    """USD per 1,000 posts collected by the browser backend (None if no posts)."""
    proxy_usd, captcha_usd = browser_cost_usd(
        bytes_via_proxies, captcha_cost_usd, captchas_solved=captchas_solved, prices=prices
    )
    return _per_1k(proxy_usd + captcha_usd, posts)


def apify_cost_usd(
    usage_usd: float | None = None,
    *,
    compute_units: float | None = None,
    results: int | None = None,
    prices: BackendPrices | None = None,
) -> float:
    """What Apify runs cost: the reported ``usage_usd`` when known, else an estimate.

    The estimate is ``compute_units × price per CU + results × price per result``, the bill of a
    pay-per-usage run plus a pay-per-result actor's charge; pass only what applies.
    """
    prices = prices or BackendPrices()
    if usage_usd is not None:
        if usage_usd < 0:
            raise ValueError("usage_usd must not be negative")
        return usage_usd
    if compute_units is None and results is None:
        raise ValueError("give usage_usd, or compute_units and/or results to estimate from")
    estimate = 0.0
    if compute_units is not None:
        estimate += compute_units * prices.apify_usd_per_compute_unit
    if results is not None:
        estimate += results / 1000 * prices.apify_usd_per_1k_results
    return estimate


def cost_per_1k_posts_apify(
    usage_usd: float | None,
    posts: int,
    *,
    compute_units: float | None = None,
    results: int | None = None,
    prices: BackendPrices | None = None,
) -> float | None:
    """USD per 1,000 posts collected through Apify (None if no posts)."""
    total = apify_cost_usd(usage_usd, compute_units=compute_units, results=results, prices=prices)
    return _per_1k(total, posts)


class _BrowserMetricsLike(Protocol):
    bytes_via_proxies: int
    captcha_cost_usd: float
    captchas_solved: int


@dataclass(frozen=True)
class BackendCostReport:
    """One backend's cost for one run, for asset metadata and the backend choice."""

    backend: str
    posts: int
    total_usd: float
    usd_per_1k_posts: float | None
    estimated: bool = False
    breakdown: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_browser(
        cls, metrics: _BrowserMetricsLike, posts: int, prices: BackendPrices | None = None
    ) -> BackendCostReport:
        """From a browser run's ``ScrapeMetrics`` (bytes through proxies, CAPTCHA spend)."""
        proxy_usd, captcha_usd = browser_cost_usd(
            metrics.bytes_via_proxies,
            metrics.captcha_cost_usd,
            captchas_solved=metrics.captchas_solved,
            prices=prices,
        )
        total = proxy_usd + captcha_usd
        return cls(
            backend="browser",
            posts=posts,
            total_usd=total,
            usd_per_1k_posts=_per_1k(total, posts),
            breakdown={
                "proxy_usd": proxy_usd,
                "captcha_usd": captcha_usd,
                "proxy_gb": metrics.bytes_via_proxies / BYTES_PER_GB,
            },
        )

    @classmethod
    def for_apify(
        cls,
        runs: Iterable[Any],
        posts: int,
        prices: BackendPrices | None = None,
    ) -> BackendCostReport:
        """From an ``ApifyOutcome.runs`` list (``RunSummary``: usage, compute units, items).

        Each run contributes its reported ``usage_total_usd``; a run without one is estimated from
        its compute units and items received, and the report is marked ``estimated``.
        """
        prices = prices or BackendPrices()
        total = 0.0
        compute_units = 0.0
        results = 0
        estimated = False
        run_count = 0
        for run in runs:
            run_count += 1
            usage = getattr(run, "usage_total_usd", None)
            units = getattr(run, "compute_units", None)
            items = int(getattr(run, "items_received", 0) or 0)
            compute_units += units or 0.0
            results += items
            if usage is None:
                estimated = True
                # A pay-per-result run's reported price beats the configured default.
                per_result = getattr(run, "price_per_result_usd", None)
                run_prices = prices
                if per_result is not None:
                    run_prices = BackendPrices(
                        proxy_usd_per_gb=prices.proxy_usd_per_gb,
                        captcha_usd_per_1k=prices.captcha_usd_per_1k,
                        apify_usd_per_1k_results=per_result * 1000,
                        apify_usd_per_compute_unit=prices.apify_usd_per_compute_unit,
                    )
                total += apify_cost_usd(None, compute_units=units, results=items, prices=run_prices)
            else:
                total += usage
        return cls(
            backend="apify",
            posts=posts,
            total_usd=total,
            usd_per_1k_posts=_per_1k(total, posts),
            estimated=estimated,
            breakdown={"runs": float(run_count), "compute_units": compute_units, "results": float(results)},
        )

    def as_metadata(self) -> dict[str, float | int | str | bool]:
        """Flat values for Dagster metadata (``usd_per_1k_posts`` omitted when undefined)."""
        data: dict[str, float | int | str | bool] = {
            f"{self.backend}_cost_usd": round(self.total_usd, 6),
            f"{self.backend}_cost_posts": self.posts,
            f"{self.backend}_cost_estimated": self.estimated,
        }
        if self.usd_per_1k_posts is not None:
            data[f"{self.backend}_usd_per_1k_posts"] = round(self.usd_per_1k_posts, 6)
        for key, value in sorted(self.breakdown.items()):
            data[f"{self.backend}_{key}"] = round(value, 6)
        return data


def cheapest(reports: Iterable[BackendCostReport]) -> BackendCostReport | None:
    """The report with the lowest cost per 1,000 posts (reports without posts are ignored)."""
    priced = [r for r in reports if r.usd_per_1k_posts is not None]
    return min(priced, key=lambda r: r.usd_per_1k_posts or 0.0) if priced else None
