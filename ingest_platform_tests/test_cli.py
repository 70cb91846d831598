"""The ``ingest-platform`` command: parse-page on real captured pages, scrub on stdin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ingest_platform_tests.conftest import REPO_ROOT, shared_fixtures_dir

TIKTOK = shared_fixtures_dir() / "tiktok"


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
