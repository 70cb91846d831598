"""``ingest-platform dev`` as a service manager runs it: started, answered, stopped by SIGTERM.

The command starts ``dagster dev`` (webserver, daemon, code server) in its own process group and
the sandbox in-process. A stop by SIGTERM, to the whole group or to the command alone, must leave
nothing behind: no process of the tree, nothing listening on the UI or the sandbox port. The screen
of a default start carries no warning a user cannot act on.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ingest_platform_tests.conftest import REPO_ROOT, free_port

START_WAIT_S = 120  # a bound on waiting for the UI (first start loads the code location), not a check
STOP_WAIT_S = 60  # the command's own grace period is 20 s, then SIGKILL


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _children() -> dict[int, int]:
    """pid -> parent pid of every live, non-zombie process."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            out[int(entry.name)] = int(fields[1])
    return out


def _descendants(root: int) -> set[int]:
    parents = _children()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    return pids & set(_children())


def _wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def _ui_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.parametrize(("target", "verbose"), [("process group", False), ("process alone", True)])
def test_sigterm_stops_dagster_dev_and_the_sandbox_and_leaves_no_process(
    tmp_path, target: str, verbose: bool
) -> None:
    ui_port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOK_TARGETS", "TIKTOK_TARGET_LISTS")}
    env.update({"DAGSTER_HOME": str(tmp_path / "home"), "INGEST_ENV": "local"})
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        command = [
            sys.executable, "-m", "ingest_platform.cli", "dev", "--home", str(tmp_path / "home"),
            "--port", str(ui_port), "--sandbox-port", str(sandbox_port), *(["-v"] if verbose else []),
        ]  # fmt: skip
        # Its own group, as a service manager or `setsid` starts it (and so the test can signal it).
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
    tree: set[int] = set()
    try:
        ready = f"UI ready at http://127.0.0.1:{ui_port}"
        assert _wait_until(
            lambda: ready in stderr.read_text() or _ui_answers(ui_port) or process.poll() is not None,
            START_WAIT_S,
        )
        assert process.poll() is None, stderr.read_text()
        assert _wait_until(lambda: _ui_answers(ui_port), START_WAIT_S)
        _wait_until(lambda: ready in stderr.read_text(), 10)  # it polls every 0.5 s; asserted below
        # The sandbox may have fallen back to another port: the command prints the one it uses.
        match = re.search(r"Sandbox TikTok at http://127\.0\.0\.1:(\d+)", stdout.read_text())
        assert match, stdout.read_text()
        sandbox_port = int(match.group(1))
        assert _listening(sandbox_port)
        tree = _descendants(process.pid)
        assert tree, "dagster dev runs as a child of the command"

        if target == "process group":
            os.killpg(process.pid, signal.SIGTERM)
        else:
            os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_WAIT_S)

        assert _wait_until(lambda: not _alive(tree), STOP_WAIT_S), f"left running: {_alive(tree)}"
        assert not _listening(ui_port)
        assert not _listening(sandbox_port)
        assert process.returncode == 128 + signal.SIGTERM  # documented: stopped by SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
        for pid in _alive(tree):  # a failing run must not leave a UI behind
            os.kill(pid, signal.SIGKILL)

    screen = stdout.read_text() + stderr.read_text()
    assert ready in screen
    assert "Traceback" not in screen
    # Never, not even with -v (the test runs from the repo, next to its dagster.yaml): the hint at
    # the `dg` tool, which is not installed, and the warning about a dagster.yaml in the folder.
    assert "dg dev" not in screen and "will not be used" not in screen, screen
    if verbose:  # -v shows Dagster's service logs
        assert "Serving dagster-webserver" in screen
    else:  # a default start: the sandbox, the UI address, and nothing a user cannot act on
        for noise in ("Warning", "WARNING", "DEBUG", "INFO"):
            assert noise not in screen, screen
