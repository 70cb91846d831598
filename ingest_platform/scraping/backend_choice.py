"""Choose the scraping backend per run: the browser, Apify, or the browser with an Apify fallback.

Pure orchestration over two callables, so it imports neither Playwright nor apify-client:

- ``browser_fetch(targets)`` returns something shaped like ``browser.ScrapeOutcome`` (``posts``,
  ``rejects``, ``metrics.success_rate``, ``targets`` of ``TargetOutcome(target, status, posts)``);
- ``apify_fetch(targets)`` returns an :class:`~ingest_platform.scraping.apify_backend.ApifyOutcome`
  (``ApifyFetcher(settings)`` is such a callable).

``mode="auto"`` runs the browser first. It switches to Apify, in the same call, when

- the browser's success rate is below ``success_threshold``: the targets the browser did not
  complete (failed status, or never attempted) go to Apify;
- the proxy pool is exhausted: ``ingest_platform.scraping.proxy_pool.ProxyPoolExhausted`` (matched
  by class name through the exception chain, so this module does not import the pool; pass
  ``is_pool_exhausted`` to recognise something else). Its ``partial`` outcome, when set, is kept and
  only the rest goes to Apify. A target reported with status ``proxy_pool_exhausted``, or an
  outcome with ``pool_exhausted=True`` (the browser's non-raising mode), counts too;
- the browser backend raised anything else (no Chromium, a crash): everything it did not finish
  goes to Apify (a ``partial`` / ``outcome`` attribute on the exception chain is honoured here too).

Rows are de-duplicated on ``(platform, post_id)``; the browser's row wins. Every target ends up in
``targets_by_backend`` under the backend that delivered it, or in ``failed_targets``: nothing is
dropped without a trace. ``switch_reason`` says why the switch happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ingest_platform.models import Post
from ingest_platform.scraping.apify_backend import ApifyError, ApifyOutcome, ApifyRunFailed
from ingest_platform.scraping.proxy_config import redact_secrets
from ingest_platform.scraping.targets import Target

__all__ = [
    "BROWSER_ANSWERED_STATUSES",
    "POOL_EXHAUSTED_STATUSES",
    "BackendMetrics",
    "BrowserResultLike",
    "CombinedOutcome",
    "MetricsLike",
    "Mode",
    "TargetOutcomeLike",
    "fetch_posts",
    "is_proxy_pool_exhausted",
]

logger = logging.getLogger(__name__)

Mode = Literal["browser", "apify", "auto"]

#: Target statuses where the page answered (the browser counts them as succeeded): ``ok`` plus
#: private / missing content, which another backend cannot fetch either.
BROWSER_ANSWERED_STATUSES = frozenset(
    {"ok", "private_post", "private_account", "user_not_found", "other_error"}
)
#: Target statuses a browser scraper may use when it ran out of proxies mid-run.
POOL_EXHAUSTED_STATUSES = frozenset({"proxy_pool_exhausted", "pool_exhausted"})
_POOL_EXHAUSTED_NAMES = frozenset({"ProxyPoolExhausted"})


class TargetOutcomeLike(Protocol):
    """What ``browser.TargetOutcome`` provides: the target's text, its status, posts kept."""

    @property
    def target(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def posts(self) -> int: ...


class MetricsLike(Protocol):
    @property
    def success_rate(self) -> float: ...


class BrowserResultLike(Protocol):
    """What ``browser.ScrapeOutcome`` provides and this module reads (read-only)."""

    @property
    def posts(self) -> Sequence[Post]: ...
    @property
    def rejects(self) -> Sequence[Any]: ...
    @property
    def metrics(self) -> MetricsLike: ...
    @property
    def targets(self) -> Sequence[TargetOutcomeLike]: ...


@dataclass
class BackendMetrics:
    """One backend's share of a combined run."""

    backend: str
    targets: int = 0
    targets_ok: int = 0
    posts: int = 0
    rejects: int = 0
    success_rate: float | None = None
    extra: dict[str, float | int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, float | int]:
        data: dict[str, float | int] = {
            f"{self.backend}_targets": self.targets,
            f"{self.backend}_targets_ok": self.targets_ok,
            f"{self.backend}_posts": self.posts,
            f"{self.backend}_rejects": self.rejects,
        }
        if self.success_rate is not None:
            data[f"{self.backend}_success_rate"] = round(self.success_rate, 4)
        data.update(self.extra)
        return data


@dataclass
class CombinedOutcome:
    """Posts and rejects of a run over one or both backends, and how it went."""

    mode: str
    posts: list[Post] = field(default_factory=list)
    rejects: list[Any] = field(default_factory=list)
    switched: bool = False
    switch_reason: str | None = None
    per_backend: dict[str, BackendMetrics] = field(default_factory=dict)
    #: Target texts (``@name``, ``#tag``…) grouped by the backend that delivered them.
    targets_by_backend: dict[str, list[str]] = field(default_factory=dict)
    #: Targets no backend delivered: retry or report them.
    failed_targets: list[str] = field(default_factory=list)
    duplicates_dropped: int = 0
    #: Errors that did not abort the run (e.g. the Apify fallback failing after the browser ran).
    errors: list[str] = field(default_factory=list)
    #: The raw backend results, for cost reports (``BackendCostReport.for_browser/for_apify``).
    browser_result: Any | None = None
    apify_result: ApifyOutcome | None = None

    def as_metadata(self) -> dict[str, float | int | str | bool]:
        data: dict[str, float | int | str | bool] = {
            "backend_mode": self.mode,
            "backend_switched": self.switched,
            "posts": len(self.posts),
            "rejects": len(self.rejects),
            "duplicates_dropped": self.duplicates_dropped,
            "failed_targets": len(self.failed_targets),
        }
        if self.switch_reason:
            data["switch_reason"] = self.switch_reason
        for metrics in self.per_backend.values():
            data.update(metrics.as_metadata())
        return data


def is_proxy_pool_exhausted(exc: BaseException) -> bool:
    """True if ``exc`` or anything in its cause/context chain is a ``ProxyPoolExhausted``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(cls.__name__ in _POOL_EXHAUSTED_NAMES for cls in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def fetch_posts(
    targets: Sequence[Target],
    *,
    mode: Mode,
    browser_fetch: Callable[[list[Target]], BrowserResultLike] | None = None,
    apify_fetch: Callable[[list[Target]], ApifyOutcome] | None = None,
    success_threshold: float = 0.95,
    is_pool_exhausted: Callable[[BaseException], bool] = is_proxy_pool_exhausted,
    progress: Callable[[str], None] | None = None,
) -> CombinedOutcome:
    """Fetch ``targets`` with the backend(s) ``mode`` asks for; see the module docstring.

    In ``"browser"`` and ``"apify"`` modes the backend's exceptions propagate (the caller chose
    that backend). In ``"auto"`` an Apify failure after the browser ran is recorded in ``errors``
    and its targets in ``failed_targets``, so the browser's posts are never thrown away.
    """
    if mode not in ("browser", "apify", "auto"):
        raise ValueError(f"mode must be 'browser', 'apify' or 'auto', got {mode!r}")
    if not 0.0 <= success_threshold <= 1.0:
        raise ValueError("success_threshold must be between 0 and 1")
    if mode in ("browser", "auto") and browser_fetch is None:
        raise ValueError(f"mode {mode!r} needs browser_fetch")
    if mode in ("apify", "auto") and apify_fetch is None:
        raise ValueError(f"mode {mode!r} needs apify_fetch")
    say = progress or logger.info
    targets = list(dict.fromkeys(targets))
    combined = CombinedOutcome(mode=mode)
    merger = _Merger(combined)

    if mode == "apify":
        assert apify_fetch is not None
        result = apify_fetch(targets)
        merger.add_apify(targets, result)
        return merger.finish(targets)

    assert browser_fetch is not None
    browser_result: BrowserResultLike | None = None
    pending: list[Target] = []
    try:
        browser_result = browser_fetch(targets)
    except Exception as exc:
        if mode == "browser":
            raise
        reason_text = redact_secrets(f"{type(exc).__name__}: {exc}")[:300]
        if is_pool_exhausted(exc):
            combined.switch_reason = f"proxy pool exhausted: {reason_text}"
        else:
            combined.switch_reason = f"browser backend failed: {reason_text}"
        # Whatever the browser finished before it stopped is kept (``partial`` on the exception).
        browser_result = _partial_result(exc)
        pending = targets if browser_result is None else _not_completed(targets, browser_result)

    if browser_result is not None:
        merger.add_browser(targets, browser_result)
        if combined.switch_reason is None and mode == "auto":
            rate = float(browser_result.metrics.success_rate)
            exhausted = [t for t in browser_result.targets if str(t.status) in POOL_EXHAUSTED_STATUSES]
            if exhausted:
                combined.switch_reason = (
                    f"proxy pool exhausted: {len(exhausted)} target(s) reported {exhausted[0].status}"
                )
            elif getattr(browser_result, "pool_exhausted", False):
                # ScrapeOutcome.pool_exhausted: the scraper ran dry but chose not to raise.
                combined.switch_reason = "proxy pool exhausted: the browser outcome says so"
            elif rate < success_threshold:
                combined.switch_reason = (
                    f"browser success rate {rate:.1%} below threshold {success_threshold:.1%}"
                )
            if combined.switch_reason is not None:
                pending = _not_completed(targets, browser_result)

    if mode == "auto" and combined.switch_reason is not None:
        combined.switched = True
        say(f"switching to apify for {len(pending)} target(s): {combined.switch_reason}")
        if pending:
            assert apify_fetch is not None
            try:
                merger.add_apify(pending, apify_fetch(pending))
            except ApifyRunFailed as exc:
                combined.errors.append(str(exc))
                merger.add_apify(pending, exc.outcome or ApifyOutcome(missing_targets=list(pending)))
            except ApifyError as exc:
                combined.errors.append(str(exc))
                merger.add_apify(pending, ApifyOutcome(missing_targets=list(pending)))
    return merger.finish(targets)


def _looks_like_browser_result(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("posts", "rejects", "metrics", "targets"))


def _partial_result(exc: BaseException) -> BrowserResultLike | None:
    """The browser's partial outcome carried by ``exc`` or an exception in its chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for name in ("partial", "outcome"):
            value = getattr(current, name, None)
            if value is not None and _looks_like_browser_result(value):
                return value
        current = current.__cause__ or current.__context__
    return None


