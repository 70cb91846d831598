"""The house rule: pure libraries import no Dagster; only ``dagster_layer`` and ``definitions`` do."""

from __future__ import annotations

import pkgutil

from ingest_platform_tests.conftest import REPO_ROOT, modules_loaded_by

PURE_PACKAGES = ("scraping", "privacy", "enrichment", "warehouse", "orders", "sandbox")


def _pure_modules() -> list[str]:
    modules = ["ingest_platform.models", "ingest_platform.raw_store"]
    for package in PURE_PACKAGES:
        path = [str(REPO_ROOT / "ingest_platform" / package)]
        modules += [f"ingest_platform.{package}.{info.name}" for info in pkgutil.iter_modules(path)]
    return modules


def test_every_pure_library_module_loads_without_dagster() -> None:
    modules = _pure_modules()
    assert len(modules) > 20, modules
    assert modules_loaded_by(modules, ["dagster"]) == {"dagster": []}
