"""Fetch TikTok and Facebook posts through Apify actors (the managed alternative to the browser).

``ApifyFetcher(settings).fetch_tiktok(targets)`` starts ``clockworks/tiktok-scraper`` with
``client.actor(id).call(run_input=…, max_items=…, run_timeout=…, memory_mbytes=…, logger=None)``
(``logger=None``: no log streaming, two fewer requests per run), pages through the run's dataset
and normalizes every item with :mod:`ingest_platform.scraping.apify_normalizers`, so the posts are
the same :class:`~ingest_platform.models.Post` rows the browser path produces (``backend="apify"``).

Targets are grouped by ``max_posts`` because the actor takes one ``resultsPerPage`` per run: a
typical config (one default cap) is one run. Video targets ride along in the first group.

What can go wrong, and what the caller gets:

- a run ending FAILED / TIMED-OUT / ABORTED, or still running when the client stops waiting:
  :class:`ApifyRunFailed` naming actor, run id and status. Other groups' runs still complete first;
  their posts are on ``exc.outcome`` (with the failed run's targets in ``missing_targets``);
- 429 and 5xx answers are retried by apify-client (``max_retries``, exponential back-off); when
  they persist, or the API cannot be reached: :class:`ApifyUnavailable`;
- any other API refusal (bad token 401, unknown actor 404, invalid input 400):
  :class:`ApifyRequestRejected`;
- a partial dataset (fewer items served than the dataset's ``itemCount`` / pagination total):
  everything fetched is kept, ``items_expected`` vs ``items_received`` shows the gap and the
  affected targets are in ``missing_targets`` (never silently lost);
- an item the normalizer refuses: an :class:`ApifyReject` (same ``source_url, reason, payload``
  fields as the browser's ``RejectedRecord``) for the dead-letter table.

The token is a ``SecretStr``; every message that leaves this module is passed through a redactor,
and exception chains from the HTTP layer are cut (``from None``) so no header can leak.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ingest_platform.models import Post
from ingest_platform.scraping.apify_normalizers import facebook_item_to_post, tiktok_item_to_post
from ingest_platform.scraping.targets import DEFAULT_BASE_URL, Target, TargetError, TargetKind, parse_target

if TYPE_CHECKING:  # apify_client is imported lazily: the Dagster code location must load fast
    from apify_client import ApifyClient

__all__ = [
    "ApifyError",
    "ApifyFetcher",
    "ApifyOutcome",
    "ApifyReject",
    "ApifyRequestRejected",
    "ApifyRunFailed",
    "ApifySettings",
    "ApifyUnavailable",
    "RunSummary",
]

logger = logging.getLogger(__name__)

_FAILED_STATUSES = frozenset({"FAILED", "TIMED-OUT", "ABORTED"})


class ApifySettings(BaseModel):
    """Connection and run settings. ``repr``/``str`` never show the token (``SecretStr``)."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr
    api_url: str = "https://api.apify.com"
    tiktok_actor: str = "clockworks/tiktok-scraper"
    facebook_actor: str = "apify/facebook-posts-scraper"
    #: The actor run's own timeout (the platform stops it and reports TIMED-OUT).
    run_timeout_s: float = Field(default=900.0, gt=0)
    #: Cap on results per run across all its targets (``maxItems``: you are not charged beyond it).
    max_items: int = Field(default=10_000, ge=1)
    memory_mbytes: int = Field(default=1024, ge=128, le=32768)
    #: Retries of 429/5xx/transport errors per request, done by apify-client with back-off.
    max_retries: int = Field(default=4, ge=0)
    min_delay_between_retries_s: float = Field(default=0.5, ge=0)
    #: Items per dataset request while paging.
    page_size: int = Field(default=1000, ge=1, le=250_000)
    #: How much longer than ``run_timeout_s`` the client waits for the run before giving up.
    wait_grace_s: float = Field(default=60.0, ge=0)
    proxy_country_code: str | None = None


class ApifyError(RuntimeError):
    """Base of the Apify backend's errors. Messages never contain the token."""


class ApifyUnavailable(ApifyError):
    """The API kept answering 429/5xx after the client's retries, or could not be reached."""


