"""The ``ingest-platform`` command: demo, dev, sandbox, parse-page, scrub, replay-dead-letters.

Every import beyond the standard library happens inside the command that needs it, so
``ingest-platform --help`` answers instantly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SANDBOX_PORT = 8765
POOL_LIMITS = {"scraper_tiktok": 2, "scraper_facebook": 1, "warehouse": 1}


def prepare_home(home: Path | None = None) -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml, and export it for this process."""
    home = (home or Path(os.environ.get("DAGSTER_HOME") or REPO_ROOT / ".dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    source = REPO_ROOT / "dagster.yaml"
    if source.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(source, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def apply_pool_limits(instance: Any) -> None:
    for pool, limit in POOL_LIMITS.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)


DEMO_FACEBOOK_PAGES = ("https://www.facebook.com/cityroasters", "https://www.facebook.com/harbourbooks")


class LocalStack:
    """Every offline stand-in the platform talks to: the TikTok site with its proxies and
    Anti-Captcha service (``SandboxStack``) and the Apify API. Production code only sees URLs."""

    def __init__(self, port: int, scenario: str = "calm") -> None:
        from ingest_platform.sandbox.apify_api import ApifyStandIn
        from ingest_platform.sandbox.stack import SandboxStack

        try:
            self.stack = SandboxStack(scenario=scenario, port=port).start()
        except OSError:  # the usual port is busy: any free one will do
            self.stack = SandboxStack(scenario=scenario, port=0).start()
        try:
            self.apify = ApifyStandIn(self.stack.content, token="apify_demo_token")
            self.apify.start()
        except BaseException:
            self.stack.stop()
            raise

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    def env(self) -> dict[str, str]:
        from ingest_platform.sandbox.server import default_targets

        # Two named lists, so the demo scrape fans out into one run per (day, list) as in production.
        targets = default_targets(self.stack.content)
        creators = ",".join(t for t in targets if not t.startswith("#"))
        hashtags = ",".join(t for t in targets if t.startswith("#"))
        return {
            **self.stack.env(),
            "TIKTOK_TARGET_LISTS": f"creators={creators}; hashtags={hashtags}",
            "APIFY_TOKEN": "apify_demo_token",
            "APIFY_API_URL": self.apify.api_url,
            "FACEBOOK_PAGES": ",".join(DEMO_FACEBOOK_PAGES),
            "TIKTOK_BACKEND": "auto",
        }

    def stop(self) -> None:
        self.apify.stop()
        self.stack.stop()


def seed_landing_zone(landing: Path) -> dict[str, Any]:
    """Drop demo order files (with a few bad rows and one corrupt file) into the landing zone."""
    from ingest_platform.sandbox.orders import write_malformed_file, write_order_files

    landing.mkdir(parents=True, exist_ok=True)
    truth = write_order_files(
        landing, n_files=3, rows_per_file=2_000, fmt="jsonl", seed=11, bad_rows_per_file=2
    )
    corrupt = write_malformed_file(landing, "corrupt_json")
    return {"files": len(truth.files) + 1, "orders": len(truth.order_ids), "corrupt_file": corrupt.name}


def _check_results(instance: Any, run_id: str) -> list[tuple[str, str, bool]]:
    from dagster import DagsterEventType

    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.ASSET_CHECK_EVALUATION}, limit=1000
    ).records
    results = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        results.append(
            (evaluation.asset_check_key.asset_key.to_user_string(), evaluation.check_name, evaluation.passed)
        )
    return results


