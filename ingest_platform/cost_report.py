"""The seed's Cost Impact Analysis, recomputed from measured usage (no Dagster here).

Inputs are per-day measurements (posts per backend, proxy/CAPTCHA/Apify spend, warehouse cost,
browser success). Output: a monthly projection per component at the current volume, the cost per
1,000 posts of each backend, and the answer to the seed's review question "continue with proxies
or switch to Apify?". The seed's rule is kept: scraper upkeep counts as a cost ("if maintenance
time exceeds the API cost, switch"), so the browser's price includes engineering hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import mean


@dataclass(frozen=True)
class DailyUsage:
    day: str
    browser_posts: int = 0
    browser_proxy_usd: float = 0.0
    browser_captcha_usd: float = 0.0
    browser_success_rate: float | None = None
    apify_posts: int = 0
    apify_usd: float = 0.0
    warehouse_usd: float = 0.0


@dataclass(frozen=True)
class CostAssumptions:
    maintenance_hours_per_week: float = 2.5  # the seed's "2-3 hours/week" of scraper upkeep
    engineer_usd_per_hour: float = 75.0
    days_per_month: float = 30.0
    success_threshold: float = 0.95


@dataclass
class CostReport:
    days: int
    posts_per_day: float
    monthly_usd: dict[str, float] = field(default_factory=dict)
    browser_usd_per_1k: float | None = None
    browser_usd_per_1k_with_upkeep: float | None = None
    apify_usd_per_1k: float | None = None
    browser_success_rate: float | None = None
    recommendation: str = ""
    reason: str = ""
    markdown: str = ""

    def as_metadata(self) -> dict[str, float | int | str]:
        data: dict[str, float | int | str] = {
            "days_measured": self.days,
            "posts_per_day": round(self.posts_per_day, 1),
            "monthly_total_usd": round(sum(self.monthly_usd.values()), 2),
            "recommendation": self.recommendation,
        }
        for component, usd in self.monthly_usd.items():
            data[f"monthly_{component}_usd"] = round(usd, 2)
        for name in ("browser_usd_per_1k", "browser_usd_per_1k_with_upkeep", "apify_usd_per_1k"):
            value = getattr(self, name)
            if value is not None:
                data[name] = round(value, 4)
        return data


def _per_1k(usd: float, posts: int) -> float | None:
    return usd / posts * 1000 if posts else None


def build_cost_report(days: Sequence[DailyUsage], assumptions: CostAssumptions | None = None) -> CostReport:
    assumptions = assumptions or CostAssumptions()
    report = CostReport(days=len(days), posts_per_day=0.0)
    if not days:
        report.recommendation = "not enough data"
        report.reason = "no scrape or load has been measured yet"
        report.markdown = "No measurements yet: materialize the sources and `warehouse_cost` first."
        return report

    month = assumptions.days_per_month
    browser_posts = sum(d.browser_posts for d in days)
    apify_posts = sum(d.apify_posts for d in days)
    proxy_usd = sum(d.browser_proxy_usd for d in days)
    captcha_usd = sum(d.browser_captcha_usd for d in days)
    apify_usd = sum(d.apify_usd for d in days)
    warehouse_usd = sum(d.warehouse_usd for d in days)
    n = len(days)
    upkeep_month = assumptions.maintenance_hours_per_week * assumptions.engineer_usd_per_hour * month / 7
    report.posts_per_day = (browser_posts + apify_posts) / n
    report.monthly_usd = {
        "proxies": proxy_usd / n * month,
        "captcha": captcha_usd / n * month,
        "apify": apify_usd / n * month,
        "warehouse": warehouse_usd / n * month,
        "scraper_upkeep": upkeep_month if browser_posts else 0.0,
    }
    report.browser_usd_per_1k = _per_1k(proxy_usd + captcha_usd, browser_posts)
    monthly_posts = report.posts_per_day * month
    if report.browser_usd_per_1k is not None and monthly_posts:
        report.browser_usd_per_1k_with_upkeep = (
            report.browser_usd_per_1k + upkeep_month / monthly_posts * 1000
        )
    report.apify_usd_per_1k = _per_1k(apify_usd, apify_posts)
    rates = [d.browser_success_rate for d in days if d.browser_success_rate is not None]
    report.browser_success_rate = mean(rates) if rates else None

    report.recommendation, report.reason = _recommend(report, assumptions)
    report.markdown = _markdown(report, assumptions)
    return report


def _recommend(report: CostReport, assumptions: CostAssumptions) -> tuple[str, str]:
    browser, apify = report.browser_usd_per_1k_with_upkeep, report.apify_usd_per_1k
    success = report.browser_success_rate
    if browser is None:
        return "switch to Apify", "no browser scrape delivered posts in the measured period"
    if success is not None and success < assumptions.success_threshold:
        return (
            "switch to Apify",
            f"browser success {success:.1%} is below the {assumptions.success_threshold:.0%} target",
        )
    if apify is None:
        return "continue with proxies", "browser meets its success target; no Apify run measured to compare"
    if apify < browser:
        return "switch to Apify", f"Apify costs ${apify:.2f}/1k posts against ${browser:.2f}/1k with upkeep"
    return (
        "continue with proxies",
        f"proxies cost ${browser:.2f}/1k posts with upkeep against Apify ${apify:.2f}/1k",
    )


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _markdown(report: CostReport, assumptions: CostAssumptions) -> str:
    lines = [
        f"**Recommendation: {report.recommendation}** — {report.reason}.",
        "",
        f"Measured over {report.days} day(s); {report.posts_per_day:,.0f} posts/day; "
        f"projection for {assumptions.days_per_month:.0f} days at the current volume.",
        "",
        "| Component | Monthly projection |",
        "|---|---|",
    ]
    labels = {
        "proxies": "Residential proxies (GB × $/GB)",
        "captcha": "CAPTCHA solving",
        "apify": "Apify actors",
        "warehouse": "Snowflake ingestion",
        "scraper_upkeep": (
            f"Scraper upkeep ({assumptions.maintenance_hours_per_week:g} h/week × "
            f"${assumptions.engineer_usd_per_hour:g}/h)"
        ),
    }
    for component, usd in report.monthly_usd.items():
        lines.append(f"| {labels[component]} | {_money(usd)} |")
    lines.append(f"| **Total** | **{_money(sum(report.monthly_usd.values()))}** |")
    lines += [
        "",
        "| Backend | $ per 1,000 posts | with upkeep |",
        "|---|---|---|",
        f"| Browser + proxies | {_money(report.browser_usd_per_1k)} "
        f"| {_money(report.browser_usd_per_1k_with_upkeep)} |",
        f"| Apify | {_money(report.apify_usd_per_1k)} | {_money(report.apify_usd_per_1k)} |",
    ]
    if report.browser_success_rate is not None:
        lines += ["", f"Browser success rate (mean): {report.browser_success_rate:.1%}."]
    return "\n".join(lines)
