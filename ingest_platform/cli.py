"""The ``ingest-platform`` command: demo, dev, sandbox, parse-page, scrub, replay-dead-letters.

Rules the command keeps (README "Two commands" documents them for users):

- Every import beyond the standard library happens inside the command that needs it, so
  ``ingest-platform --help`` answers instantly.
- A settings or input mistake is found before anything starts (no sandbox, no landing-zone
  files): it raises ``ConfigError`` and ``main()`` prints it as one line,
  ``ingest-platform: error: <setting and fix>``, with exit code 2 (argparse's code for usage errors).
- Exit codes: 0 success, 1 a run/check/page failed, 2 usage or configuration error, 128 + N when
  stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). SIGTERM and SIGHUP unwind like
  Ctrl-C, so ``dev`` stops the whole ``dagster dev`` process group and the sandbox on a service
  manager's stop too.
- ``demo`` and ``dev`` are the local, sandboxed path: they refuse any ``INGEST_ENV`` but
  ``local``, and they scrape the sandbox's own target lists. A ``TIKTOK_TARGETS`` or
  ``TIKTOK_TARGET_LISTS`` the user set is still validated (a typo is an error, not a silent
  pass), and a one-line note says the sandbox's lists are used instead.
- The screen is for people: progress goes to stderr, one line per step; results go to stdout.
  Dagster's DEBUG/INFO run logs and its notes to platform developers (Beta, Preview and
  Supersession warnings, the ``dg`` hint) are hidden unless ``-v`` is given.
- The new subcommand pattern: one ``add_parser`` block in ``build_parser`` and one ``run_<name>``
  handler returning an exit code; raise ``ConfigError`` for bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from ingest_platform.settings import ENVIRONMENTS, ConfigError, check_settings, phone_regions, setting

PROG = "ingest-platform"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SANDBOX_PORT = 8765
DEFAULT_UI_PORT = 3000
POOL_LIMITS = {"scraper_tiktok": 2, "scraper_facebook": 1, "warehouse": 1}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# How long `dagster dev` gets to shut its webserver, daemon and code server down before SIGKILL.
DEV_STOP_GRACE_S = 20.0
# The stamp next to DAGSTER_HOME/dagster.yaml: the sha256 of the copy the CLI installed last.
HOME_CONFIG_STAMP = ".dagster_yaml.installed.sha256"

DESCRIPTION = """\
Run the ingest_platform demo, the Dagster UI with a local sandbox, and small diagnostics.
Everything here runs locally: the sandbox stands in for TikTok, its proxies, Anti-Captcha
and Apify, and DuckDB stands in for Snowflake."""

EPILOG = """\
examples:
  ingest-platform demo                      every asset end to end on DuckDB, then a summary
  ingest-platform dev                       the Dagster UI on http://127.0.0.1:3000 (Ctrl-C stops it)
  ingest-platform dev --port 3001 -v        another port, with Dagster's service logs
  ingest-platform sandbox --scenario adversarial
  ingest-platform parse-page saved_page.html
  echo 'mail jane@example.com' | ingest-platform scrub
  ingest-platform replay-dead-letters --source ORDERS --reason invalid_amount --dry-run

exit codes:
  0    success
  1    a run, check or page failed (the output says which); replay: some letters still fail
  2    usage or configuration error (one line on stderr names the setting and the fix)
  3    replay-dead-letters could not reach the warehouse or the raw store
  130  interrupted by Ctrl-C; 143 stopped by SIGTERM, 129 by SIGHUP (128 + signal number)

Settings are environment variables (README "Configuration"); `ingest-platform COMMAND --help`
shows each command's options and their defaults."""