class ApifyRequestRejected(ApifyError):
    """The API refused a request for a reason retrying cannot fix (401, 403, 404, 400)."""

    def __init__(
        self, message: str, *, status_code: int | None = None, error_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type


class ApifyRunFailed(ApifyError):
    """A run ended FAILED / TIMED-OUT / ABORTED (or never finished while the client waited)."""

    def __init__(
        self,
        *,
        actor: str,
        run_id: str,
        status: str,
        status_message: str | None = None,
        outcome: ApifyOutcome | None = None,
    ) -> None:
        detail = f": {status_message}" if status_message else ""
        super().__init__(f"Apify run {run_id} of actor {actor} ended {status}{detail}")
        self.actor = actor
        self.run_id = run_id
        self.status = status
        self.status_message = status_message
        #: What the fetch produced anyway (other runs' posts; failed targets in missing_targets).
        self.outcome = outcome


@dataclass
class ApifyReject:
    """An item the normalizer refused. Same first three fields as the browser's RejectedRecord.

    ``payload`` is the raw item as JSON: it holds personal data, scrub before storing it.
    """

    source_url: str
    reason: str
    payload: str
    run_id: str | None = None
    backend: str = "apify"


@dataclass
class RunSummary:
    """One actor run, for metadata and cost reports."""

    actor: str
    run_id: str
    status: str
    dataset_id: str | None = None
    targets: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status_message: str | None = None
    usage_total_usd: float | None = None
    compute_units: float | None = None
    pricing_model: str | None = None
    price_per_result_usd: float | None = None
    items_expected: int = 0
    items_received: int = 0

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass
class ApifyOutcome:
    """What one fetch produced. ``missing_targets`` are those to retry or report."""

    posts: list[Post] = field(default_factory=list)
    rejects: list[ApifyReject] = field(default_factory=list)
    usage_usd: float = 0.0
    runs: list[RunSummary] = field(default_factory=list)
    items_expected: int = 0
    items_received: int = 0
    #: Targets that got no item at all, or (when a dataset came up short) fewer than they asked for.
    missing_targets: list[Target] = field(default_factory=list)
    #: Posts kept per target (``target.text`` or the page URL for Facebook).
    target_posts: dict[str, int] = field(default_factory=dict)
    #: Items beyond a target's ``max_posts`` (the actor returned more than asked) that were skipped.
    items_beyond_cap: int = 0
    #: Items whose (platform, post_id) was already kept, e.g. a post found by a profile and a hashtag.
    duplicates: int = 0
    #: Facebook pages that need a retry (``missing_targets`` is for TikTok targets).
    missing_pages: list[str] = field(default_factory=list)

    @property
    def gap(self) -> int:
        """Items the datasets reported but did not serve."""
        return max(0, self.items_expected - self.items_received)

    @property
    def compute_units(self) -> float:
        return sum(run.compute_units or 0.0 for run in self.runs)

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "apify_runs": len(self.runs),
            "apify_posts": len(self.posts),
            "apify_rejects": len(self.rejects),
            "apify_items_expected": self.items_expected,
            "apify_items_received": self.items_received,
            "apify_items_gap": self.gap,
            "apify_missing_targets": len(self.missing_targets) + len(self.missing_pages),
            "apify_usage_usd": round(self.usage_usd, 6),
            "apify_compute_units": round(self.compute_units, 6),
        }


# --------------------------------------------------------------------------------------------------
# The fetcher
# --------------------------------------------------------------------------------------------------


@dataclass
class _RunResult:
    summary: RunSummary
    items: list[dict[str, Any]]
    scraped_at: datetime


