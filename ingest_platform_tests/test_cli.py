"""The ``ingest-platform`` command: parse-page on real captured pages, scrub on stdin, help and
exit codes, one-line configuration errors before anything starts, the home's dagster.yaml, and one
demo run whose screen is checked (clean stderr, severities, notes, counts that add up)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ingest_platform_tests.conftest import REPO_ROOT, modules_loaded_by, real_fixtures_dir

TIKTOK = real_fixtures_dir() / "tiktok"


def _cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ingest_platform.cli", *args],
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_parse_page_prints_posts_and_page_status_of_a_real_page() -> None:
    result = _cli("parse-page", str(TIKTOK / "video-ahormozi-7336007528070958382.html"))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    posts = [line for line in lines if line["type"] == "post"]
    page = [line for line in lines if line["type"] == "page"]
    assert len(posts) == 1 and posts[0]["post_id"] == "7336007528070958382"
    assert posts[0]["author_handle"] == "ahormozi"
    assert page == [
        {"type": "page", "kind": "video", "status": "ok", "status_code": 0, "posts": 1, "error": None}
    ]


def test_parse_page_reports_an_empty_shell_with_a_failing_exit_code() -> None:
    result = _cli("parse-page", str(TIKTOK / "tag-saas-empty-shell.tail.html"))
    assert result.returncode == 1
    page = json.loads(result.stdout.splitlines()[-1])
    assert page["status"] == "empty_shell" and page["posts"] == 0


def test_parse_page_on_a_missing_file_is_a_clear_error(tmp_path) -> None:
    result = _cli("parse-page", str(tmp_path / "nope.html"))
    assert result.returncode == 2 and "no such file" in result.stderr


@pytest.mark.parametrize("env_name", ["local"])
def test_scrub_prints_one_json_line_per_input_line(tmp_path, env_name: str) -> None:
    import os

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "INGEST_ENV": env_name, "PRIVACY_HMAC_KEY": "k" * 48}
    text = "mail jane.doe@example.com or call +44 20 7946 0958\nnothing personal here\n"
    result = _cli("scrub", stdin=text, env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0]["found"] == {"EMAIL": 1, "PHONE": 1}
    assert (
        "jane.doe" not in lines[0]["text"] and "[EMAIL:" in lines[0]["text"] and "[PHONE:" in lines[0]["text"]
    )
    assert lines[1] == {"text": "nothing personal here", "found": {}}


# --- help, version, exit codes -------------------------------------------------------------------------

# Settings a developer's shell may carry: each test states its own.
_USER_SETTINGS = ("INGEST_ENV", "PRIVACY_HMAC_KEY", "TIKTOK_TARGETS", "TIKTOK_TARGET_LISTS", "DAGSTER_HOME")


def _clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _USER_SETTINGS}
    return {**env, "DAGSTER_HOME": str(tmp_path / "home"), **settings}


def test_top_level_help_is_for_users_with_examples_and_exit_codes() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    assert "Every import beyond the standard library" not in result.stdout  # the developer note
    assert "examples:\n  ingest-platform demo" in result.stdout
    for code in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n  {code}" in result.stdout.split("exit codes:")[1]
    for command in ("demo", "dev", "sandbox", "parse-page", "scrub"):
        assert re.search(rf"^    {command}\b", result.stdout, re.MULTILINE)


def test_help_loads_no_heavy_library() -> None:
    # `ingest-platform --help` must answer at once: Dagster, the sandbox's aiohttp and pandas load
    # only inside the command that needs them.
    loaded = modules_loaded_by(["ingest_platform.cli"], ["dagster", "aiohttp", "pandas", "playwright"])
    assert loaded == {"dagster": [], "aiohttp": [], "pandas": [], "playwright": []}


def test_version() -> None:
    result = _cli("--version")
    assert result.returncode == 0 and re.fullmatch(r"ingest-platform \d+\.\d+\.\d+\S*\n", result.stdout)


@pytest.mark.parametrize("command", ["demo", "dev", "sandbox", "parse-page", "scrub"])
def test_every_option_has_help_text_and_every_default_is_shown(command: str) -> None:
    from ingest_platform.cli import build_parser

    subparser = build_parser()._subparsers._group_actions[0].choices[command]
    for action in subparser._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        if action.option_strings and action.default not in (None, False) and action.dest != "help":
            assert "(default: %(default)s)" in action.help, f"{command} {action.option_strings}"
    result = _cli(command, "--help")
    assert result.returncode == 0
    assert f"ingest-platform {command}" in result.stdout.split("\nexample:\n  ")[1]


def test_dev_help_shows_its_defaults() -> None:
    out = " ".join(_cli("dev", "--help").stdout.split())
    assert "UI port (default: 3000)" in out and "UI address (default: 127.0.0.1)" in out
    assert "sandbox port; a busy port falls back to a free one (default: 8765)" in out


def test_scenario_lists_its_choices_and_a_wrong_one_is_a_usage_error() -> None:
    from ingest_platform.sandbox.scenarios import SCENARIO_NAMES

    help_text = " ".join(_cli("sandbox", "--help").stdout.split())
    assert ", ".join(SCENARIO_NAMES) in help_text
    result = _cli("sandbox", "--scenario", "nonsense")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid choice: 'nonsense'" in result.stderr and "'adversarial'" in result.stderr


# --- configuration mistakes: one line, exit 2, nothing started -------------------------------------------

_MISTAKES = [
    ("demo", {"INGEST_ENV": "staging"}, "INGEST_ENV='staging' is not one of local, prod"),
    ("demo", {"INGEST_ENV": "prod"}, "INGEST_ENV='prod': `ingest-platform demo` runs on the local sandbox"),
    ("dev", {"INGEST_ENV": "prod"}, "INGEST_ENV='prod': `ingest-platform dev` runs on the local sandbox"),
    ("demo", {"TIKTOK_TARGETS": "bad target"}, "TIKTOK_TARGETS: target 1 'bad target': not a target; write"),
    ("dev", {"TIKTOK_TARGETS": "@ok,bad target"}, "TIKTOK_TARGETS: target 2 'bad target'"),
    ("demo", {"TIKTOK_TARGET_LISTS": "creators=@a; creators=@b"}, "TIKTOK_TARGET_LISTS entry 2: list"),
    ("scrub", {"INGEST_ENV": "prod"}, "PRIVACY_HMAC_KEY"),
]


@pytest.mark.parametrize(("command", "settings", "message"), _MISTAKES)
def test_a_config_mistake_is_one_line_and_exit_2_before_anything_starts(
    tmp_path, command: str, settings: dict[str, str], message: str
) -> None:
    home = tmp_path / "home"
    result = _cli(command, "--home", str(home), stdin="", env=_clean_env(tmp_path, **settings))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("ingest-platform: error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    if command in ("demo", "dev"):  # no sandbox, no landing zone, not even the home
        assert not home.exists()


def test_the_demo_names_the_target_settings_it_overrides(tmp_path, monkeypatch) -> None:
    from ingest_platform.cli import preflight

    monkeypatch.delenv("INGEST_ENV", raising=False)
    monkeypatch.delenv("TIKTOK_TARGET_LISTS", raising=False)
    monkeypatch.setenv("TIKTOK_TARGETS", "@nasa")
    note = preflight("demo", local_only=True)
    assert note is not None and "sandbox's own target lists" in note and "TIKTOK_TARGETS" in note
    assert preflight("scrub") is None


# --- the home's dagster.yaml ----------------------------------------------------------------------


def test_home_config_follows_the_repo_but_keeps_a_users_edit(tmp_path, monkeypatch, capsys) -> None:
    from ingest_platform.cli import prepare_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))
    source, home = tmp_path / "repo_dagster.yaml", tmp_path / "home"
    source.write_text("telemetry:\n  enabled: false\n")
    prepare_home(home, source=source)
    assert (home / "dagster.yaml").read_text() == source.read_text()
    assert capsys.readouterr().err == ""  # a first install is not news

    source.write_text("telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n")
    prepare_home(home, source=source)
    assert (home / "dagster.yaml").read_text() == source.read_text()
    assert capsys.readouterr().err.startswith(f"updated {home / 'dagster.yaml'}")

    prepare_home(home, source=source)
    assert capsys.readouterr().err == ""  # in sync: silent

    (home / "dagster.yaml").write_text("# mine\ntelemetry:\n  enabled: true\n")
    source.write_text("telemetry:\n  enabled: false\n")
    prepare_home(home, source=source)
    assert (home / "dagster.yaml").read_text() == "# mine\ntelemetry:\n  enabled: true\n"
    err = capsys.readouterr().err
    assert "differs from" in err and "is kept" in err and "delete it to take the repo's version" in err
    assert len(err.splitlines()) == 1

    (home / "dagster.yaml").unlink()
    prepare_home(home, source=source)
    assert (home / "dagster.yaml").read_text() == source.read_text()
    assert os.environ["DAGSTER_HOME"] == str(home.resolve())


# --- one demo run --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> subprocess.CompletedProcess:
    base = tmp_path_factory.mktemp("demo")
    env = _clean_env(base)
    return subprocess.run(
        [sys.executable, "-m", "ingest_platform.cli", "demo", "--home", str(base / "home"), "--port", "0"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_demo_succeeds_with_a_clean_stderr_of_one_progress_line_per_step(demo) -> None:
    assert demo.returncode == 0, demo.stderr[-3000:]
    progress = demo.stderr.splitlines()
    runs = re.findall(r"^run (\w+)", demo.stdout, re.MULTILINE)
    assert len(progress) == len(runs) >= 6
    for number, (line, job) in enumerate(zip(progress, runs, strict=True), start=1):
        assert line.startswith(f"[{number}/{len(runs)}] {job}"), line
    for noise in ("DEBUG", "Warning", "WARNING", "Traceback"):
        assert noise not in demo.stderr and noise not in demo.stdout


def test_demo_shows_each_failed_checks_severity_and_why_batch_size_trips(demo) -> None:
    failed = re.findall(r"^  \[(WARN|ERROR|FAIL)\] (\S+)", demo.stdout, re.MULTILINE)
    assert ("WARN", "warehouse_cost.average_batch_size") in failed
    assert all(label in ("WARN", "ERROR") for label, _ in failed)
    counts = re.search(r"^checks: (\d+) passed, (\d+) failed \((\d+) ERROR, (\d+) WARN\)", demo.stdout, re.M)
    assert counts and int(counts[2]) == len(failed) == int(counts[3]) + int(counts[4])
    assert re.search(
        r"average_batch_size.*\n\s+expected in the demo: its loads average [\d,]+ rows per batch "
        r"against a production minimum of 5,000",
        demo.stdout,
    )


def test_demo_labels_the_cost_recommendation_as_sandbox_numbers(demo) -> None:
    line = re.search(r"^cost report: .*\n(.*)", demo.stdout, re.MULTILINE)
    assert line and "computed from this demo's sandbox numbers" in line[1]
    assert "not advice for your deployment" in line[1]


def test_demo_order_counts_reconcile_on_screen(demo) -> None:
    seeded = re.search(
        r"Landing zone .*: (\d+) order files, (\d+) lines \((\d+) invalid rows and 1 corrupt", demo.stdout
    )
    orders = re.search(
        r"^orders: (\d+) records read from (\d+) file\(s\) = (\d+) loaded \+ (\d+) superseded "
        r"\+ (\d+) dead-lettered \+ (\d+) in (\d+) quarantined file\(s\)$",
        demo.stdout,
        re.MULTILINE,
    )
    table = re.search(r"^  orders\s+(\d+)$", demo.stdout, re.MULTILINE)
    dead_table = re.search(r"^  dead_letters\s+(\d+)$", demo.stdout, re.MULTILINE)
    assert seeded and orders and table and dead_table, demo.stdout
    files, lines, bad_rows = (int(x) for x in seeded.groups())
    read, files_read, loaded, superseded, dead, in_quarantine, quarantined = (int(x) for x in orders.groups())
    assert (files_read, read) == (files, lines)  # every file and line in the landing zone was read
    assert read == loaded + superseded + dead + in_quarantine  # and each line went exactly one way
    assert dead == bad_rows + 1 and (in_quarantine, quarantined) == (0, 0)  # bad rows + the corrupt line
    assert int(table[1]) == loaded  # the table holds what was loaded
    assert int(dead_table[1]) >= dead
