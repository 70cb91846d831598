"""The house rule: pure libraries import no Dagster; only ``dagster_layer`` and ``definitions`` do."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

from ingest_platform_tests.conftest import REPO_ROOT

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
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