class ApifyFetcher:
    """Runs the actors and returns normalized posts. Usable directly as ``apify_fetch``."""

    def __init__(
        self,
        settings: ApifySettings,
        *,
        client: ApifyClient | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._client = client
        self._progress = progress or logger.info
        secret = settings.token.get_secret_value()
        # Redact the token itself and anything that looks like a token parameter or bearer header.
        self._redact_patterns = [re.escape(secret)] if secret else []
        self._redact_patterns += [r"(?i)(token=)[^&\s\"']+", r"(?i)(bearer\s+)[^\s\"']+"]

    def __call__(self, targets: list[Target]) -> ApifyOutcome:
        return self.fetch_tiktok(targets)

    # -- public ----------------------------------------------------------------------------------
    def fetch_tiktok(self, targets: Sequence[Target]) -> ApifyOutcome:
        """Fetch posts for TikTok targets (profiles, hashtags, videos) in as few runs as possible."""
        outcome = ApifyOutcome()
        if not targets:
            return outcome
        failures: list[ApifyRunFailed] = []
        seen: set[tuple[str, str]] = set()
        for per_page, group in _group_targets(targets):
            run_input = self._tiktok_input(group, per_page)
            budget = sum(1 if t.kind is TargetKind.VIDEO else t.max_posts for t in group)
            labels = [t.text for t in group]
            try:
                result = self._run(
                    self.settings.tiktok_actor, run_input, min(budget, self.settings.max_items), labels
                )
            except ApifyRunFailed as exc:
                failures.append(exc)
                outcome.missing_targets.extend(group)
                continue
            self._collect_tiktok(result, group, outcome, seen)
        if failures:
            first = failures[0]
            raise ApifyRunFailed(
                actor=first.actor,
                run_id=first.run_id,
                status=first.status,
                status_message=first.status_message,
                outcome=outcome,
            )
        return outcome

    def fetch_facebook(self, page_urls: Sequence[str], results_limit: int) -> ApifyOutcome:
        """Fetch up to ``results_limit`` posts per public page with the Facebook posts actor."""
        outcome = ApifyOutcome()
        urls = list(dict.fromkeys(u.strip() for u in page_urls if u and u.strip()))
        if not urls:
            return outcome
        if results_limit < 1:
            raise ValueError("results_limit must be at least 1")
        run_input = {"startUrls": [{"url": url} for url in urls], "resultsLimit": results_limit}
        budget = min(results_limit * len(urls), self.settings.max_items)
        try:
            result = self._run(self.settings.facebook_actor, run_input, budget, urls)
        except ApifyRunFailed as exc:
            outcome.missing_pages.extend(urls)
            exc.outcome = outcome
            raise
        summary = result.summary
        outcome.runs.append(summary)
        outcome.usage_usd += summary.usage_total_usd or 0.0
        outcome.items_expected += summary.items_expected
        outcome.items_received += summary.items_received
        counts = dict.fromkeys(urls, 0)
        seen: set[tuple[str, str]] = set()
        keys = {_page_key(url): url for url in urls}
        for item in result.items:
            page = keys.get(_page_key(_item_page_url(item))) if isinstance(item, dict) else None
            if page is not None:
                counts[page] += 1
            try:
                post = facebook_item_to_post(item, scraped_at=result.scraped_at)
            except ValueError as exc:
                outcome.rejects.append(self._reject(page or "", str(exc), item, summary.run_id))
                continue
            if (post.platform.value, post.post_id) in seen:
                outcome.duplicates += 1
                continue
            seen.add((post.platform.value, post.post_id))
            outcome.posts.append(post)
        outcome.target_posts = counts
        short = summary.items_received < summary.items_expected
        outcome.missing_pages = [u for u, n in counts.items() if n == 0 or (short and n < results_limit)]
        return outcome

    # -- runs ------------------------------------------------------------------------------------
    def _client_or_new(self) -> ApifyClient:
        if self._client is None:
            from apify_client import ApifyClient

            self._client = ApifyClient(
                self.settings.token.get_secret_value(),
                api_url=self.settings.api_url,
                max_retries=self.settings.max_retries,
                min_delay_between_retries=timedelta(seconds=self.settings.min_delay_between_retries_s),
            )
        return self._client

    def _run(self, actor: str, run_input: dict[str, Any], max_items: int, labels: list[str]) -> _RunResult:
        settings = self.settings
        client = self._client_or_new()
        self._progress(f"apify: starting {actor} for {len(labels)} target(s), max {max_items} items")
        run = self._guard(
            f"starting actor {actor}",
            lambda: client.actor(actor).call(
                run_input=run_input,
                max_items=max_items,
                run_timeout=timedelta(seconds=settings.run_timeout_s),
                memory_mbytes=settings.memory_mbytes,
                wait_duration=timedelta(seconds=settings.run_timeout_s + settings.wait_grace_s),
                logger=None,
            ),
        )
        if run is None:
            raise ApifyError(f"a run of actor {actor} was started but could not be read back")
        summary = _summary(actor, run, labels)
        if run.status != "SUCCEEDED":
            if run.status not in _FAILED_STATUSES:
                # The client stopped waiting: stop the run too, so it does not keep charging.
                self._abort_quietly(run.id)
                summary.status_message = f"still {run.status} after waiting; aborted"
            logger.warning("apify run %s of %s ended %s", run.id, actor, run.status)
            raise ApifyRunFailed(
                actor=actor,
                run_id=run.id,
                status=str(run.status),
                status_message=self._redact(summary.status_message or ""),
            )
        items, expected = self._read_dataset(run.default_dataset_id)
        summary.items_expected = expected
        summary.items_received = len(items)
        self._progress(
            f"apify: run {run.id} {run.status}, {len(items)} of {expected} items, "
            f"${summary.usage_total_usd or 0:.4f}"
        )
        return _RunResult(summary, items, datetime.now(UTC))

    def _read_dataset(self, dataset_id: str) -> tuple[list[dict[str, Any]], int]:
        """All items of a dataset page by page, and how many it says it holds."""
        client = self._client_or_new()
        dataset = client.dataset(dataset_id)
        info = self._guard(f"reading dataset {dataset_id}", dataset.get)
        expected = info.item_count if info is not None else 0
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._guard(
                f"reading dataset {dataset_id} items at offset {offset}",
                lambda offset=offset: dataset.list_items(
                    offset=offset, limit=self.settings.page_size, clean=True
                ),
            )
            items.extend(page.items)
            expected = max(expected, page.total)
            # `count` is rows scanned (clean may drop some from `items`); 0 means nothing is left,
            # even when `total` says otherwise: that is the partial-dataset case.
            if page.count <= 0:
                break
            offset += page.count
            if offset >= page.total:
                break
        return items, expected

    def _abort_quietly(self, run_id: str) -> None:
        try:
            self._client_or_new().run(run_id).abort()
        except Exception as exc:  # best effort: the failure below is what the caller needs
            logger.warning("could not abort apify run %s: %s", run_id, self._redact(str(exc)))

    def _guard(self, what: str, call: Callable[[], Any]) -> Any:
        """Run one client call; turn its errors into this module's, token-free."""
        from apify_client.errors import ApifyApiError

        try:
            return call()
        except ApifyApiError as exc:
            status = getattr(exc, "status_code", None)
            message = self._redact(f"{what}: HTTP {status} {exc.type or ''}: {exc.message or ''}".strip())
            if status == 429 or (status is not None and status >= 500):
                raise ApifyUnavailable(f"{message} (after the client's retries)") from None
            raise ApifyRequestRejected(message, status_code=status, error_type=exc.type) from None
        except ApifyError:
            raise
        except Exception as exc:  # transport errors: connection refused, timeouts, TLS
            # Transport errors can span lines (Rust-side reports): one line, bounded, redacted.
            message = self._redact(" ".join(f"{what}: {type(exc).__name__}: {exc}".split()))
            raise ApifyUnavailable(message[:500]) from None

    def _redact(self, text: str) -> str:
        for pattern in self._redact_patterns:
            text = re.sub(pattern, lambda m: (m.group(1) if m.groups() else "") + "***", text)
        return text

    def _reject(self, source_url: str, reason: str, item: Any, run_id: str) -> ApifyReject:
        payload = json.dumps(item, default=str, sort_keys=True, ensure_ascii=False)
        return ApifyReject(source_url=source_url, reason=self._redact(reason), payload=payload, run_id=run_id)

    # -- TikTok ----------------------------------------------------------------------------------
    def _tiktok_input(self, group: list[Target], per_page: int) -> dict[str, Any]:
        run_input: dict[str, Any] = {
            "profiles": [t.value for t in group if t.kind is TargetKind.PROFILE],
            "hashtags": [t.value for t in group if t.kind is TargetKind.HASHTAG],
            "postURLs": [t.url(DEFAULT_BASE_URL) for t in group if t.kind is TargetKind.VIDEO],
            "resultsPerPage": per_page,
            # Metadata only: downloading media would cost storage and transfer for nothing.
            "shouldDownloadVideos": False,
            "shouldDownloadCovers": False,
            "shouldDownloadSubtitles": False,
            "shouldDownloadSlideshowImages": False,
        }
        if self.settings.proxy_country_code:
            run_input["proxyCountryCode"] = self.settings.proxy_country_code
        return {k: v for k, v in run_input.items() if v != []}

    def _collect_tiktok(
        self, result: _RunResult, group: list[Target], outcome: ApifyOutcome, seen: set[tuple[str, str]]
    ) -> None:
        summary = result.summary
        outcome.runs.append(summary)
        outcome.usage_usd += summary.usage_total_usd or 0.0
        outcome.items_expected += summary.items_expected
        outcome.items_received += summary.items_received
        match = _TargetMatcher(group)
        items_per_target = dict.fromkeys((t.text for t in group), 0)
        posts_per_target = dict.fromkeys((t.text for t in group), 0)
        for item in result.items:
            target = match(item)
            if target is not None:
                items_per_target[target.text] += 1
                if items_per_target[target.text] > target.max_posts:
                    outcome.items_beyond_cap += 1
                    continue
            source_url = target.url(DEFAULT_BASE_URL) if target is not None else None
            try:
                post = tiktok_item_to_post(item, scraped_at=result.scraped_at, source_url=source_url)
            except ValueError as exc:
                outcome.rejects.append(self._reject(source_url or "", str(exc), item, summary.run_id))
                continue
            key = (post.platform.value, post.post_id)
            if key in seen:
                outcome.duplicates += 1
                continue
            seen.add(key)
            outcome.posts.append(post)
            if target is not None:
                posts_per_target[target.text] += 1
        for text, count in posts_per_target.items():
            outcome.target_posts[text] = outcome.target_posts.get(text, 0) + count
        short = summary.items_received < summary.items_expected
        for target in group:
            got = items_per_target[target.text]
            wanted = 1 if target.kind is TargetKind.VIDEO else target.max_posts
            if got == 0 or (short and got < wanted):
                outcome.missing_targets.append(target)
        if short:
            logger.warning(
                "apify run %s: dataset served %d of %d items; %d target(s) flagged for retry",
                summary.run_id,
                summary.items_received,
                summary.items_expected,
                len(outcome.missing_targets),
            )


def _group_targets(targets: Iterable[Target]) -> list[tuple[int, list[Target]]]:
    """One group per distinct ``max_posts`` of profiles/hashtags; videos join the first group."""
    unique = list(dict.fromkeys(targets))
    groups: dict[int, list[Target]] = {}
    for target in unique:
        if target.kind is not TargetKind.VIDEO:
            groups.setdefault(target.max_posts, []).append(target)
    videos = [t for t in unique if t.kind is TargetKind.VIDEO]
    if videos:
        if groups:
            groups[next(iter(groups))].extend(videos)
        else:
            groups[1] = videos
    return list(groups.items())


class _TargetMatcher:
    """Which target of a run an item belongs to (the actor echoes it in ``input``)."""

    def __init__(self, group: list[Target]) -> None:
        self.by_key = {(t.kind, t.value.lower()): t for t in group}
        self.videos = {t.value: t for t in group if t.kind is TargetKind.VIDEO}

    def __call__(self, item: Any) -> Target | None:
        if not isinstance(item, dict):
            return None
        video = self.videos.get(str(item.get("id", "")))
        if video is not None:
            return video
        hashtag = item.get("searchHashtag")
        if isinstance(hashtag, dict) and isinstance(hashtag.get("name"), str):
            found = self.by_key.get((TargetKind.HASHTAG, hashtag["name"].lstrip("#").lower()))
            if found is not None:
                return found
        raw = item.get("input")
        if isinstance(raw, str) and raw.strip():
            text = raw.strip()
            if text.startswith(("@", "#")) or "://" in text:
                try:
                    parsed = parse_target(text)
                except TargetError:
                    parsed = None
                if parsed is not None and (parsed.kind, parsed.value.lower()) in self.by_key:
                    return self.by_key[(parsed.kind, parsed.value.lower())]
            else:
                for kind in (TargetKind.PROFILE, TargetKind.HASHTAG):
                    if (kind, text.lower()) in self.by_key:
                        return self.by_key[(kind, text.lower())]
        author = item.get("authorMeta")
        if isinstance(author, dict) and isinstance(author.get("name"), str):
            return self.by_key.get((TargetKind.PROFILE, author["name"].lower()))
        return None


def _summary(actor: str, run: Any, labels: list[str]) -> RunSummary:
    pricing = getattr(run, "pricing_info", None)
    return RunSummary(
        actor=actor,
        run_id=run.id,
        status=str(run.status),
        dataset_id=run.default_dataset_id,
        targets=list(labels),
        started_at=run.started_at,
        finished_at=run.finished_at,
        status_message=run.status_message,
        usage_total_usd=run.usage_total_usd,
        compute_units=run.stats.compute_units if run.stats is not None else None,
        pricing_model=getattr(pricing, "pricing_model", None),
        price_per_result_usd=getattr(pricing, "price_per_unit_usd", None),
    )


def _item_page_url(item: dict[str, Any]) -> str:
    for key in ("inputUrl", "facebookUrl", "url"):
        value = item.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _page_key(url: str) -> str:
    """``https://www.facebook.com/Page/`` and ``facebook.com/page`` name the same page."""
    text = url.strip().lower()
    text = re.sub(r"^https?://", "", text)
    text = re.sub(r"^(www\.|m\.|web\.)", "", text)
    return text.split("?", 1)[0].rstrip("/")
