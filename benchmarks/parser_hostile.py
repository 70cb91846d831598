"""Page parsing on hostile and real-shaped pages: time per MB at two sizes, to show it is linear.

Run from the repository root: ``python benchmarks/parser_hostile.py`` (``--sizes 5,50`` in MB by
default; ``--sizes 0.1,0.4`` is enough to see the old quadratic code, which needs minutes beyond).

Cases, each built to the requested size:

* ``unclosed_script``: ``<script `` repeated, never closed (the old ``<script\\b([^>]*)>`` scan
  rescanned to the end of the page from each one);
* ``deep_nesting``: a rehydration script whose JSON nests ``{"a":`` millions of levels deep
  (the old code hit ``RecursionError``);
* ``real_shaped``: a hashtag page whose rehydration JSON carries sandbox items (real TikTok
  ``itemStruct`` shape) with distinct ids, every one parsed into a Post;
* ``markup_unclosed_tags``: ``<a `` repeated through the block-detection markup scan (CPython's
  ``html.parser`` before 3.11.13 took 175 s for 80 KB).

Times are CPU seconds of this process (``time.process_time``: the machine is shared), best of
``--repeats``. ``ratio`` is the per-MB time at the larger size over the smaller one: about 1 when
the work is linear, about the size ratio (10) when quadratic. The last line is machine-readable:
``RESULT worst_ratio=... <case>_s_per_mb=...``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # appended: a PYTHONPATH naming another checkout (old code) wins
    sys.path.append(str(ROOT))

from ingest_platform.scraping.blocking import scan_markup  # noqa: E402
from ingest_platform.scraping.tiktok_page import parse_page  # noqa: E402

MB = 1_000_000
UNIVERSAL_OPEN = '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'
CTX = {"source_url": "https://www.tiktok.com/tag/fitness", "scraped_at": datetime(2026, 12, 6, tzinfo=UTC)}
clock = time.process_time


def unclosed_script(size: int) -> str:
    return "<script " * (size // 8)


def deep_nesting(size: int) -> str:
    depth = (size - len(UNIVERSAL_OPEN) - 10) // 6
    return UNIVERSAL_OPEN + '{"a":' * depth + "1" + "}" * depth + "</script>"


def markup_unclosed_tags(size: int) -> str:
    return "<a " * (size // 3)


def real_shaped(size: int) -> str:
    from ingest_platform.sandbox.content import SandboxContent

    content = SandboxContent.generate(seed=3)
    items = [content.item_struct(post_id) for post_id in sorted(content.posts_by_id)]
    encoded = [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items]
    # Distinct ids (same 19-digit shape), so every item becomes its own Post.
    parts: list[str] = []
    total = 0
    index = 0
    while total < size:
        item = encoded[index % len(encoded)]
        old_id = items[index % len(items)]["id"]
        new_id = str(7_300_000_000_000_000_000 + index)
        part = item.replace(f'"id":"{old_id}"', f'"id":"{new_id}"', 1)
        parts.append(part)
        total += len(part) + 1
        index += 1
    state = (
        '{"__DEFAULT_SCOPE__":{"webapp.challenge-detail":{"statusCode":0,'
        '"challengeInfo":{"challenge":{"id":"42","title":"fitness"}},"itemList":['
        + ",".join(parts)
        + "]}}}"
    )
    state = state.replace("/", "\\u002F").replace("<", "\\u003C").replace(">", "\\u003E")
    head = "<!DOCTYPE html><html><head><title>#fitness</title></head><body>"
    return f"{head}{UNIVERSAL_OPEN}{state}</script></body></html>"


def _parse(html: str) -> str:
    result = parse_page(html, **CTX)
    return f"{result.status.value}, {len(result.posts)} posts"


def _scan(html: str) -> str:
    scan = scan_markup(html)
    return f"{len(scan.elements)} elements"


CASES: dict[str, tuple[Callable[[int], str], Callable[[str], str]]] = {
    "unclosed_script": (unclosed_script, _parse),
    "deep_nesting": (deep_nesting, _parse),
    "real_shaped": (real_shaped, _parse),
    "markup_unclosed_tags": (markup_unclosed_tags, _scan),
}


def measure(
    build: Callable[[int], str], run: Callable[[str], str], size: int, repeats: int
) -> tuple[float, str]:
    html = build(size)
    best = float("inf")
    outcome = ""
    for _ in range(repeats):
        start = clock()
        try:
            outcome = run(html)
        except BaseException as error:  # the old code raises RecursionError: report, do not stop
            outcome = f"RAISED {type(error).__name__}"
        best = min(best, clock() - start)
    return best, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="5,50", help="two page sizes in MB, small then large")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    small, large = (int(float(x) * MB) for x in args.sizes.split(","))
    figures: dict[str, tuple[float, float]] = {}
    for name in args.cases.split(","):
        build, run = CASES[name]
        per_mb = []
        for size in (small, large):
            seconds, outcome = measure(build, run, size, args.repeats)
            per_mb.append(seconds / (size / MB))
            print(
                f"{name:22} {size / MB:7.2f} MB  {seconds:8.3f} s  {per_mb[-1]:8.4f} s/MB  ({outcome})",
                flush=True,
            )
        figures[name] = (per_mb[1], per_mb[1] / per_mb[0] if per_mb[0] > 0 else float("nan"))
        print(f"{name:22} ratio (s/MB at {large / MB:g} MB over {small / MB:g} MB): {figures[name][1]:.2f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process: {peak_mb:,.0f} MB")
    worst = max(ratio for _, ratio in figures.values())
    details = " ".join(
        f"{name}_s_per_mb={per_mb:.4f} {name}_ratio={ratio:.2f}" for name, (per_mb, ratio) in figures.items()
    )
    print(f"RESULT worst_ratio={worst:.2f} {details}")


if __name__ == "__main__":
    main()