class Stopped(BaseException):  # like KeyboardInterrupt: a stop request, not an error
    """SIGTERM or SIGHUP arrived: unwind every ``finally`` as Ctrl-C does, then exit 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    # A second stop signal while we clean up must not cut the cleanup short: it is bounded anyway.
    for stop_signal in (*STOP_SIGNALS, signal.SIGINT):
        signal.signal(stop_signal, signal.SIG_IGN)
    raise Stopped(signum)


def _say(message: str) -> None:
    """A progress or note line: stderr, so stdout holds only results."""
    print(message, file=sys.stderr, flush=True)


# --- settings and the instance home ------------------------------------------------------------


def preflight(command: str, *, local_only: bool = False) -> str | None:
    """Check the settings a command depends on before it starts anything.

    Raises ``ConfigError`` (one line naming the setting and the fix). Returns a note to show when
    the command overrides a setting the user made (the sandboxed commands' target lists).
    """
    environment = os.environ.get("INGEST_ENV") or "local"
    # Checked first: a prod environment's missing settings are beside the point for a local command.
    if local_only and environment != "local" and environment in ENVIRONMENTS:
        raise ConfigError(
            f"INGEST_ENV={environment!r}: `{PROG} {command}` runs on the local sandbox and DuckDB only; "
            f"unset INGEST_ENV (or set INGEST_ENV=local), or for {environment} run "
            "`dagster dev -m ingest_platform.definitions` / deploy as in docs/deploy.md"
        )
    check_settings()
    user_targets = [name for name in ("TIKTOK_TARGET_LISTS", "TIKTOK_TARGETS") if os.environ.get(name)]
    if local_only and user_targets:
        return (
            f"note: `{PROG} {command}` scrapes the sandbox's own target lists; your "
            f"{' and '.join(user_targets)} (valid) apply to `dagster dev -m ingest_platform.definitions` "
            "and deployments"
        )
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_home(home: Path | None = None, *, source: Path | None = None) -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml, and export it for this process.

    The home's dagster.yaml follows the repo's: when the repo's file changed since the CLI last
    installed it, the home copy is replaced and one line says so. A home copy that someone edited
    (it no longer matches what the CLI installed, or no stamp says the CLI installed it) is kept,
    and one line says how to take the repo's instead: a user's edit is never overwritten.
    """
    home = (home or Path(os.environ.get("DAGSTER_HOME") or REPO_ROOT / ".dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    source = source or REPO_ROOT / "dagster.yaml"
    target, stamp = home / "dagster.yaml", home / HOME_CONFIG_STAMP
    if source.exists():
        wanted = _sha256(source)
        installed = stamp.read_text().strip() if stamp.exists() else None
        current = _sha256(target) if target.exists() else None
        if current is None or (current == installed and current != wanted):
            shutil.copyfile(source, target)
            stamp.write_text(wanted + "\n")
            if current is not None:
                _say(f"updated {target} from {source} (the repo's file changed)")
        elif current == wanted:
            if installed != wanted:
                stamp.write_text(wanted + "\n")
        else:
            _say(
                f"note: {target} differs from {source} and is kept (edited there, or installed by an "
                "older ingest-platform); delete it to take the repo's version"
            )
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def apply_pool_limits(instance: Any) -> None:
    for pool, limit in POOL_LIMITS.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)


@contextlib.contextmanager
def quiet_dagster_warnings(verbose: int) -> Iterator[None]:
    """Hide Dagster's Beta/Preview/Supersession notes (addressed to the platform's developers,
    nothing a user can act on) unless ``-v``."""
    with warnings.catch_warnings():
        if not verbose:
            from dagster import BetaWarning, PreviewWarning, SupersessionWarning

            for category in (BetaWarning, PreviewWarning, SupersessionWarning):
                warnings.filterwarnings("ignore", category=category)
        yield


# --- the local stack -----------------------------------------------------------------------------

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


# --- demo ------------------------------------------------------------------------------------------


def seed_landing_zone(landing: Path) -> dict[str, Any]:
    """Drop demo order files (with a few bad rows and one corrupt file) into the landing zone."""
    from ingest_platform.sandbox.orders import write_malformed_file, write_order_files

    landing.mkdir(parents=True, exist_ok=True)
    truth = write_order_files(
        landing, n_files=3, rows_per_file=2_000, fmt="jsonl", seed=11, bad_rows_per_file=2
    )
    corrupt = write_malformed_file(landing, "corrupt_json")
    files = [*truth.files, corrupt]
    lines = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in files)
    return {
        "files": len(files), "lines": lines, "bad_rows": truth.bad_row_count, "corrupt_file": corrupt.name
    }  # fmt: skip


def _check_results(instance: Any, run_id: str) -> list[dict[str, Any]]:
    from dagster import DagsterEventType

    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.ASSET_CHECK_EVALUATION}, limit=1000
    ).records
    results = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        results.append(
            {
                "asset": evaluation.asset_check_key.asset_key.to_user_string(),
                "check": evaluation.check_name,
                "passed": evaluation.passed,
                "severity": evaluation.severity.value,
                "metadata": {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()},
            }
        )
    return results


