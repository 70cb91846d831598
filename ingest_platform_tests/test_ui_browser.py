"""A person's view: `dagster dev` on loopback, opened in headless Chromium, shows the asset graph."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_platform_tests.conftest import REPO_ROOT, free_port, make_dagster_home

GROUPS = {
    "sources": ["raw_tiktok_posts"],
    "privacy": ["hashed_posts"],
    "enrichment": ["enriched_posts"],
    "warehouse": ["ORDERS"],
    "quality": ["dead_letters"],
}


def _dismiss_welcome_dialog(page) -> None:
    """The first visit shows a newsletter dialog over the graph."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=10_000)
        skip.click()
    except Exception:  # no dialog this time: nothing to dismiss
        pass


def _wait_for_server(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"dagster dev did not answer on {url} within {timeout_s}s")


def _expand_group(page, graph, group: str, asset: str) -> None:
    """Click a collapsed group's unfold toggle until its asset node is rendered."""
    for _attempt in range(5):
        node = page.locator("svg foreignObject").filter(has_text=group).first
        node.wait_for(timeout=60_000)
        toggle = node.locator('[aria-label="unfold_more"]')
        if toggle.count():
            toggle.first.click()
        for _ in range(20):
            if graph.get_by_text(asset, exact=True).count():
                return
            page.wait_for_timeout(250)
        page.reload(wait_until="domcontentloaded")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = make_dagster_home(tmp_path_factory.mktemp("ui") / "dagster_home")
    port = free_port()
    log = (home / "dagster_dev.log").open("w")
    env = {**os.environ, "DAGSTER_HOME": str(home), "INGEST_ENV": "local"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
         "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so SIGTERM reaches every child (REFERENCE §8)
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_asset_graph_shows_every_asset(dagster_ui: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from ingest_platform.scraping.browser import CHROMIUM_ARGS, resolve_browser_executable

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=resolve_browser_executable(), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{dagster_ui}/asset-groups", wait_until="domcontentloaded")
            _dismiss_welcome_dialog(page)
            graph = page.locator("svg foreignObject")
            for group in GROUPS:
                graph.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "asset_graph.png"))
            # Groups start collapsed; the UI remembers expansions, so each group gets a fresh context.
            for group, assets in GROUPS.items():
                context = browser.new_context(viewport={"width": 1600, "height": 1000})
                group_page = context.new_page()
                group_page.goto(f"{dagster_ui}/asset-groups", wait_until="domcontentloaded")
                _dismiss_welcome_dialog(group_page)
                group_graph = group_page.locator("svg foreignObject")
                _expand_group(group_page, group_graph, group, assets[0])
                for asset in assets:
                    # Long names are middle-truncated on screen; the node keeps the full name in its DOM.
                    group_graph.get_by_text(asset, exact=True).first.wait_for(
                        state="attached", timeout=20_000
                    )
                context.close()
        finally:
            browser.close()