def run_demo(args: argparse.Namespace) -> int:
    home = prepare_home(Path(args.home) if args.home else None)
    os.environ.setdefault("INGEST_ENV", "local")
    print(f"DAGSTER_HOME={home}")
    server = LocalStack(args.port)
    print(f"Sandbox TikTok at {server.base_url} (3 proxies, Anti-Captcha and Apify stand-ins)")
    try:
        os.environ.update(server.env())
        landing = Path(os.environ.get("ORDERS_LANDING_URI") or home / "landing" / "orders")
        seeded = seed_landing_zone(landing)
        print(f"Landing zone {landing}: {seeded['files']} order files ({seeded['orders']} orders, 1 corrupt)")

        from dagster import DagsterInstance, MultiPartitionKey

        from ingest_platform.dagster_layer.common import DATE_DIMENSION, LIST_DIMENSION, tiktok_target_lists
        from ingest_platform.definitions import defs

        instance = DagsterInstance.get()
        apply_pool_limits(instance)
        partition = datetime.now(UTC).strftime("%Y-%m-%d")
        outcomes = []
        # One scrape run per target list (what the per-list schedules launch), then the Facebook
        # job, whose hashed_posts/enriched_posts load the day from both platforms and every list.
        scrapes = [
            ("tiktok_scrape_job", MultiPartitionKey({DATE_DIMENSION: partition, LIST_DIMENSION: name}))
            for name in tiktok_target_lists
        ]
        jobs = (
            *scrapes,
            ("facebook_posts_job", partition),
            ("orders_job", None),
            ("warehouse_cost_job", partition),
            ("cost_report_job", None),
        )
        for job_name, partition_key in jobs:
            print(f"Running {job_name}{f' for {partition_key}' if partition_key else ''} …", flush=True)
            job = defs.resolve_job_def(job_name)
            result = job.execute_in_process(
                instance=instance, partition_key=partition_key, raise_on_error=False
            )
            outcomes.append((job_name, result.run_id, result.success, partition_key))

        warehouse = defs.resources["warehouse"]
        with warehouse.open() as wh:
            counts = wh.table_row_counts()
        print("\n=== ingest_platform demo summary ===")
        for job_name, run_id, success, partition_key in outcomes:
            where = f" [{partition_key}]" if partition_key else ""
            print(f"run {job_name}{where}: {'SUCCESS' if success else 'FAILURE'} ({run_id})")
        print("rows per table:")
        for table, rows in sorted(counts.items()):
            print(f"  {table:<16} {rows:>8}")
        checks = [
            (*check, partition_key)
            for _, run_id, _, partition_key in outcomes
            for check in _check_results(instance, run_id)
        ]
        passed = sum(1 for check in checks if check[2])
        print(f"checks: {passed} passed, {len(checks) - passed} failed")
        for asset_key, check_name, ok, partition in checks:
            where = f"  ({partition})" if partition else ""
            print(f"  [{'PASS' if ok else 'FAIL'}] {asset_key}.{check_name}{where}")
        from dagster import AssetKey

        report = instance.get_latest_materialization_event(AssetKey("cost_report"))
        if report is not None and report.asset_materialization is not None:
            recommendation = report.asset_materialization.metadata.get("recommendation")
            reason = report.asset_materialization.metadata.get("reason")
            print(f"cost report: {getattr(recommendation, 'value', recommendation)} "
                  f"({getattr(reason, 'value', reason)})")  # fmt: skip
        print(f"warehouse file: {warehouse.duckdb_path}")
        print("open the UI: make dev  →  http://127.0.0.1:3000 (runs above are in its run history)")
        return 0 if all(success for _, _, success, _ in outcomes) else 1
    finally:
        server.stop()


def run_dev(args: argparse.Namespace) -> int:
    home = prepare_home(Path(args.home) if args.home else None)
    os.environ.setdefault("INGEST_ENV", "local")
    server = LocalStack(args.sandbox_port)
    env = {**os.environ, **server.env()}
    from dagster import DagsterInstance

    apply_pool_limits(DagsterInstance.get())
    print(f"Sandbox TikTok at {server.base_url}; DAGSTER_HOME={home}; UI at http://{args.host}:{args.port}")
    command = [
        sys.executable, "-m", "dagster", "dev", "-h", args.host, "-p", str(args.port),
        "-w", str(REPO_ROOT / "workspace.yaml"),
    ]  # fmt: skip
    # Own process group: dagster dev ignores SIGTERM otherwise and leaves orphans (REFERENCE §8).
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        server.stop()


def run_sandbox(args: argparse.Namespace) -> int:
    from ingest_platform.sandbox.server import serve_forever

    serve_forever(args.host, args.port, scenario=args.scenario)
    return 0


def run_parse_page(args: argparse.Namespace) -> int:
    from ingest_platform.scraping.tiktok_page import page_result_to_jsonl, parse_file

    path = Path(args.file)
    if not path.is_file():
        print(f"parse-page: no such file: {path}", file=sys.stderr)
        return 2
    result = parse_file(path, source_url=args.url)
    for line in page_result_to_jsonl(result):
        print(line)
    # A page that is not "ok" is exactly what users run this to see: report it, and say so in the exit code.
    return 0 if result.status.value == "ok" else 1


def run_scrub(args: argparse.Namespace) -> int:
    from ingest_platform.privacy.keys import resolve_key
    from ingest_platform.privacy.text_scrubber import TextScrubber, scrub_lines
    from ingest_platform.privacy.tokens import Pseudonymizer

    home = prepare_home(Path(args.home) if args.home else None)
    material = resolve_key(os.environ.get("PRIVACY_HMAC_KEY"), env=os.environ.get("INGEST_ENV", "local"),
                           instance_dir=home)  # fmt: skip
    scrubber = TextScrubber(Pseudonymizer(material.key, material.key_id), default_region=args.region)
    for line in scrub_lines((raw.rstrip("\n") for raw in sys.stdin), scrubber):
        print(line, flush=True)
    return 0