def _materialization_metadata(instance: Any, run_id: str, asset: str) -> dict[str, Any]:
    """Metadata of ``asset``'s materialization in one run (empty if the run did not materialize it)."""
    from dagster import DagsterEventType

    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.ASSET_MATERIALIZATION}, limit=1000
    ).records
    for record in records:
        materialization = record.event_log_entry.dagster_event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return {}


def _check_line(check: dict[str, Any], partition: str | None) -> str:
    label = "PASS" if check["passed"] else check["severity"]  # WARN or ERROR
    where = f"  ({partition})" if partition else ""
    line = f"  [{label}] {check['asset']}.{check['check']}{where}"
    if not check["passed"] and check["check"] == "average_batch_size":
        value, threshold = check["metadata"].get("value"), check["metadata"].get("threshold")
        line += (
            f"\n         expected in the demo: its loads average {value:,.0f} rows per batch against a "
            f"production minimum of {threshold:,.0f}; production-sized loads meet it"
            if isinstance(value, int | float) and isinstance(threshold, int | float)
            else "\n         expected in the demo: demo-sized loads are smaller than production batches"
        )
    return line


def _first(metadata: dict[str, Any], *names: str) -> int:
    return next((int(metadata[name]) for name in names if name in metadata), 0)


def _orders_line(metadata: dict[str, Any]) -> str:
    """The ORDERS load as one sum: every record read went exactly one way.

    Reads the per-file reconciliation figures (``rows_read``, ``rows_merged``, ``rows_superseded``,
    ``quarantined_records``) and falls back to the older ``records_in``/``rows_loaded`` names.
    """
    read = _first(metadata, "rows_read", "records_in")
    loaded = _first(metadata, "rows_merged", "rows_loaded", "dagster/row_count")
    superseded = _first(metadata, "rows_superseded")
    dead = _first(metadata, "dead_letters")
    in_quarantine = _first(metadata, "quarantined_records")
    quarantined_files = _first(metadata, "files_quarantined")
    files = _first(metadata, "files_loaded") + quarantined_files
    return (
        f"orders: {read} records read from {files} file(s) = {loaded} loaded + {superseded} superseded "
        f"+ {dead} dead-lettered + {in_quarantine} in {quarantined_files} quarantined file(s)"
    )


def run_demo(args: argparse.Namespace) -> int:
    note = preflight("demo", local_only=True)
    home = prepare_home(Path(args.home) if args.home else None)
    os.environ["INGEST_ENV"] = "local"
    if note:
        _say(note)
    print(f"DAGSTER_HOME={home}")
    server = LocalStack(args.port)
    print(f"Sandbox TikTok at {server.base_url} (3 proxies, Anti-Captcha and Apify stand-ins)")
    try:
        os.environ.update(server.env())
        landing = Path(os.environ.get("ORDERS_LANDING_URI") or home / "landing" / "orders")
        seeded = seed_landing_zone(landing)
        print(
            f"Landing zone {landing}: {seeded['files']} order files, {seeded['lines']} lines "
            f"({seeded['bad_rows']} invalid rows and 1 corrupt line in {seeded['corrupt_file']} among them)"
        )
        with quiet_dagster_warnings(args.verbose):
            return _run_demo_jobs(args, home)
    finally:
        server.stop()


