"""Source assets through Apify: Facebook posts and TikTok's apify backend, against the local stand-in."""

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from ingest_platform.dagster_layer.privacy import hashed_posts
from ingest_platform.dagster_layer.resources import (
    ApifyResource,
    CaptchaResource,
    PricesResource,
    PrivacyResource,
    ProxyPoolResource,
    RawStoreResource,
    ThresholdsResource,
    TikTokScraperResource,
    WarehouseResource,
)
from ingest_platform.dagster_layer.sources import raw_facebook_posts, raw_tiktok_posts

PARTITION = "2026-11-28"
# raw_tiktok_posts is partitioned by (date x target list); without TIKTOK_TARGET_LISTS the list is "default".
TIKTOK_PARTITION = f"{PARTITION}|default"
PAGES = ["https://www.facebook.com/cityroasters", "https://www.facebook.com/harbourbooks"]


@pytest.fixture
def apify_stand_in(sandbox_content):
    from ingest_platform.sandbox.apify_api import ApifyStandIn

    stand_in = ApifyStandIn(sandbox_content, token="apify_test_token")
    stand_in.start()
    yield stand_in
    stand_in.stop()


def _resources(tmp_path: Path, stand_in, **overrides) -> dict:
    resources = {
        "apify": ApifyResource(token="apify_test_token", api_url=stand_in.api_url)
        if stand_in
        else ApifyResource(),
        "prices": PricesResource(),
        "captcha": CaptchaResource(),
        "raw_store": RawStoreResource(uri=str(tmp_path / "raw")),
        "thresholds": ThresholdsResource(),
        "proxy_pool": ProxyPoolResource(proxy_list=""),
        "tiktok_scraper": TikTokScraperResource(base_url="https://www.tiktok.com", targets=""),
        "privacy": PrivacyResource(hmac_key="k" * 48),
        "warehouse": WarehouseResource(engine="duckdb", duckdb_path=str(tmp_path / "wh.duckdb")),
    }
    resources.update(overrides)
    return resources


