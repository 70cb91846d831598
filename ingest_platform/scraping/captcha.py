"""Solve the captchas Anti-Captcha supports; say "rotate" for the ones it does not.

:class:`CaptchaSolver` wraps python-anticaptcha's synchronous ``AnticaptchaClient`` and adds what
a scraper run needs around it:

- **bounded waiting.** The library's ``Job.join()`` polls every ``SLEEP_EVERY_CHECK_FINISHED``
  (a module-wide 3 s) for up to 300 s and its ``getTaskResult`` has no HTTP timeout at all. This
  module never calls ``join()``: it polls ``getTaskResult`` itself every ``poll_interval_s`` until
  ``max_wait_s``, and gives the client's own ``requests`` session a default timeout through a
  mounted adapter (per instance, so nothing global is patched and threads do not interfere);
- **no outside calls.** errorId 11 makes the client look up the caller's IP on api.myip.com; the
  lookup is pre-empted per instance;
- **the event loop keeps going.** Every API call runs in a worker thread (``asyncio.to_thread``);
- **a budget per run.** A task is not created when ``spent + estimated cost`` would pass
  ``budget_usd_per_run``; real costs come from the ``cost`` field of ``getTaskResult``;
- **fatal account errors stop solving once.** ``ERROR_ZERO_BALANCE``, ``ERROR_KEY_DOES_NOT_EXIST``
  (and the other account-level codes in :data:`FATAL_ERRORS`) switch the solver off for the rest of
  the run with ONE log message that never contains the key; the scraper then handles captchas by
  rotating session and proxy, as it does for TikTok's slider (no Anti-Captcha task type exists
  for it);
- **wrong answers are reported.** When the site rejects a solution, :meth:`report_incorrect` calls
  ``reportIncorrectRecaptcha`` (reCAPTCHA, hCaptcha) or ``reportIncorrectImageCaptcha``.

Building one from the usual settings::

    solver = CaptchaSolver.from_env()            # ANTICAPTCHA_API_KEY [+ ANTICAPTCHA_HOST]; None if unset
    solver = CaptchaSolver(key, host="127.0.0.1:8471", use_ssl=False)   # a local stand-in
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest_platform.scraping.blocking import CaptchaChallenge, CaptchaKind
from ingest_platform.scraping.proxy_config import redact_secrets

__all__ = [
    "DEFAULT_HOST",
    "ESTIMATED_COST_USD",
    "FATAL_ERRORS",
    "CaptchaSolveResult",
    "CaptchaSolver",
    "SolverStats",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "api.anti-captcha.com"
KEY_ENV = "ANTICAPTCHA_API_KEY"
HOST_ENV = "ANTICAPTCHA_HOST"

# Account-level errors: retrying cannot help for the rest of the run.
FATAL_ERRORS: frozenset[str] = frozenset(
    {
        "ERROR_ZERO_BALANCE",
        "ERROR_KEY_DOES_NOT_EXIST",
        "ERROR_IP_NOT_ALLOWED",
        "ERROR_IP_BLOCKED",
        "ERROR_ACCOUNT_SUSPENDED",
    }
)
_FATAL_HINTS = {
    "ERROR_ZERO_BALANCE": "the Anti-Captcha account has no funds left",
    "ERROR_KEY_DOES_NOT_EXIST": "ANTICAPTCHA_API_KEY is not a valid Anti-Captcha key",
    "ERROR_IP_NOT_ALLOWED": "this machine's IP is not on the key's allow-list",
    "ERROR_IP_BLOCKED": "Anti-Captcha has blocked this machine's IP",
    "ERROR_ACCOUNT_SUSPENDED": "the Anti-Captcha account is suspended",
}
# Upper-bound prices per solved task (USD), used only to decide whether the budget allows a task;
# the amount charged is what getTaskResult reports.
ESTIMATED_COST_USD: Mapping[CaptchaKind, float] = {
    CaptchaKind.RECAPTCHA_V2: 0.002,
    CaptchaKind.HCAPTCHA: 0.002,
    CaptchaKind.IMAGE: 0.001,
}
# After this many consecutive transport failures (service unreachable) solving stops too.
_MAX_TRANSPORT_FAILURES = 3


@dataclass
class SolverStats:
    """What the solver did this run; merged into the scrape metrics."""

    tasks_created: int = 0
    solved: int = 0
    failed: int = 0
    reported_incorrect: int = 0
    cost_usd: float = 0.0


@dataclass
class CaptchaSolveResult:
    """The outcome of one :meth:`CaptchaSolver.solve` call.

    ``status``: ``submitted`` (a solution was injected and the form submitted: the caller checks
    whether the site accepted it), ``unsupported`` (no Anti-Captcha task for this kind: rotate),
    ``disabled`` (solving is off for this run), ``over_budget``, or ``failed`` (the service could
    not solve it in time, or the page lacked what the task needs).
    """

    kind: CaptchaKind
    status: str
    detail: str = ""
    task_id: int | None = None
    cost_usd: float = 0.0

    @property
    def submitted(self) -> bool:
        return self.status == "submitted"


class _SolveError(Exception):
    """A task that did not produce a solution (message is already redacted)."""


@dataclass
class _Disabled:
    reason: str
    code: str = field(default="")


class CaptchaSolver:
    """Anti-Captcha for one scrape run. Thread-safe; share one instance across sessions."""

    def __init__(
        self,
        client_key: str,
        host: str = DEFAULT_HOST,
        use_ssl: bool = True,
        *,
        budget_usd_per_run: float = 1.0,
        poll_interval_s: float = 3.0,
        max_wait_s: float = 120.0,
        request_timeout_s: float = 15.0,
        first_poll_delay_s: float | None = None,
        submit_timeout_s: float = 15.0,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if not client_key:
            raise ValueError(f"CaptchaSolver needs an API key ({KEY_ENV})")
        if budget_usd_per_run < 0 or poll_interval_s <= 0 or max_wait_s <= 0 or request_timeout_s <= 0:
            raise ValueError("budget must be >= 0 and poll interval, max wait and timeouts positive")
        self._key = client_key
        scheme, _, bare_host = host.rpartition("://")
        self.host = bare_host.rstrip("/")
        self.use_ssl = use_ssl if not scheme else scheme.lower() == "https"
        self.budget_usd_per_run = budget_usd_per_run
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.request_timeout_s = request_timeout_s
        self.first_poll_delay_s = poll_interval_s if first_poll_delay_s is None else first_poll_delay_s
        self.submit_timeout_s = submit_timeout_s
        self._notify = notify or logger.warning
        self.stats = SolverStats()
        self._lock = threading.Lock()
        self._client: Any = None
        self._disabled: _Disabled | None = None
        self._transport_failures = 0
        self._stop = threading.Event()

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> CaptchaSolver | None:
        """``ANTICAPTCHA_API_KEY`` (+ optional ``ANTICAPTCHA_HOST``, e.g. ``http://127.0.0.1:8471``).

        Returns None when no key is set: the scraper then rotates on every captcha.
        """
        environ = os.environ if env is None else env
        key = (environ.get(KEY_ENV) or "").strip()
        if not key:
            return None
        host = (environ.get(HOST_ENV) or "").strip() or DEFAULT_HOST
        return cls(key, host=host, **kwargs)

    def __repr__(self) -> str:  # never the key
        state = f"disabled: {self._disabled.code or self._disabled.reason}" if self._disabled else "active"
        return f"CaptchaSolver(host={self.host!r}, {state})"

    # -- state ---------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._disabled is None

    @property
    def disabled_reason(self) -> str | None:
        return self._disabled.reason if self._disabled else None

    @property
    def budget_left_usd(self) -> float:
        return max(0.0, self.budget_usd_per_run - self.stats.cost_usd)

    def redact(self, text: str) -> str:
        return redact_secrets(text, secrets=[self._key])

    def _disable(self, reason: str, code: str = "") -> None:
        with self._lock:
            if self._disabled is not None:
                return
            self._disabled = _Disabled(reason=reason, code=code)
        # Exactly one message per run, and never the key.
        self._notify(
            self.redact(
                f"Anti-Captcha solving is off for the rest of this run: {reason}. "
                "Captchas are now handled by rotating session and proxy."
            )
        )

    def close(self) -> None:
        """Stop polling loops still running in worker threads and close the HTTP session."""
        self._stop.set()
        client = self._client
        if client is not None:
            try:
                client.close()
            except Exception:  # closing is best effort
                logger.debug("closing the Anti-Captcha client failed", exc_info=True)

    # -- the client ----------------------------------------------------------------------------
    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> Any:
        import requests
        from python_anticaptcha import AnticaptchaClient

        client = AnticaptchaClient(self._key, host=self.host, use_ssl=self.use_ssl)
        timeout = self.request_timeout_s

        class _TimeoutAdapter(requests.adapters.HTTPAdapter):
            # getTaskResult/getBalance/report* post without a timeout: supply one for every call.
            def send(self, request: Any, **kwargs: Any) -> Any:
                if kwargs.get("timeout") is None:
                    kwargs["timeout"] = timeout
                return super().send(request, **kwargs)

        client.session.mount("http://", _TimeoutAdapter())
        client.session.mount("https://", _TimeoutAdapter())
        client.response_timeout = timeout  # createTask's own timeout (class default 5 s)
        # errorId 11 would make the client fetch https://api.myip.com: answer it locally instead.
        client._client_ip = "(not looked up)"
        return client

    # -- blocking core (runs in a worker thread) -----------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        import requests
        from python_anticaptcha import AnticaptchaException

        client = self._get_client()
        try:
            result = getattr(client, method)(*args)
        except AnticaptchaException as error:
            code = str(error.error_code)
            with self._lock:
                self._transport_failures = 0
            if code in FATAL_ERRORS:
                self._disable(f"{code} ({_FATAL_HINTS.get(code, 'account error')})", code)
            raise _SolveError(self.redact(f"Anti-Captcha {method}: {code}")) from None
        except (requests.RequestException, ValueError) as error:
            # ValueError: a body that is not JSON. Both mean "the service did not answer properly".
            with self._lock:
                self._transport_failures += 1
                failures = self._transport_failures
            if failures >= _MAX_TRANSPORT_FAILURES:
                self._disable(f"the service at {self.host} did not answer {_MAX_TRANSPORT_FAILURES} times")
            raise _SolveError(self.redact(f"Anti-Captcha {method}: {type(error).__name__}")) from None
        with self._lock:
            self._transport_failures = 0
        return result

    def solve_task_blocking(self, task: Any, kind: CaptchaKind) -> tuple[dict[str, Any], int, float]:
        """Create ``task`` and poll its result within ``max_wait_s``: (solution, task id, cost).

        Raises :class:`_SolveError` for every way it can fail; never blocks past ``max_wait_s``
        plus one request timeout.
        """
        if self._disabled is not None:
            raise _SolveError(f"solving is off: {self._disabled.reason}")
        estimate = ESTIMATED_COST_USD.get(kind, 0.002)
        with self._lock:
            over = self.stats.cost_usd + estimate > self.budget_usd_per_run
        if over:
            self._disable(
                f"the captcha budget of ${self.budget_usd_per_run:.4f} for this run is spent", "BUDGET"
            )
            raise _SolveError("over budget")
        job = self._call("createTask", task)
        task_id = int(job.task_id)
        with self._lock:
            self.stats.tasks_created += 1
        deadline = time.monotonic() + self.max_wait_s
        wait = self.first_poll_delay_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _SolveError(f"task {task_id} not ready within {self.max_wait_s:g}s")
            if self._stop.wait(min(wait, remaining)):
                raise _SolveError("solver closed")
            wait = self.poll_interval_s
            result = self._call("getTaskResult", task_id)
            if result.get("status") == "ready":
                cost = _as_float(result.get("cost"))
                with self._lock:
                    self.stats.cost_usd += cost
                return dict(result.get("solution") or {}), task_id, cost

    # -- page side (async) ---------------------------------------------------------------------
    async def solve(self, page: Any, challenge: CaptchaChallenge) -> CaptchaSolveResult:
        """Solve ``challenge`` shown in ``page``, inject the answer and submit it.

        Returns after the submission's navigation settled (bounded by ``submit_timeout_s``); the
        caller re-reads the page to see whether the site accepted the answer.
        """
        kind = challenge.kind
        if not kind.solvable:
            return CaptchaSolveResult(kind, "unsupported", f"no Anti-Captcha task type for {kind.value}")
        if self._disabled is not None:
            status = "over_budget" if self._disabled.code == "BUDGET" else "disabled"
            return CaptchaSolveResult(kind, status, self._disabled.reason)
        try:
            task = await self._task_for(page, challenge)
        except _SolveError as error:
            with self._lock:
                self.stats.failed += 1
            return CaptchaSolveResult(kind, "failed", str(error))
        try:
            solution, task_id, cost = await asyncio.to_thread(self.solve_task_blocking, task, kind)
        except _SolveError as error:
            with self._lock:
                self.stats.failed += 1
            disabled = self._disabled
            if disabled is not None:
                status = "over_budget" if disabled.code == "BUDGET" else "disabled"
                return CaptchaSolveResult(kind, status, disabled.reason)
            return CaptchaSolveResult(kind, "failed", str(error))
        answer = _answer_of(kind, solution)
        if not answer:
            with self._lock:
                self.stats.failed += 1
            return CaptchaSolveResult(kind, "failed", "solution without an answer", task_id, cost)
        await self._submit(page, challenge, answer)
        with self._lock:
            self.stats.solved += 1
        return CaptchaSolveResult(kind, "submitted", "solution submitted", task_id, cost)

    async def report_incorrect(self, result: CaptchaSolveResult) -> bool:
        """Tell Anti-Captcha a submitted solution was rejected by the site (refund, accuracy)."""
        if result.task_id is None:
            return False
        method = "reportIncorrectImage" if result.kind is CaptchaKind.IMAGE else "reportIncorrectRecaptcha"
        try:
            accepted = bool(await asyncio.to_thread(self._call, method, result.task_id))
        except _SolveError as error:
            logger.debug("reporting an incorrect captcha failed: %s", error)
            return False
        with self._lock:
            self.stats.reported_incorrect += 1
            # The solve did not count after all.
            self.stats.solved = max(0, self.stats.solved - 1)
        return accepted

    async def _task_for(self, page: Any, challenge: CaptchaChallenge) -> Any:
        from python_anticaptcha import HCaptchaTaskProxyless, ImageToTextTask, NoCaptchaTaskProxylessTask

        url = page.url
        if challenge.kind is CaptchaKind.RECAPTCHA_V2:
            if not challenge.site_key:
                raise _SolveError("reCAPTCHA without a data-sitekey")
            return NoCaptchaTaskProxylessTask(website_url=url, website_key=challenge.site_key)
        if challenge.kind is CaptchaKind.HCAPTCHA:
            if not challenge.site_key:
                raise _SolveError("hCaptcha without a data-sitekey")
            return HCaptchaTaskProxyless(website_url=url, website_key=challenge.site_key)
        if challenge.kind is CaptchaKind.IMAGE:
            image = await self._image_bytes(page, challenge)
            return ImageToTextTask(image, website_url=url)
        raise _SolveError(f"unsupported captcha kind {challenge.kind.value}")

    async def _image_bytes(self, page: Any, challenge: CaptchaChallenge) -> bytes:
        if not challenge.image_selector:
            raise _SolveError("image captcha without an image element")
        element = page.locator(challenge.image_selector).first
        try:
            src = await element.get_attribute("src", timeout=self.submit_timeout_s * 1000)
        except Exception:
            src = None
        if src and src.startswith("data:") and ";base64," in src:
            # The exact image the site drew, not a re-rendered screenshot of it.
            return base64.b64decode(src.split(";base64,", 1)[1])
        try:
            return await element.screenshot(timeout=self.submit_timeout_s * 1000)
        except Exception as error:
            raise _SolveError(f"could not capture the captcha image: {type(error).__name__}") from None

    async def _submit(self, page: Any, challenge: CaptchaChallenge, answer: str) -> None:
        timeout_ms = self.submit_timeout_s * 1000
        try:
            async with page.expect_navigation(wait_until="domcontentloaded", timeout=timeout_ms):
                await page.evaluate(
                    _SUBMIT_JS,
                    {
                        "kind": challenge.kind.value,
                        "answer": answer,
                        "callback": challenge.callback,
                        "input": challenge.input_selector,
                        "submit": challenge.submit_selector,
                        "form": challenge.form_selector,
                    },
                )
        except Exception as error:
            # No navigation (an inline rejection, or a callback that only updates the page):
            # the caller re-reads the page either way.
            logger.debug("captcha submission did not navigate: %s", type(error).__name__)


def _answer_of(kind: CaptchaKind, solution: Mapping[str, Any]) -> str:
    if kind is CaptchaKind.IMAGE:
        return str(solution.get("text") or "")
    return str(solution.get("gRecaptchaResponse") or solution.get("token") or "")


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


# Puts the answer where the page's widget would have put it, then lets the page proceed the way
# it would after a person solved it: the widget's data-callback if it has one, else the form.
_SUBMIT_JS = r"""
(args) => {
  const byName = (n) => Array.from(document.querySelectorAll(`textarea[name="${n}"], input[name="${n}"]`));
  const formOf = () => (args.form && document.querySelector(args.form)) || document.querySelector("form");
  const ensureField = (name) => {
    let fields = byName(name);
    if (!fields.length) {
      const ta = document.createElement("textarea");
      ta.name = name; ta.id = name; ta.style.display = "none";
      (formOf() || document.body).appendChild(ta);
      fields = [ta];
    }
    fields.forEach((f) => { f.value = args.answer; f.innerHTML = args.answer; });
  };
  if (args.kind === "recaptcha_v2") {
    ensureField("g-recaptcha-response");
  } else if (args.kind === "hcaptcha") {
    ensureField("h-captcha-response");
    ensureField("g-recaptcha-response");
  } else {
    const input = (args.input && document.querySelector(args.input)) ||
      document.querySelector('input[type="text"]');
    if (input) {
      input.value = args.answer;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }
  if (args.callback && typeof window[args.callback] === "function") {
    window[args.callback](args.answer);
    return "callback";
  }
  const button = args.submit && document.querySelector(args.submit);
  if (button) { button.click(); return "click"; }
  const form = formOf();
  if (form) {
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    return "form";
  }
  return "none";
}
"""