def _run_demo_jobs(args: argparse.Namespace, home: Path) -> int:
    from dagster import AssetKey, DagsterInstance, MultiPartitionKey

    from ingest_platform.dagster_layer.common import DATE_DIMENSION, LIST_DIMENSION, tiktok_target_lists
    from ingest_platform.definitions import defs

    instance = DagsterInstance.get()
    apply_pool_limits(instance)
    partition = datetime.now(UTC).strftime("%Y-%m-%d")
    # Run logs: errors only by default (the summary reports every outcome); -v INFO, -vv DEBUG.
    log_level = {0: "ERROR", 1: "INFO"}.get(args.verbose, "DEBUG")
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
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
    outcomes = []
    for number, (job_name, partition_key) in enumerate(jobs, start=1):
        _say(f"[{number}/{len(jobs)}] {job_name}{f' for {partition_key}' if partition_key else ''} …")
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=run_config, raise_on_error=False
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
    orders_run = next(run_id for job_name, run_id, _, _ in outcomes if job_name == "orders_job")
    print(_orders_line(_materialization_metadata(instance, orders_run, "ORDERS")))
    checks = [
        (check, partition_key)
        for _, run_id, _, partition_key in outcomes
        for check in _check_results(instance, run_id)
    ]
    failed = [check for check, _ in checks if not check["passed"]]
    by_severity = {level: sum(1 for c in failed if c["severity"] == level) for level in ("ERROR", "WARN")}
    print(
        f"checks: {len(checks) - len(failed)} passed, {len(failed)} failed "
        f"({by_severity['ERROR']} ERROR, {by_severity['WARN']} WARN)"
    )
    for check, partition_key in checks:
        print(_check_line(check, partition_key))
    report = instance.get_latest_materialization_event(AssetKey("cost_report"))
    if report is not None and report.asset_materialization is not None:
        metadata = {k: getattr(v, "value", v) for k, v in report.asset_materialization.metadata.items()}
        posts = metadata.get("posts_per_day")
        volume = f"{posts:,.0f} sandbox posts/day" if isinstance(posts, int | float) else "sandbox scrapes"
        print(f"cost report: {metadata.get('recommendation')} ({metadata.get('reason')})")
        print(
            f"  computed from this demo's sandbox numbers ({volume} at the default list prices): "
            "it shows the arithmetic, not advice for your deployment"
        )
    print(f"warehouse file: {warehouse.duckdb_path}")
    print(f"open the UI: make dev  →  http://127.0.0.1:{DEFAULT_UI_PORT} (runs above are in its run history)")
    return EXIT_OK if all(success for _, _, success, _ in outcomes) else EXIT_FAILED


# --- dev -------------------------------------------------------------------------------------------


def _ui_answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop_process_group(process: subprocess.Popen[bytes], grace_s: float = DEV_STOP_GRACE_S) -> None:
    """SIGTERM the whole group (dagster dev, webserver, daemon, code server), SIGKILL what outlives
    the grace period. The group id is the leader's pid (``start_new_session``)."""
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def run_dev(args: argparse.Namespace) -> int:
    note = preflight("dev", local_only=True)
    home = prepare_home(Path(args.home) if args.home else None)
    os.environ["INGEST_ENV"] = "local"
    if note:
        _say(note)
    server = LocalStack(args.sandbox_port)
    process: subprocess.Popen[bytes] | None = None
    try:
        env = {**os.environ, **server.env()}
        # dagster dev runs in DAGSTER_HOME (below): this checkout's package must stay importable there.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        from dagster import DagsterInstance

        apply_pool_limits(DagsterInstance.get())
        url = f"http://{args.host}:{args.port}"
        # Alerts link to runs in this UI unless the user points them elsewhere.
        env.setdefault("DAGSTER_UI_URL", url)
        print(f"Sandbox TikTok at {server.base_url}; DAGSTER_HOME={home}", flush=True)
        # Quiet by default: the UI shows every run, log and check. Dagster's service logs (and their
        # first-start warnings about cursors and beta APIs) are for -v. The dg hint is silenced: the
        # `dg` tool is not part of this project.
        level = "info" if args.verbose else "error"
        command = [
            sys.executable, "-W", "ignore:Function `dev_command` is superseded",
            "-m", "dagster", "dev", "-h", args.host, "-p", str(args.port),
            "-w", str(REPO_ROOT / "workspace.yaml"), "--log-level", level, "--code-server-log-level", level,
        ]  # fmt: skip
        # cwd = DAGSTER_HOME: dagster dev warns about any other folder holding a dagster.yaml.
        # Own session: the group is stopped as one on exit (REFERENCE §8).
        process = subprocess.Popen(command, env=env, cwd=home, start_new_session=True)
        _say(f"Starting the Dagster UI at {url} …")
        announced = False
        while process.poll() is None:
            if not announced and _ui_answers(url):
                _say(f"UI ready at {url}  (Ctrl-C stops the UI and the sandbox)")
                announced = True
            time.sleep(0.5)
        return EXIT_OK if process.returncode == 0 else EXIT_FAILED
    finally:
        if process is not None:
            _stop_process_group(process)
        server.stop()


# --- sandbox, parse-page, scrub ----------------------------------------------------------------------


