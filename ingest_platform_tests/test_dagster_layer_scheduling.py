"""Per-target-list scrape schedules, and the target lists as the scrape's second partition dimension.

The list names are read when the definitions load, so each case loads them in a fresh process with
its own ``TIKTOK_TARGET_LISTS``, as a code-location reload would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ingest_platform_tests.conftest import REPO_ROOT

_EVALUATE = """
import datetime, json
from dagster import build_schedule_context
from ingest_platform.definitions import defs

repository = defs.get_repository_def()
job = defs.resolve_job_def("tiktok_scrape_job")
tick = datetime.datetime(2026, 11, 29, 2, 15, tzinfo=datetime.UTC)
out = {"lists": job.partitions_def.get_partitions_def_for_dimension("target_list").get_partition_keys()}
for schedule in repository.schedule_defs:
    if schedule.job_name != "tiktok_scrape_job":
        continue
    context = build_schedule_context(scheduled_execution_time=tick, repository_def=repository)
    requests = schedule.evaluate_tick(context).run_requests
    out[schedule.name] = {
        "cron": schedule.cron_schedule,
        "requests": [
            [r.run_key, str(r.partition_key), r.tags.get("ingest_platform/target_list")] for r in requests
        ],
    }
print(json.dumps(out))
"""


def _load(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("TIKTOK_TARGETS", "TIKTOK_TARGET_LISTS")}
    environment = {**inherited, "DAGSTER_HOME": str(tmp_path), "INGEST_ENV": "local", **env}
    return subprocess.run(
        [sys.executable, "-c", _EVALUATE], cwd=REPO_ROOT, env=environment, capture_output=True, text=True
    )


def test_one_daily_schedule_per_target_list_requests_todays_partition_of_its_list(tmp_path) -> None:
    result = _load(tmp_path, TIKTOK_TARGET_LISTS="creators=@alice:200,@bob; campaign-x=#summerdrop:50")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["lists"] == ["creators", "campaign-x"]
    assert out["tiktok_scrape_creators_daily"] == {
        "cron": "15 2 * * *",
        "requests": [["tiktok:creators:2026-11-29", "2026-11-29|creators", "creators"]],
    }
    assert out["tiktok_scrape_campaign_x_daily"]["requests"] == [
        ["tiktok:campaign-x:2026-11-29", "2026-11-29|campaign-x", "campaign-x"]
    ]
    assert len(out) == 3  # the two list schedules and nothing else for the scrape job


def test_without_target_lists_there_is_one_default_list(tmp_path) -> None:
    result = _load(tmp_path, TIKTOK_TARGETS="@alice")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["lists"] == ["default"]
    assert out["tiktok_scrape_default_daily"]["requests"] == [
        ["tiktok:default:2026-11-29", "2026-11-29|default", "default"]
    ]


def test_a_bad_target_list_stops_the_load_with_one_message_naming_the_entry(tmp_path) -> None:
    result = _load(tmp_path, TIKTOK_TARGET_LISTS="creators=@alice; creators=@bob")
    assert result.returncode != 0
    assert "TIKTOK_TARGET_LISTS entry 2: list 'creators' is named twice" in result.stderr


# The one default-status rule (scheduling.py, README "Schedules and sensors: on or off by default"):
# what reaches outside sites or spends per-call money (jobs that materialize a `sources` asset: the
# scrapes) starts STOPPED, and so does the sensor that only judges the scrapes' timing; everything
# that works on data already here starts RUNNING.
_OFF_BY_DEFAULT_SENSORS = {"freshness_checks_sensor"}


def test_schedules_and_sensors_follow_one_default_status_rule() -> None:
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    from ingest_platform.definitions import defs

    repository = defs.get_repository_def()

    def reaches_outside(job_name: str | None) -> bool:
        if job_name is None:
            return False
        keys = repository.get_job(job_name).asset_layer.selected_asset_keys
        return any(repository.asset_graph.get(key).group_name == "sources" for key in keys)

    schedules = {s.name: (s.default_status, reaches_outside(s.job_name)) for s in repository.schedule_defs}
    assert {name for name, (_, outside) in schedules.items() if outside} >= {
        "facebook_posts_job_schedule",
        "tiktok_scrape_default_daily",
    }
    for name, (status, outside) in schedules.items():
        expected = DefaultScheduleStatus.STOPPED if outside else DefaultScheduleStatus.RUNNING
        assert status == expected, f"schedule {name}: {status}, the rule says {expected}"

    for sensor in repository.sensor_defs:
        jobs = [target.job_name for target in sensor.targets] if sensor.has_jobs else []
        off = sensor.name in _OFF_BY_DEFAULT_SENSORS or any(reaches_outside(job) for job in jobs)
        expected = DefaultSensorStatus.STOPPED if off else DefaultSensorStatus.RUNNING
        assert sensor.default_status == expected, f"sensor {sensor.name}: {sensor.default_status}"