REPLAY_EXIT_CODES = """exit codes:
  0  every selected dead letter was replayed (or none matched)
  1  the replay ran; some selected letters still fail today's rules (they stay, with their new reason)
  2  bad arguments (e.g. a --since that is not an ISO 8601 date)
  3  the replay could not run (warehouse or raw store unreachable, bad settings)

example:
  ingest-platform replay-dead-letters --source ORDERS --reason invalid_amount \\
      --since 2026-12-01 --until 2026-12-06T12:00Z --dry-run
"""


def run_replay_dead_letters(args: argparse.Namespace) -> int:
    """Replay dead letters with today's rules (``ingest_platform.orders.replay``); one summary line."""
    import uuid

    from ingest_platform.orders.replay import ReplaySelection, parse_time

    try:
        selection = ReplaySelection(
            source=args.source,
            reason=args.reason,
            reason_exact=args.exact_reason,
            since=parse_time(args.since),
            until=parse_time(args.until),
        )
    except ValueError as exc:
        print(f"replay-dead-letters: {exc}", file=sys.stderr)
        return 2
    if selection.since and selection.until and selection.since >= selection.until:
        print("replay-dead-letters: --since must be before --until", file=sys.stderr)
        return 2
    prepare_home(Path(args.home) if args.home else None)
    try:
        from ingest_platform.dagster_layer.environments import resources_for
        from ingest_platform.orders.replay import replay_dead_letters
        from ingest_platform.privacy.policies import ORDERS_POLICY

        resources = resources_for(os.environ.get("INGEST_ENV", "local"))
        warehouse = resources["warehouse"].process_config_and_initialize()
        raw_store = resources["raw_store"].process_config_and_initialize()
        privacy = resources["privacy"].process_config_and_initialize()
        run_id = f"cli-replay-{uuid.uuid4()}"
        with warehouse.open() as wh:
            report = replay_dead_letters(
                raw_store.open(),
                wh,
                selection=selection,
                apply_privacy=lambda frame: privacy.apply(ORDERS_POLICY, frame)[0],
                run_id=run_id,
                query_tag=f"ingest_platform:dead_letter_replay:{run_id[11:19]}",
                dry_run=args.dry_run,
            )
    except Exception as exc:  # one line for the operator; the traceback helps nobody at a prompt
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"replay-dead-letters: could not replay: {type(exc).__name__}: {first}", file=sys.stderr)
        return 3
    print(report.summary())
    return 1 if report.still_failing else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run every asset end to end on DuckDB against the sandbox")
    demo.add_argument("--home", help="DAGSTER_HOME (default ./.dagster_home)")
    demo.add_argument("--port", type=int, default=DEFAULT_SANDBOX_PORT, help="sandbox port")
    demo.set_defaults(handler=run_demo)

    dev = commands.add_parser("dev", help="dagster dev on loopback with the sandbox running")
    dev.add_argument("--home")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--sandbox-port", type=int, default=DEFAULT_SANDBOX_PORT)
    dev.set_defaults(handler=run_dev)

    sandbox = commands.add_parser("sandbox", help="serve the local TikTok stand-in in the foreground")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=DEFAULT_SANDBOX_PORT)
    sandbox.add_argument("--scenario", default=None, help="a preset of ingest_platform.sandbox.scenarios")
    sandbox.set_defaults(handler=run_sandbox)

    parse_page = commands.add_parser(
        "parse-page", help="print posts and page status of a saved page as JSON lines"
    )
    parse_page.add_argument("file", help="a saved TikTok page (.html) or a webapp.* JSON value")
    parse_page.add_argument("--url", help="source URL to record (default: the file's URI)")
    parse_page.set_defaults(handler=run_parse_page)

    scrub = commands.add_parser("scrub", help="scrub PII from stdin lines; one JSON line per input")
    scrub.add_argument("--home")
    scrub.add_argument("--region", default="US", help="default phone region for national numbers")
    scrub.set_defaults(handler=run_scrub)

    replay = commands.add_parser(
        "replay-dead-letters",
        help="re-validate dead letters with today's rules and load those that pass, exactly once",
        description="Select dead letters by source, reason and time, re-validate their raw payloads "
        "with today's rules, load those that pass into ORDERS (same MERGE as the loader) and mark "
        "them replayed; those that still fail stay, with their new reason.",
        epilog=REPLAY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("--source", default="ORDERS", help="dead letters of this source (default ORDERS)")
    replay.add_argument("--reason", help="a substring of the reason, e.g. invalid_amount")
    replay.add_argument("--exact-reason", action="store_true", help="match --reason exactly")
    replay.add_argument("--since", help="rejected at or after this ISO 8601 date/time (naive = UTC)")
    replay.add_argument("--until", help="rejected before this ISO 8601 date/time (naive = UTC)")
    replay.add_argument("--dry-run", action="store_true", help="validate and count only; change nothing")
    replay.add_argument("--home", help="DAGSTER_HOME (default ./.dagster_home)")
    replay.set_defaults(handler=run_replay_dead_letters)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