class _ScenarioChoices(Sequence[str]):
    """The sandbox presets, loaded on first use: the scenarios module pulls in aiohttp, and
    ``--help`` of the other commands should not wait for it."""

    def _names(self) -> tuple[str, ...]:
        from ingest_platform.sandbox.scenarios import SCENARIO_NAMES

        return SCENARIO_NAMES

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, value: object) -> bool:
        return value in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def run_sandbox(args: argparse.Namespace) -> int:
    from ingest_platform.sandbox.server import serve_forever

    serve_forever(args.host, args.port, scenario=args.scenario)
    return 0


def run_parse_page(args: argparse.Namespace) -> int:
    """Exit codes: 0 the page parsed with status ok; 1 it parsed to another status (private,
    blocked, empty shell, or broken/unparseable: the reason is in the page line's ``error``);
    2 the file cannot be read (missing, a directory, no permission, larger than 1 GiB).
    Failures print one line on stderr, never a traceback. Bytes that are not UTF-8 are
    replaced with U+FFFD and the page is parsed as it then reads."""
    from ingest_platform.scraping.tiktok_page import page_result_to_jsonl, parse_file

    max_bytes = 1 << 30  # the whole file is read: past this it refuses rather than exhaust memory
    path = Path(args.file)
    try:
        if not path.is_file():
            print(f"parse-page: no such file: {path}", file=sys.stderr)
            return 2
        size = path.stat().st_size
        if size > max_bytes:
            print(f"parse-page: {path} is {size} bytes, more than {max_bytes}", file=sys.stderr)
            return 2
        result = parse_file(path, source_url=args.url)
    except (OSError, MemoryError) as error:
        print(f"parse-page: cannot read {path}: {type(error).__name__}: {error}"[:300], file=sys.stderr)
        return 2
    for line in page_result_to_jsonl(result):
        print(line)
    # A page that is not "ok" is exactly what users run this to see: report it, and say so in the exit code.
    if result.status.value != "ok":
        print(f"parse-page: page status {result.status.value}: {result.error or ''}"[:300], file=sys.stderr)
        return 1
    return 0


