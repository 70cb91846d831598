"""A person's view: `dagster dev` on loopback, opened in headless Chromium, shows the asset graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_platform_tests.conftest import make_dagster_home, run_dagster_dev

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
    root = tmp_path_factory.mktemp("ui")
    home = make_dagster_home(root / "dagster_home")
    with run_dagster_dev(home, {}, root / "dagster_dev.log") as dev:
        yield dev.url


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