def test_facebook_posts_flow_into_hashed_posts(tmp_path, dagster_home, apify_stand_in) -> None:
    resources = _resources(tmp_path, apify_stand_in)
    result = materialize(
        [raw_facebook_posts, hashed_posts],
        resources=resources,
        partition_key=PARTITION,
        instance=DagsterInstance.ephemeral(),
        run_config={"ops": {"raw_facebook_posts": {"config": {"pages": PAGES, "results_limit": 25}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("raw_facebook_posts")[0].metadata
    assert metadata["dagster/row_count"].value == 50
    assert metadata["apify_cost_usd"].value > 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["scraper_success_rate"] is True
    raw = resources["raw_store"].open().read_posts("facebook", PARTITION)
    assert set(raw["platform"]) == {"facebook"} and set(raw["backend"]) == {"apify"}
    with resources["warehouse"].open() as wh:
        loaded = wh.read_sql("SELECT platform, post_id FROM hashed_posts")
    assert sorted(loaded["post_id"]) == sorted(raw["post_id"])


def test_tiktok_through_apify_gives_the_sandbox_posts(
    tmp_path, dagster_home, apify_stand_in, sandbox_content
) -> None:
    profile = sandbox_content.profiles[0]
    resources = _resources(tmp_path, apify_stand_in)
    result = materialize(
        [raw_tiktok_posts],
        resources=resources,
        partition_key=TIKTOK_PARTITION,
        instance=DagsterInstance.ephemeral(),
        run_config={
            "ops": {
                "raw_tiktok_posts": {"config": {"targets": [f"@{profile.unique_id}"], "backend": "apify"}}
            }
        },
    )
    assert result.success
    raw = resources["raw_store"].open().read_posts("tiktok", PARTITION)
    assert sorted(raw["post_id"]) == sorted(profile.post_ids)
    assert set(raw["backend"]) == {"apify"}


def test_a_failed_actor_run_fails_the_blocking_check_and_keeps_nothing_half_done(
    tmp_path, dagster_home, apify_stand_in
) -> None:
    apify_stand_in.config.final_status = "FAILED"
    apify_stand_in.config.failed_run_keeps = 0.0
    resources = _resources(tmp_path, apify_stand_in)
    result = materialize(
        [raw_facebook_posts, hashed_posts],
        resources=resources,
        partition_key=PARTITION,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"ops": {"raw_facebook_posts": {"config": {"pages": PAGES[:1]}}}},
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["scraper_success_rate"] is False
    assert not result.success  # blocking: hashed_posts did not load a failed fetch
    assert result.asset_materializations_for_node("hashed_posts") == []


def test_proxy_credentials_and_api_keys_never_reach_dagster_storage(tmp_path, dagster_home) -> None:
    import json

    from ingest_platform.sandbox.anticaptcha_api import AntiCaptchaConfig
    from ingest_platform.sandbox.stack import SandboxStack
    from ingest_platform.sandbox.tiktok_site import SiteScenario

    proxy_password = "pr0xy-S3cret-9f2c"
    captcha_key = "anticaptcha-k3y-7d41e0"
    stack = SandboxStack(
        # A captcha on every page load until solved: the key is certainly used.
        scenario=SiteScenario(captcha_rate=1.0, captcha_kind="recaptcha"),
        proxies=2,
        proxy_password=proxy_password,
        anticaptcha=AntiCaptchaConfig(client_keys={captcha_key}),
    ).start()
    try:
        env = stack.env()
        handles = [f"@{profile.unique_id}:30" for profile in stack.content.profiles[1:3]]
        instance = DagsterInstance.ephemeral()
        result = materialize(
            [raw_tiktok_posts],
            resources={
                "apify": ApifyResource(),
                "prices": PricesResource(),
                "captcha": CaptchaResource(
                    api_key=captcha_key, host=env["ANTICAPTCHA_HOST"], poll_interval_s=0.2
                ),
                "raw_store": RawStoreResource(uri=str(tmp_path / "raw")),
                "thresholds": ThresholdsResource(),
                "proxy_pool": ProxyPoolResource(proxy_list=stack.proxy_list),
                "tiktok_scraper": TikTokScraperResource(
                    base_url=stack.base_url,
                    targets=",".join(handles),
                    min_delay_s=0,
                    max_delay_s=0.05,
                ),
            },
            partition_key=TIKTOK_PARTITION,
            instance=instance,
            raise_on_error=False,
        )
        assert proxy_password in stack.proxy_list  # the run really used credentials
        metadata = result.asset_materializations_for_node("raw_tiktok_posts")[0].metadata
        assert metadata["proxy_requests"].value > 0
        assert metadata["captchas_seen"].value > 0 and metadata["captchas_solved"].value > 0
        stored = [
            json.dumps(record.event_log_entry.to_json())
            for record in instance.get_records_for_run(result.run_id, limit=100_000).records
        ]
        assert stored
        assert not [line for line in stored if proxy_password in line or captcha_key in line]
    finally:
        stack.stop()


def test_schema_drift_check_catches_a_renamed_field_between_runs(tmp_path, dagster_home) -> None:
    from ingest_platform.sandbox.content import SandboxContent
    from ingest_platform.sandbox.server import SandboxServer

    content = SandboxContent.generate(seed=7)
    profile = content.profiles[2]
    instance = DagsterInstance.ephemeral()
    with SandboxServer(content=content) as site:
        resources = _resources(
            tmp_path,
            None,
            apify=ApifyResource(),
            captcha=CaptchaResource(),
            tiktok_scraper=TikTokScraperResource(
                base_url=site.base_url, targets=f"@{profile.unique_id}:30", min_delay_s=0, max_delay_s=0.05
            ),
        )

        def run():
            result = materialize(
                [raw_tiktok_posts], resources=resources, partition_key=TIKTOK_PARTITION, instance=instance
            )
            return next(e for e in result.get_asset_check_evaluations() if e.check_name == "schema_drift")

        baseline = run()
        assert baseline.passed and "baseline" in (baseline.description or "")
        unchanged = run()
        assert unchanged.passed and unchanged.metadata["value"].value == 0
        # TikTok renames a block: the counts now live under "statistics".
        for post in content.posts_by_id.values():
            post.item["statistics"] = post.item.pop("stats")
        drifted = run()
    assert not drifted.passed
    assert "stats.playCount" in drifted.metadata["vanished"].value
    assert "statistics" in drifted.metadata["new_fields"].value


def test_auto_switches_to_apify_when_the_site_blocks_the_browser(tmp_path, dagster_home) -> None:
    from ingest_platform.sandbox.apify_api import ApifyStandIn
    from ingest_platform.sandbox.stack import SandboxStack
    from ingest_platform.sandbox.tiktok_site import SiteScenario

    # Every client is banned after 2 requests, and there is one proxy: the browser cannot finish.
    stack = SandboxStack(scenario=SiteScenario(ban_after_requests=2, ban_mode="http_403"), proxies=1).start()
    stand_in = ApifyStandIn(stack.content, token="apify_test_token").start()
    try:
        profiles = stack.content.profiles[:4]
        resources = _resources(
            tmp_path,
            stand_in,
            captcha=CaptchaResource(),
            proxy_pool=ProxyPoolResource(proxy_list=stack.proxy_list),
            tiktok_scraper=TikTokScraperResource(
                base_url=stack.base_url,
                targets=",".join(f"@{p.unique_id}:30" for p in profiles),
                min_delay_s=0,
                max_delay_s=0.05,
                backend="auto",
                pool_wait_max_s=3,
            ),
        )
        result = materialize(
            [raw_tiktok_posts],
            resources=resources,
            partition_key=TIKTOK_PARTITION,
            instance=DagsterInstance.ephemeral(),
        )
    finally:
        stand_in.stop()
        stack.stop()
    assert result.success
    metadata = result.asset_materializations_for_node("raw_tiktok_posts")[0].metadata
    assert metadata["backend_switched"].value is True and metadata["switch_reason"].value
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["scraper_success_rate"] is True
    raw = resources["raw_store"].open().read_posts("tiktok", PARTITION)
    assert raw["post_id"].is_unique  # no duplicates across backends
    expected = {post_id for p in profiles for post_id in p.post_ids[:30]}
    assert set(raw["post_id"]) == expected  # no gaps: every target's newest 30 posts
    assert {"browser", "apify"} == set(raw["backend"])


def test_automation_loads_a_scraped_day_unless_its_blocking_check_failed(
    tmp_path, dagster_home, apify_stand_in, sandbox_content
) -> None:
    """hashed_posts' automation condition: the cross-run form of the blocking success check."""
    from datetime import UTC, datetime

    from dagster import AssetKey, Definitions, evaluate_automation_conditions

    now = datetime.now(UTC)  # eager looks at the latest day only: scrape today's partition
    partition = f"{now:%Y-%m-%d}|default"
    resources = _resources(tmp_path, apify_stand_in)
    instance = DagsterInstance.ephemeral()
    defs = Definitions(assets=[raw_tiktok_posts, raw_facebook_posts, hashed_posts], resources=resources)
    hashed = AssetKey("hashed_posts")

    def scrape(target: str):
        return materialize(
            [raw_tiktok_posts],
            resources=resources,
            partition_key=partition,
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"raw_tiktok_posts": {"config": {"targets": [target], "backend": "apify"}}}},
        )

    evaluation = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
    assert evaluation.get_requested_partitions(hashed) == set()  # nothing scraped yet

    failed = scrape("@no.such.creator")
    checks = {e.check_name: e.passed for e in failed.get_asset_check_evaluations()}
    assert checks["scraper_success_rate"] is False
    evaluation = evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=evaluation.cursor, evaluation_time=now
    )
    assert evaluation.get_requested_partitions(hashed) == set()  # a failed scrape is not loaded

    # The list is scraped again and passes; Facebook never ran, which must not hold the day back.
    passed = scrape(f"@{sandbox_content.profiles[0].unique_id}")
    checks = {e.check_name: e.passed for e in passed.get_asset_check_evaluations()}
    assert checks["scraper_success_rate"] is True
    evaluation = evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=evaluation.cursor, evaluation_time=now
    )
    assert evaluation.get_requested_partitions(hashed) == {f"{now:%Y-%m-%d}"}
