"""One daily schedule per TikTok target list.

Each list is its own partition of ``raw_tiktok_posts`` (date x target list), so each gets its own
schedule: lists can be paused, backfilled and retried one by one, and their runs land on
different workers. The run key (list + day) makes a schedule tick that is evaluated twice launch
one run.

Default status, one rule for every schedule and sensor of the platform (README "Schedules and
sensors"): what reaches outside sites or spends per-call money starts STOPPED — the scrape
schedules (TikTok per list, Facebook: proxies, CAPTCHA solving, Apify) — and so does
``freshness_checks_sensor``, which only judges the scrapes' timing and would report them late while
they are off. Everything that works on data already here starts RUNNING: the ORDERS loader, the
posts automation, warehouse cost, the cost report, the loader-lag check, and the alerts.
"""

from typing import Any

from dagster import (
    DefaultScheduleStatus,
    MultiPartitionKey,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
)

from ingest_platform.dagster_layer.common import DATE_DIMENSION, LIST_DIMENSION, tiktok_target_lists

SCRAPE_CRON = "15 2 * * *"


def tiktok_scrape_schedules(job: Any, *, cron: str = SCRAPE_CRON) -> list[ScheduleDefinition]:
    """``tiktok_scrape_<list>_daily`` for every configured list: today's (UTC) partition of that list.

    ``job`` is the (unresolved) asset job that materializes ``raw_tiktok_posts``.
    """

    def build(target_list: str) -> ScheduleDefinition:
        def evaluate(context: ScheduleEvaluationContext) -> RunRequest:
            day = context.scheduled_execution_time.strftime("%Y-%m-%d")
            return RunRequest(
                run_key=f"tiktok:{target_list}:{day}",
                partition_key=MultiPartitionKey({DATE_DIMENSION: day, LIST_DIMENSION: target_list}),
                tags={"ingest_platform/target_list": target_list},
            )

        return ScheduleDefinition(
            name=f"tiktok_scrape_{target_list.replace('-', '_')}_daily",
            cron_schedule=cron,
            execution_timezone="UTC",
            job=job,
            execution_fn=evaluate,
            default_status=DefaultScheduleStatus.STOPPED,  # scrapes cost money: the rule above
            description=f"Scrape TikTok target list {target_list!r} every day (today's partition).",
        )

    return [build(name) for name in tiktok_target_lists]