def _completed_texts(result: BrowserResultLike) -> set[str]:
    return {str(t.target) for t in result.targets if str(t.status) in BROWSER_ANSWERED_STATUSES}


def _not_completed(targets: list[Target], result: BrowserResultLike) -> list[Target]:
    """Targets the browser failed or never reached, in their original order."""
    done = _completed_texts(result)
    return [t for t in targets if t.text not in done]


class _Merger:
    """Accumulates rows in backend order, deduplicating on (platform, post_id)."""

    def __init__(self, combined: CombinedOutcome) -> None:
        self.combined = combined
        self.seen: set[tuple[str, str]] = set()
        self.delivered: dict[str, str] = {}  # target text -> backend

    def _add_posts(self, posts: list[Post]) -> int:
        kept = 0
        for post in posts:
            key = (str(post.platform), post.post_id)
            if key in self.seen:
                self.combined.duplicates_dropped += 1
                continue
            self.seen.add(key)
            self.combined.posts.append(post)
            kept += 1
        return kept

    def add_browser(self, targets: list[Target], result: BrowserResultLike) -> None:
        self.combined.browser_result = result
        kept = self._add_posts(list(result.posts))
        self.combined.rejects.extend(result.rejects)
        done = _completed_texts(result)
        wanted = {t.text for t in targets}
        for text in sorted(done & wanted, key=[t.text for t in targets].index):
            self.delivered.setdefault(text, "browser")
        self.combined.per_backend["browser"] = BackendMetrics(
            backend="browser",
            targets=len(result.targets),
            targets_ok=len(done & wanted),
            posts=kept,
            rejects=len(result.rejects),
            success_rate=float(result.metrics.success_rate),
        )

    def add_apify(self, sent: list[Target], result: ApifyOutcome) -> None:
        self.combined.apify_result = result
        kept = self._add_posts(list(result.posts))
        self.combined.rejects.extend(result.rejects)
        missing = {t.text for t in result.missing_targets}
        ok = [t for t in sent if t.text not in missing]
        for target in ok:
            self.delivered.setdefault(target.text, "apify")
        self.combined.per_backend["apify"] = BackendMetrics(
            backend="apify",
            targets=len(sent),
            targets_ok=len(ok),
            posts=kept,
            rejects=len(result.rejects),
            success_rate=len(ok) / len(sent) if sent else None,
            extra={
                k: v for k, v in result.as_metadata().items() if k.startswith("apify_") and "posts" not in k
            },
        )

    def finish(self, targets: list[Target]) -> CombinedOutcome:
        by_backend: dict[str, list[str]] = {}
        for target in targets:
            backend = self.delivered.get(target.text)
            if backend is None:
                self.combined.failed_targets.append(target.text)
            else:
                by_backend.setdefault(backend, []).append(target.text)
        self.combined.targets_by_backend = by_backend
        return self.combined
