"""Named target lists: the second dimension of the TikTok scrape partitions (date × target list).

``TIKTOK_TARGET_LISTS`` names groups of targets that are scraped, scheduled and retried on their
own, so one day's scrape fans out into one run per list and the runs spread over workers::

    TIKTOK_TARGET_LISTS="creators=@alice:200,@bob; campaign_x=#summerdrop:500,#ad"

Lists are separated by ``;``, entries inside a list by ``,`` or newlines, exactly as in
``TIKTOK_TARGETS`` (see ``targets.py``). Without ``TIKTOK_TARGET_LISTS`` there is one list,
``default``, holding ``TIKTOK_TARGETS``: small deployments need no second setting.

List names become partition keys, schedule names and raw-store paths, so they are restricted to
lower-case letters, digits, ``_`` and ``-``, and are validated when the definitions load: a typo
is one clear error naming the entry, not a partition that silently never runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ingest_platform.scraping.targets import DEFAULT_MAX_POSTS, parse_targets

__all__ = [
    "DEFAULT_LIST",
    "SETTING",
    "TargetListError",
    "parse_target_lists",
    "target_list_names",
]

SETTING = "TIKTOK_TARGET_LISTS"
DEFAULT_LIST = "default"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}", re.ASCII)


class TargetListError(ValueError):
    """An invalid ``TIKTOK_TARGET_LISTS`` value; the message names the entry."""


def parse_target_lists(text: str | None, *, fallback_targets: str = "") -> dict[str, str]:
    """``{list name: its entries as TIKTOK_TARGETS text}``, in the order written.

    Every list's entries are parsed once here so a bad target is reported with its list. Empty
    ``text`` gives ``{"default": fallback_targets}`` (which may itself be empty: the scrape then
    fails with "no targets", as it would without lists).
    """
    if not text or not text.strip():
        return {DEFAULT_LIST: fallback_targets}
    lists: dict[str, str] = {}
    for number, chunk in enumerate((part for part in text.split(";") if part.strip()), start=1):
        where = f"{SETTING} entry {number}"
        name, separator, entries = chunk.partition("=")
        name = name.strip()
        if not separator:
            raise TargetListError(f"{where}: expected name=targets, got {chunk.strip()[:40]!r}")
        if not _NAME_RE.fullmatch(name):
            raise TargetListError(
                f"{where}: list name {name!r} must be 1-40 lower-case letters, digits, '_' or '-'"
            )
        if name in lists:
            raise TargetListError(f"{where}: list {name!r} is named twice")
        try:
            parsed = parse_targets(entries, default_max_posts=DEFAULT_MAX_POSTS)
        except ValueError as error:
            raise TargetListError(f"{where} ({name}): {error}") from None
        if not parsed:
            raise TargetListError(f"{where}: list {name!r} has no targets")
        lists[name] = entries.strip()
    return lists


def target_list_names(environ: Mapping[str, str]) -> list[str]:
    """The list names a deployment scrapes, from its environment (read when definitions load)."""
    return list(parse_target_lists(environ.get(SETTING), fallback_targets=environ.get("TIKTOK_TARGETS", "")))
