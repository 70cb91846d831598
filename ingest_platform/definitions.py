"""The whole platform on one screen: assets, checks, jobs, schedules, sensors, resources per env.

    raw_tiktok_posts ───┬▶ hashed_posts ─▶ enriched_posts   (date x target list ─▶ daily)
    raw_facebook_posts ─┘
    landing/*.jsonl  ─▶ ORDERS                              (sensor-buffered file batches, retried)
    every reject     ─▶ dead_letters ─▶ dead_letter_replay_job ─▶ ORDERS   (on demand)

Importing this module must not import snowflake, playwright or torch (they load inside runs).
"""

import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from ingest_platform.dagster_layer import settings_gate  # noqa: F401  (first: refuses bad settings)
from ingest_platform.dagster_layer.alerts import check_alert_sensor, run_failure_alert_sensor
from ingest_platform.dagster_layer.cost import warehouse_cost, warehouse_cost_job, warehouse_cost_schedule
from ingest_platform.dagster_layer.enrichment import enriched_posts
from ingest_platform.dagster_layer.environments import resources_for
from ingest_platform.dagster_layer.monitoring import (
    freshness_checks,
    freshness_sensor,
    loader_lag_sensor,
    orders_loader_lag,
)
from ingest_platform.dagster_layer.privacy import hashed_posts
from ingest_platform.dagster_layer.quality import dead_letter_replay_job, dead_letters
from ingest_platform.dagster_layer.reporting import cost_report, cost_report_job, cost_report_schedule
from ingest_platform.dagster_layer.scheduling import tiktok_scrape_schedules
from ingest_platform.dagster_layer.sources import raw_facebook_posts, raw_tiktok_posts
from ingest_platform.dagster_layer.warehouse import orders, orders_job, orders_landing_sensor

INGEST_ENV = os.environ.get("INGEST_ENV", "local")

tiktok_scrape_job = define_asset_job(
    "tiktok_scrape_job",
    # Freshness is the freshness sensor's to judge, on the clock, not every scrape run's.
    selection=AssetSelection.assets(raw_tiktok_posts) - AssetSelection.checks(*freshness_checks),
    # A blocked scrape retried at once only burns proxies and CAPTCHA budget: no run retries here.
    tags={"ingest_platform/platform": "tiktok", "dagster/max_retries": "0"},
    description="Scrape one TikTok target list for one day (partition: date x target list).",
)
posts_load_job = define_asset_job(
    "posts_load_job",
    selection=AssetSelection.assets(hashed_posts, enriched_posts),
    description="Pseudonymise and enrich one day of posts, every platform and target list "
    "(declarative automation runs it when a day's scrapes are in).",
)
# Runs the assets' automation conditions (hashed_posts, enriched_posts, dead_letters). On by
# default: a scrape that lands is loaded without anyone switching automation on first.
automation_sensor = AutomationConditionSensorDefinition(
    "posts_automation_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
facebook_posts_job = define_asset_job(
    "facebook_posts_job",
    selection=AssetSelection.assets(raw_facebook_posts, hashed_posts, enriched_posts),
    tags={"ingest_platform/platform": "facebook", "dagster/max_retries": "0"},
    description="Fetch the day's Facebook page posts through Apify, pseudonymise, enrich.",
)


def make_definitions(environment: str = INGEST_ENV) -> Definitions:
    return Definitions(
        assets=[
            raw_tiktok_posts,
            raw_facebook_posts,
            hashed_posts,
            enriched_posts,
            orders,
            dead_letters,
            warehouse_cost,
            cost_report,
        ],
        asset_checks=[*freshness_checks, orders_loader_lag],
        jobs=[
            tiktok_scrape_job,
            posts_load_job,
            facebook_posts_job,
            orders_job,
            dead_letter_replay_job,
            warehouse_cost_job,
            cost_report_job,
        ],
        schedules=[
            *tiktok_scrape_schedules(tiktok_scrape_job),
            build_schedule_from_partitioned_job(facebook_posts_job, hour_of_day=2, minute_of_hour=45),
            warehouse_cost_schedule,
            cost_report_schedule,
        ],
        sensors=[
            orders_landing_sensor,
            loader_lag_sensor,
            check_alert_sensor,
            run_failure_alert_sensor,
            freshness_sensor,
            automation_sensor,
        ],
        resources=resources_for(environment),
    )


defs = make_definitions()