REPLAY_EXIT_CODES = """exit codes:
  0  every selected dead letter was replayed (or none matched)
  1  the replay ran; some selected letters still fail today's rules (they stay, with their new reason)
  2  bad arguments (e.g. a --since that is not an ISO 8601 date)
  3  the replay could not run (warehouse or raw store unreachable)

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
    preflight("replay-dead-letters")
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


def run_scrub(args: argparse.Namespace) -> int:
    from ingest_platform.privacy.keys import PrivacyKeyError, resolve_key
    from ingest_platform.privacy.text_scrubber import TextScrubber, scrub_lines
    from ingest_platform.privacy.tokens import Pseudonymizer

    preflight("scrub")
    home = prepare_home(Path(args.home) if args.home else None)
    try:
        material = resolve_key(os.environ.get("PRIVACY_HMAC_KEY"), env=os.environ.get("INGEST_ENV", "local"),
                               instance_dir=home)  # fmt: skip
    except PrivacyKeyError as error:
        raise ConfigError(str(error)) from None
    try:
        scrubber = TextScrubber(
            Pseudonymizer(material.key, material.key_id),
            default_region=args.region or setting("PRIVACY_PHONE_REGION"),
            extra_phone_regions=phone_regions(setting("PRIVACY_PHONE_REGIONS")),
        )
    except ValueError as error:  # an unknown --region
        raise ConfigError(f"--region: {error}") from None
    for line in scrub_lines((raw.rstrip("\n") for raw in sys.stdin), scrubber):
        print(line, flush=True)
    return EXIT_OK


# --- the parser ----------------------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example and exit-code tables as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ingest-platform")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "unknown"


HOME_HELP = "instance directory: run history, raw store, local privacy key, DuckDB file " \
    "(default: $DAGSTER_HOME, else ./.dagster_home)"  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="show Dagster's logs and warnings too; -vv for DEBUG run logs (default: progress lines only)",
    )  # fmt: skip

    def add(name: str, help_text: str, example: str, parents: Sequence[argparse.ArgumentParser] = ()):
        return commands.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
            epilog=f"example:\n  {example}", formatter_class=_HelpFormatter, parents=list(parents),
        )  # fmt: skip

    demo = add("demo", "run every asset end to end on DuckDB against the sandbox, then print a summary",
               "ingest-platform demo --home /tmp/demo_home", [verbosity])  # fmt: skip
    demo.add_argument("--home", help=HOME_HELP)
    demo.add_argument(
        "--port", type=int, default=DEFAULT_SANDBOX_PORT,
        help="sandbox port; a busy port falls back to a free one (default: %(default)s)",
    )  # fmt: skip
    demo.set_defaults(handler=run_demo)

    dev = add("dev", "the Dagster UI (dagster dev) on loopback with the sandbox running",
              "ingest-platform dev --port 3001", [verbosity])  # fmt: skip
    dev.add_argument("--home", help=HOME_HELP)
    dev.add_argument("--host", default="127.0.0.1", help="UI address (default: %(default)s)")
    dev.add_argument("--port", type=int, default=DEFAULT_UI_PORT, help="UI port (default: %(default)s)")
    dev.add_argument(
        "--sandbox-port", type=int, default=DEFAULT_SANDBOX_PORT,
        help="sandbox port; a busy port falls back to a free one (default: %(default)s)",
    )  # fmt: skip
    dev.set_defaults(handler=run_dev)

    sandbox = add("sandbox", "serve the local TikTok stand-in in the foreground",
                  "ingest-platform sandbox --scenario adversarial")  # fmt: skip
    sandbox.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    sandbox.add_argument("--port", type=int, default=DEFAULT_SANDBOX_PORT, help="port (default: %(default)s)")
    sandbox.add_argument(
        "--scenario", default=None, choices=_ScenarioChoices(), metavar="NAME",
        help="a hostile-site preset, one of: %(choices)s "
        "(default: none, a well-behaved site without proxies)",
    )  # fmt: skip
    sandbox.set_defaults(handler=run_sandbox)

    parse_page = add("parse-page", "print posts and page status of a saved page as JSON lines",
                     "ingest-platform parse-page saved.html --url https://www.tiktok.com/@nasa")  # fmt: skip
    parse_page.add_argument("file", help="a saved TikTok page (.html) or a webapp.* JSON value")
    parse_page.add_argument("--url", help="source URL to record (default: the file's URI)")
    parse_page.set_defaults(handler=run_parse_page)

    scrub = add("scrub", "scrub PII from stdin lines; one JSON line per input line",
                "echo 'call +44 20 7946 0958' | ingest-platform scrub --region GB")  # fmt: skip
    scrub.add_argument("--home", help=HOME_HELP + "; holds the local key when PRIVACY_HMAC_KEY is unset")
    scrub.add_argument(
        "--region",
        help="phone region for numbers written without a +country code "
        "(default: PRIVACY_PHONE_REGION, else US; PRIVACY_PHONE_REGIONS adds more)",
    )  # fmt: skip
    scrub.set_defaults(handler=run_scrub)

    replay = commands.add_parser(
        "replay-dead-letters",
        help="re-validate dead letters with today's rules and load those that pass, exactly once",
        description="Select dead letters by source, reason and time, re-validate their raw payloads "
        "with today's rules, load those that pass into ORDERS (same MERGE as the loader) and mark "
        "them replayed; those that still fail stay, with their new reason.",
        epilog=REPLAY_EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    replay.add_argument("--source", default="ORDERS", help="dead letters of this source (default ORDERS)")
    replay.add_argument("--reason", help="a substring of the reason, e.g. invalid_amount")
    replay.add_argument("--exact-reason", action="store_true", help="match --reason exactly")
    replay.add_argument("--since", help="rejected at or after this ISO 8601 date/time (naive = UTC)")
    replay.add_argument("--until", help="rejected before this ISO 8601 date/time (naive = UTC)")
    replay.add_argument("--dry-run", action="store_true", help="validate and count only; change nothing")
    replay.add_argument("--home", help=HOME_HELP)
    replay.set_defaults(handler=run_replay_dead_letters)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS} if in_main_thread else {}
    try:
        return int(args.handler(args))
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say(f"{PROG}: interrupted")
        return 128 + signal.SIGINT
    except Stopped as stop:
        _say(f"{PROG}: stopped by {signal.Signals(stop.signum).name}")
        return 128 + stop.signum
    finally:
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)


if __name__ == "__main__":
    raise SystemExit(main())
