"""Schema drift of scraped items: which fields vanished or changed type since the last run.

TikTok changes its page data without notice; the first sign is usually a field that is gone or
has become a string. Each run records the JSON type of every field path in the items it read
(``stats.playCount: int``); the drift check compares that with the previous run's record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 2
# Containers whose keys are data (ids), not schema: their children are not tracked.
_OPAQUE = frozenset({"ItemModule", "UserModule"})


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def item_schema(item: Mapping[str, Any], *, max_depth: int = MAX_DEPTH) -> dict[str, str]:
    """``{"id": "str", "stats.playCount": "int", …}`` for one item, nested objects to ``max_depth``."""
    schema: dict[str, str] = {}

    def walk(value: Mapping[str, Any], prefix: str, depth: int) -> None:
        for key, child in value.items():
            path = f"{prefix}{key}"
            schema[path] = _json_type(child)
            if isinstance(child, dict) and depth < max_depth and key not in _OPAQUE:
                walk(child, f"{path}.", depth + 1)

    walk(item, "", 1)
    return schema


@dataclass
class SchemaTally:
    """How often each (path, type) was seen across a run's items."""

    items: int = 0
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, item: Mapping[str, Any]) -> None:
        self.items += 1
        self.seen.update(item_schema(item).items())

    def add_all(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            self.add(item)

    def dominant(self, *, min_share: float = 0.5) -> dict[str, str]:
        """Each path's most common non-null type, for paths present in at least ``min_share`` of items.

        Optional fields (``imagePost`` only on slideshows) stay out, so their absence is not drift.
        """
        by_path: dict[str, Counter[str]] = {}
        for (path, kind), count in self.seen.items():
            by_path.setdefault(path, Counter())[kind] += count
        schema: dict[str, str] = {}
        for path, kinds in by_path.items():
            if sum(kinds.values()) < min_share * self.items:
                continue
            non_null = [(count, kind) for kind, count in kinds.items() if kind != "null"]
            schema[path] = max(non_null)[1] if non_null else "null"
        return dict(sorted(schema.items()))


@dataclass(frozen=True)
class Drift:
    vanished: list[str]
    changed: list[tuple[str, str, str]]
    added: list[str]

    @property
    def drifted(self) -> bool:
        return bool(self.vanished or self.changed)

    def describe(self) -> str:
        parts = []
        if self.vanished:
            parts.append("vanished: " + ", ".join(self.vanished[:20]))
        if self.changed:
            parts.append("changed type: " + ", ".join(f"{p} {a}→{b}" for p, a, b in self.changed[:20]))
        if self.added:
            parts.append("new: " + ", ".join(self.added[:20]))
        return "; ".join(parts) or "no change"


def compare(previous: Mapping[str, str], current: Mapping[str, str]) -> Drift:
    """Fields in ``previous`` that are missing or typed differently in ``current``."""
    vanished = sorted(path for path in previous if path not in current)
    changed = sorted(
        (path, previous[path], current[path])
        for path in previous
        if path in current
        and previous[path] != current[path]
        and "null" not in (previous[path], current[path])
    )
    added = sorted(path for path in current if path not in previous)
    return Drift(vanished=vanished, changed=changed, added=added)
