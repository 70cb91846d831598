"""The Cost Impact Analysis arithmetic and the proxies-or-Apify recommendation."""

from __future__ import annotations

import pytest

from ingest_platform.cost_report import CostAssumptions, DailyUsage, build_cost_report

NO_UPKEEP = CostAssumptions(maintenance_hours_per_week=0)


def _day(i: int, **values) -> DailyUsage:
    return DailyUsage(day=f"2026-11-{i:02d}", **values)


def test_monthly_projection_per_component_at_the_measured_volume() -> None:
    days = [
        _day(1, browser_posts=9_000, browser_proxy_usd=6.0, browser_captcha_usd=1.0,
             browser_success_rate=0.99, apify_posts=1_000, apify_usd=3.0, warehouse_usd=2.0),
        _day(2, browser_posts=11_000, browser_proxy_usd=8.0, browser_captcha_usd=1.0,
             browser_success_rate=0.97, apify_posts=1_000, apify_usd=5.0, warehouse_usd=4.0),
    ]  # fmt: skip
    report = build_cost_report(days, CostAssumptions(maintenance_hours_per_week=7, engineer_usd_per_hour=10))
    assert report.posts_per_day == 11_000
    assert report.monthly_usd == pytest.approx(
        {"proxies": 210.0, "captcha": 30.0, "apify": 120.0, "warehouse": 90.0, "scraper_upkeep": 300.0}
    )
    assert report.browser_usd_per_1k == pytest.approx(16 / 20_000 * 1000)
    assert report.apify_usd_per_1k == pytest.approx(8 / 2_000 * 1000)
    # upkeep: $300/month over 330,000 posts/month
    assert report.browser_usd_per_1k_with_upkeep == pytest.approx(0.8 + 300 / 330_000 * 1000)
    assert "| **Total** | **$750.00** |" in report.markdown


def test_cheaper_healthy_browser_means_continue_with_proxies() -> None:
    days = [
        _day(
            1,
            browser_posts=10_000,
            browser_proxy_usd=5,
            browser_success_rate=0.99,
            apify_posts=500,
            apify_usd=5,
        )
    ]
    report = build_cost_report(days, NO_UPKEEP)
    assert report.recommendation == "continue with proxies"


def test_failing_browser_means_switch_whatever_it_costs() -> None:
    days = [_day(1, browser_posts=10_000, browser_proxy_usd=1, browser_success_rate=0.71)]
    report = build_cost_report(days, NO_UPKEEP)
    assert report.recommendation == "switch to Apify" and "71.0%" in report.reason


def test_upkeep_can_tip_the_balance_to_apify() -> None:
    days = [
        _day(
            1,
            browser_posts=1_000,
            browser_proxy_usd=1,
            browser_success_rate=0.99,
            apify_posts=1_000,
            apify_usd=3,
        )
    ]
    assert build_cost_report(days, NO_UPKEEP).recommendation == "continue with proxies"
    with_upkeep = build_cost_report(
        days, CostAssumptions(maintenance_hours_per_week=3, engineer_usd_per_hour=80)
    )
    assert with_upkeep.recommendation == "switch to Apify"


def test_no_measurements_says_so() -> None:
    report = build_cost_report([])
    assert report.recommendation == "not enough data" and "materialize" in report.markdown
