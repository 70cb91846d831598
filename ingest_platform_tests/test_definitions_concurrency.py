"""The production shape, locally: runs in their own processes, multiprocess executor, pool limits.

The scrape fans out over (date x target list): two target lists of the same day start as two
runs of ``tiktok_scrape_job`` at once, each in its own process (a pod under the K8s launcher).
The instance allows one ``scraper_tiktok`` slot, so their scrape steps must not overlap while
the runs themselves may.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ingest_platform_tests.conftest import REPO_ROOT, make_dagster_home

DAY = "2026-11-25"
PARTITIONS = (f"{DAY}|alpha", f"{DAY}|beta")


@pytest.fixture
def concurrent_runs(tmp_path, sandbox_server, sandbox_content):
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    home = make_dagster_home(tmp_path / "home")
    alpha, beta = sandbox_content.profiles[4], sandbox_content.profiles[5]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "INGEST_ENV": "local",
        "TIKTOK_BASE_URL": sandbox_server.base_url,
        "TIKTOK_TARGET_LISTS": f"alpha=@{alpha.unique_id}:30; beta=@{beta.unique_id}:30",
        "SCRAPER_MIN_DELAY_S": "0.3",
        "SCRAPER_MAX_DELAY_S": "0.5",
        "EMBEDDINGS_PROVIDER": "hashing",
        "PROXY_LIST": "",
    }
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        instance = DagsterInstance.get()
        instance.event_log_storage.set_concurrency_slots("scraper_tiktok", 1)
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dagster",
                    "job",
                    "execute",
                    "-m",
                    "ingest_platform.definitions",
                    "-j",
                    "tiktok_scrape_job",
                    "--tags",
                    json.dumps({"dagster/partition": partition}),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for partition in PARTITIONS
        ]
        outputs = [process.communicate(timeout=600)[0] for process in processes]
        runs = instance.get_runs(RunsFilter(job_name="tiktok_scrape_job"))
        yield instance, runs, outputs, DagsterRunStatus, (alpha, beta)
    finally:
        os.environ.pop("DAGSTER_HOME", None)


def _step_window(instance, run_id: str, step_key: str) -> tuple[float, float]:
    from dagster import DagsterEventType

    records = instance.get_records_for_run(run_id, limit=10_000).records
    starts = [
        r.event_log_entry.timestamp
        for r in records
        if r.event_log_entry.step_key == step_key
        and r.event_log_entry.dagster_event_type == DagsterEventType.STEP_START
    ]
    ends = [
        r.event_log_entry.timestamp
        for r in records
        if r.event_log_entry.step_key == step_key
        and r.event_log_entry.dagster_event_type
        in {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    ]
    assert starts and ends, f"{step_key} did not run in {run_id}"
    return min(starts), max(ends)


def test_target_lists_run_in_parallel_processes_but_scraping_respects_the_pool(concurrent_runs) -> None:
    from dagster import RunsFilter

    instance, runs, outputs, status, profiles = concurrent_runs
    assert len(runs) == 2, outputs
    assert {run.tags["dagster/partition"] for run in runs} == set(PARTITIONS)
    assert all(run.status == status.SUCCESS for run in runs), outputs
    for run in runs:
        messages = [r.event_log_entry.message or "" for r in instance.get_records_for_run(run.run_id).records]
        assert any("multiprocess executor" in message for message in messages)
    (_first_start, first_end), (second_start, _second_end) = sorted(
        _step_window(instance, run.run_id, "raw_tiktok_posts") for run in runs
    )
    assert second_start >= first_end, "two scrape steps held the single scraper_tiktok slot at once"
    # The runs themselves overlapped: without the pool the scrape steps would have too.
    records = instance.get_run_records(RunsFilter(job_name="tiktok_scrape_job"))
    (_a_start, a_end), (b_start, _b_end) = sorted((r.start_time, r.end_time) for r in records)
    assert b_start < a_end
    # Each list wrote its own shard of the day; the day reads as both lists' posts, each once.
    from ingest_platform.raw_store import RawStore

    store = RawStore(str(instance.root_directory) + "/raw")
    assert store.post_shards("tiktok", DAY) == ["alpha", "beta"]
    day = store.read_posts("tiktok", DAY)
    expected = {post_id for profile in profiles for post_id in profile.post_ids[:30]}
    assert set(day["post_id"]) == expected and day["post_id"].is_unique
