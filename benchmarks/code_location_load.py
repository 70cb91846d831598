"""How long loading the code location takes, against an empty ``Definitions`` module, same run.

Each sample is a fresh interpreter that imports the module and builds the repository (what a
code server does at start-up). The two modules alternate so machine noise hits both alike;
the figure is the ratio of medians. Target: ``load_ratio`` <= 1.3.

    python benchmarks/code_location_load.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

LOADER = (
    "import importlib, sys; sys.path.insert(0, {path!r}); "
    "module = importlib.import_module({module!r}); module.defs.get_repository_def()"
)


def sample(module: str, path: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", LOADER.format(module=module, path=path)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "empty_definitions.py").write_text(
            "from dagster import Definitions\n\ndefs = Definitions()\n"
        )
        env = {**os.environ, "DAGSTER_HOME": scratch, "INGEST_ENV": "local"}
        # Warm the OS file cache for both, so the first sample is not a cold-disk outlier.
        sample("empty_definitions", scratch, env)
        sample("ingest_platform.definitions", str(REPO_ROOT), env)
        ours: list[float] = []
        empty: list[float] = []
        for _ in range(args.runs):
            empty.append(sample("empty_definitions", scratch, env))
            ours.append(sample("ingest_platform.definitions", str(REPO_ROOT), env))

    ours_median, empty_median = statistics.median(ours), statistics.median(empty)
    print(f"runs per module: {args.runs}")
    print(f"empty Definitions  : median {empty_median:.3f}s  (min {min(empty):.3f}s, max {max(empty):.3f}s)")
    print(f"ingest_platform    : median {ours_median:.3f}s  (min {min(ours):.3f}s, max {max(ours):.3f}s)")
    print(f"RESULT load_ratio={ours_median / empty_median:.3f}")


if __name__ == "__main__":
    main()
