"""Cost per 1,000 posts for the browser and Apify backends."""

from __future__ import annotations

import pytest

from ingest_platform.scraping.apify_backend import RunSummary
from ingest_platform.scraping.backend_cost import (
    BackendCostReport,
    BackendPrices,
    apify_cost_usd,
    browser_cost_usd,
    cheapest,
    cost_per_1k_posts_apify,
    cost_per_1k_posts_browser,
)
from ingest_platform.scraping.metrics import ScrapeMetrics


def test_browser_cost_per_1k_posts() -> None:
    # 2.5 GB at $8/GB = $20, plus $0.35 of CAPTCHAs, for 5,000 posts = $4.07 per 1,000.
    assert cost_per_1k_posts_browser(2_500_000_000, 0.35, 5000) == pytest.approx(4.07)
    cheap = BackendPrices(proxy_usd_per_gb=2.0)
    assert cost_per_1k_posts_browser(2_500_000_000, 0.0, 5000, prices=cheap) == pytest.approx(1.0)


def test_browser_captchas_priced_when_solver_cost_unknown() -> None:
    proxy, captcha = browser_cost_usd(
        0, None, captchas_solved=500, prices=BackendPrices(captcha_usd_per_1k=3.0)
    )
    assert (proxy, captcha) == (0.0, pytest.approx(1.5))


def test_no_posts_means_undefined_not_zero() -> None:
    assert cost_per_1k_posts_browser(10**9, 0.0, 0) is None
    assert cost_per_1k_posts_apify(1.0, 0) is None


def test_apify_cost_reported_or_estimated() -> None:
    assert cost_per_1k_posts_apify(0.37, 100) == pytest.approx(3.7)
    # Estimated: 0.5 CU × $0.4 + 2,000 results × $3.7/1k.
    assert apify_cost_usd(None, compute_units=0.5, results=2000) == pytest.approx(0.2 + 7.4)
    assert cost_per_1k_posts_apify(None, 2000, compute_units=0.5, results=2000) == pytest.approx(3.8)
    with pytest.raises(ValueError):
        apify_cost_usd(None)


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError):
        BackendPrices(proxy_usd_per_gb=-1)
    with pytest.raises(ValueError):
        cost_per_1k_posts_browser(-1, 0.0, 10)
    with pytest.raises(ValueError):
        cost_per_1k_posts_apify(-0.1, 10)
    with pytest.raises(ValueError):
        cost_per_1k_posts_apify(1.0, -5)


def test_reports_for_metadata_and_comparison() -> None:
    metrics = ScrapeMetrics(bytes_via_proxies=1_000_000_000, captcha_cost_usd=0.5, captchas_solved=250)
    browser = BackendCostReport.for_browser(metrics, posts=2000)
    assert browser.total_usd == pytest.approx(8.5)
    assert browser.usd_per_1k_posts == pytest.approx(4.25)
    assert browser.breakdown["proxy_gb"] == pytest.approx(1.0)

    runs = [
        RunSummary(actor="a", run_id="r1", status="SUCCEEDED", usage_total_usd=3.7, items_received=1000),
        # No reported usage: estimated from its own per-result price and compute units.
        RunSummary(
            actor="a",
            run_id="r2",
            status="SUCCEEDED",
            compute_units=0.25,
            items_received=1000,
            price_per_result_usd=0.002,
        ),
    ]
    apify = BackendCostReport.for_apify(runs, posts=2000)
    assert apify.estimated is True
    assert apify.total_usd == pytest.approx(3.7 + 0.25 * 0.4 + 2.0)
    assert apify.usd_per_1k_posts == pytest.approx((3.7 + 0.1 + 2.0) / 2)

    assert cheapest([browser, apify]) is apify
    metadata = apify.as_metadata()
    assert metadata["apify_cost_estimated"] is True
    assert metadata["apify_usd_per_1k_posts"] == pytest.approx(2.9)
    assert metadata["apify_results"] == 2000
    empty = BackendCostReport.for_browser(ScrapeMetrics(), posts=0)
    assert "browser_usd_per_1k_posts" not in empty.as_metadata()
    assert cheapest([empty]) is None
