"""An offline stand-in for the Anti-Captcha API.

``build_anticaptcha_app`` / ``AntiCaptchaServer`` speak the real wire protocol (REFERENCE §4),
so the real ``python_anticaptcha.AnticaptchaClient`` works against it with
``host="127.0.0.1:PORT", use_ssl=False``. All methods are ``POST`` JSON and always answer HTTP
200; failures are ``{"errorId": N, "errorCode": …, "errorDescription": …}``.

Solutions go into a ``CaptchaRegistry`` (``captcha_registry``, re-exported here) that plays
Google / hCaptcha: share one with the sandbox site (``SandboxStack`` does) and the tokens this
service issues are exactly those the site accepts; the images the site draws are the ones this
service's "workers" can read.

Methods: ``/createTask``, ``/getTaskResult``, ``/getBalance``, ``/reportIncorrectRecaptcha``,
``/reportIncorrectImageCaptcha``. Task types: ``NoCaptchaTaskProxyless`` /
``RecaptchaV2TaskProxyless`` (and their proxied twins), ``HCaptchaTaskProxyless`` /
``HCaptchaTask`` and ``ImageToTextTask``. The image "worker" answers by looking the image up
in the registry (the site registered the answer when it drew the image); an image the sandbox
never issued is unsolvable.

Errors returned (ids as documented by Anti-Captcha): 1 ERROR_KEY_DOES_NOT_EXIST,
3 ERROR_ZERO_CAPTCHA_FILESIZE, 10 ERROR_ZERO_BALANCE, 12 ERROR_CAPTCHA_UNSOLVABLE,
14 ERROR_NO_SUCH_METHOD, 16 ERROR_NO_SUCH_CAPCHA_ID, 22 ERROR_TASK_ABSENT,
23 ERROR_TASK_NOT_SUPPORTED, 24 ERROR_INCORRECT_SESSION_DATA. Never 11 (ERROR_IP_NOT_ALLOWED):
python-anticaptcha reacts to it by calling an outside IP-echo service.

Billing follows the real service: a task's cost is taken when it is created (so concurrent
tasks cannot overdraw the account) and kept whatever the outcome, including unsolvable tasks;
reports of incorrect solutions are recorded, not refunded.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ingest_platform.sandbox.captcha_registry import CaptchaRegistry, TokenKind, fraction
from ingest_platform.sandbox.server import LoopbackAppServer

__all__ = [
    "DEFAULT_CLIENT_KEY",
    "AntiCaptchaConfig",
    "AntiCaptchaServer",
    "AntiCaptchaState",
    "CaptchaRegistry",
    "TokenKind",
    "build_anticaptcha_app",
]

DEFAULT_CLIENT_KEY = "sandbox-anticaptcha-key"

_RECAPTCHA_TYPES = frozenset(
    {"NoCaptchaTaskProxyless", "RecaptchaV2TaskProxyless", "NoCaptchaTask", "RecaptchaV2Task"}
)
_HCAPTCHA_TYPES = frozenset({"HCaptchaTaskProxyless", "HCaptchaTask"})
_IMAGE_TYPES = frozenset({"ImageToTextTask"})

_ERRORS: dict[int, tuple[str, str]] = {
    1: ("ERROR_KEY_DOES_NOT_EXIST", "Account authorization key not found in the system"),
    3: ("ERROR_ZERO_CAPTCHA_FILESIZE", "The size of the captcha you are uploading is less than 100 bytes."),
    10: ("ERROR_ZERO_BALANCE", "Account has zero or negative balance"),
    12: ("ERROR_CAPTCHA_UNSOLVABLE", "Captcha could not be solved by 5 different workers"),
    14: ("ERROR_NO_SUCH_METHOD", "Request to API made with method which does not exist"),
    16: (
        "ERROR_NO_SUCH_CAPCHA_ID",
        "Captcha you are requesting does not exist in your current captchas list",
    ),
    22: ("ERROR_TASK_ABSENT", "Task property is empty or not set in createTask method"),
    23: ("ERROR_TASK_NOT_SUPPORTED", "Task type is not supported or inproperly printed"),
    24: (
        "ERROR_INCORRECT_SESSION_DATA",
        "Some of the required values for successive user emulation are missing",
    ),
}


# ---------------------------------------------------------------------- the service ---
class AntiCaptchaConfig(BaseModel):
    """How the solving service behaves. Read per request: a test may change a running service."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    client_keys: set[str] = Field(default_factory=lambda: {DEFAULT_CLIENT_KEY})
    solve_delay_s: float = Field(default=0.0, ge=0, description="Tasks answer 'processing' until then.")
    unsolvable_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of tasks ending in errorId 12."
    )
    wrong_solution_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of solved tasks whose solution the site rejects."
    )
    balance: float = Field(default=10.0, description="Starting account balance in USD.")
    cost_per_task: float = Field(default=0.002, ge=0)
    seed: int = 0


@dataclass
class _Task:
    task_id: int
    client_key: str
    task_type: str
    kind: Literal["recaptcha", "hcaptcha", "image"]
    website_url: str
    website_key: str
    image: bytes
    created_unix: int
    ready_at: float  # time.monotonic()
    outcome: Literal["solve", "wrong", "unsolvable"]
    cost: float
    result: dict[str, Any] | None = None  # frozen once the task has finished
    end_unix: int = 0
    reported: bool = False


class AntiCaptchaState:
    """Tasks, balance and counters of one service instance. Locked: tests read while it serves."""

    def __init__(self, config: AntiCaptchaConfig, registry: CaptchaRegistry) -> None:
        self.config = config
        self.registry = registry
        self.balance = config.balance
        self.spent = 0.0
        self.tasks: dict[int, _Task] = {}
        self.reports: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()
        self.lock = threading.Lock()
        # Real task ids are large integers; start somewhere that does not look like an index.
        self._ids = itertools.count(70_000_001 + (config.seed % 1000) * 1000)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "tasks_created": self.counters["tasks_created"],
                "tasks_solved": self.counters["tasks_solved"],  # a solution was returned
                "wrong_solutions": self.counters["wrong_solutions"],  # ...which the site will reject
                "tasks_failed": self.counters["tasks_unsolvable"],  # errorId 12
                "tasks_pending": sum(1 for t in self.tasks.values() if t.result is None),
                "polls": self.counters["polls"],
                "reports": len(self.reports),
                "reports_recaptcha": self.counters["reports_recaptcha"],
                "reports_image": self.counters["reports_image"],
                "reports_of_wrong_solutions": sum(1 for r in self.reports if r["solution_was_wrong"]),
                "balance": round(self.balance, 6),
                "spent": round(self.spent, 6),
                "errors": {code: n for code, n in self.counters.items() if code.startswith("ERROR_")},
                "by_type": {k[5:]: n for k, n in self.counters.items() if k.startswith("type:")},
            }


def _error(state: AntiCaptchaState, error_id: int, detail: str = "") -> web.Response:
    code, description = _ERRORS[error_id]
    state.counters[code] += 1
    text = f"{description}: {detail}" if detail else description
    return web.json_response({"errorId": error_id, "errorCode": code, "errorDescription": text})


STATE_KEY = web.AppKey("anticaptcha_state", AntiCaptchaState)


async def _payload(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.text() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _known_key(state: AntiCaptchaState, payload: dict[str, Any]) -> str | None:
    key = payload.get("clientKey")
    return key if isinstance(key, str) and key in state.config.client_keys else None


def _create_task(state: AntiCaptchaState, key: str, task: Any) -> web.Response:
    if not isinstance(task, dict) or not task:
        return _error(state, 22)
    task_type = str(task.get("type", ""))
    if task_type in _RECAPTCHA_TYPES or task_type in _HCAPTCHA_TYPES:
        kind: Literal["recaptcha", "hcaptcha", "image"] = (
            "recaptcha" if task_type in _RECAPTCHA_TYPES else "hcaptcha"
        )
        url, sitekey = task.get("websiteURL"), task.get("websiteKey")
        if not url or not sitekey:
            return _error(state, 24, "websiteURL and websiteKey are required")
        image = b""
    elif task_type in _IMAGE_TYPES:
        kind, url, sitekey = "image", str(task.get("websiteUrl") or ""), ""
        try:
            image = base64.b64decode(str(task.get("body") or ""), validate=True)
        except (binascii.Error, ValueError):
            image = b""
        if len(image) < 100:
            return _error(state, 3)
    else:
        return _error(state, 23, repr(task_type))
    config = state.config
    if state.balance < config.cost_per_task:
        return _error(state, 10)
    task_id = next(state._ids)
    if kind == "image" and state.registry.image_answer(image) is None:
        outcome: Literal["solve", "wrong", "unsolvable"] = "unsolvable"  # not a picture we drew
    elif fraction(config.seed, task_id, "unsolvable") < config.unsolvable_rate:
        outcome = "unsolvable"
    elif fraction(config.seed, task_id, "wrong") < config.wrong_solution_rate:
        outcome = "wrong"
    else:
        outcome = "solve"
    state.tasks[task_id] = _Task(
        task_id=task_id,
        client_key=key,
        task_type=task_type,
        kind=kind,
        website_url=str(url),
        website_key=str(sitekey),
        image=image,
        created_unix=int(time.time()),
        ready_at=time.monotonic() + config.solve_delay_s,
        outcome=outcome,
        cost=config.cost_per_task,
    )
    state.balance -= config.cost_per_task
    state.spent += config.cost_per_task
    state.counters["tasks_created"] += 1
    state.counters[f"type:{task_type}"] += 1
    return web.json_response({"errorId": 0, "taskId": task_id})


def _finish(state: AntiCaptchaState, task: _Task) -> dict[str, Any]:
    """Decide what the worker returned, once; later polls repeat it."""
    task.end_unix = int(time.time())
    if task.outcome == "unsolvable":
        state.counters["tasks_unsolvable"] += 1
        code, description = _ERRORS[12]
        return {"errorId": 12, "errorCode": code, "errorDescription": description}
    valid = task.outcome == "solve"
    if task.kind == "image":
        answer = state.registry.image_answer(task.image) or "00000"
        text = answer if valid else f"{(int(answer) + 1) % 100_000:05d}"  # one digit misread
        solution: dict[str, Any] = {"text": text, "url": ""}
    else:
        token = state.registry.issue_token(
            task.kind, task.website_key, valid=valid, website_url=task.website_url, task_id=task.task_id
        )
        solution = {"gRecaptchaResponse": token}
        if task.kind == "hcaptcha":
            solution |= {"token": token, "respKey": "", "userAgent": "Mozilla/5.0 (sandbox worker)"}
    state.counters["tasks_solved"] += 1
    if not valid:
        state.counters["wrong_solutions"] += 1
    return {
        "errorId": 0,
        "status": "ready",
        "solution": solution,
        "cost": f"{task.cost:.5f}",
        "ip": "127.0.0.1",
        "createTime": task.created_unix,
        "endTime": task.end_unix,
        "solveCount": 1,
    }


def _find_task(state: AntiCaptchaState, key: str, payload: dict[str, Any]) -> _Task | None:
    try:
        task_id = int(payload.get("taskId"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    task = state.tasks.get(task_id)
    return task if task is not None and task.client_key == key else None


async def _method(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    method = request.match_info["method"]
    payload = await _payload(request)
    with state.lock:
        state.counters[f"calls:{method}"] += 1
        if method not in _METHODS:
            return _error(state, 14, method)
        key = _known_key(state, payload)
        if key is None:
            return _error(state, 1)
        if method == "createTask":
            return _create_task(state, key, payload.get("task"))
        if method == "getBalance":
            return web.json_response({"errorId": 0, "balance": round(state.balance, 6)})
        task = _find_task(state, key, payload)
        if task is None:
            return _error(state, 16)
        if method == "getTaskResult":
            state.counters["polls"] += 1
            if task.result is None:
                if time.monotonic() < task.ready_at:
                    return web.json_response({"errorId": 0, "status": "processing"})
                task.result = _finish(state, task)
            if task.result["errorId"]:
                state.counters[task.result["errorCode"]] += 1
            return web.json_response(task.result)
        # reportIncorrect*: only finished tasks with a solution can be reported
        if task.result is None or task.result.get("errorId"):
            return _error(state, 16, "task has no solution to report")
        endpoint = "image" if method == "reportIncorrectImageCaptcha" else "recaptcha"
        state.counters[f"reports_{endpoint}"] += 1
        task.reported = True
        state.reports.append(
            {
                "task_id": task.task_id,
                "endpoint": method,
                "kind": task.kind,
                "solution_was_wrong": task.outcome == "wrong",
            }
        )
        return web.json_response({"errorId": 0, "status": "success"})


_METHODS = frozenset(
    {"createTask", "getTaskResult", "getBalance", "reportIncorrectRecaptcha", "reportIncorrectImageCaptcha"}
)


def build_anticaptcha_app(
    config: AntiCaptchaConfig | None = None, registry: CaptchaRegistry | None = None
) -> web.Application:
    """The Anti-Captcha stand-in as an aiohttp application (run it with ``AntiCaptchaServer``)."""
    config = config if config is not None else AntiCaptchaConfig()
    registry = registry if registry is not None else CaptchaRegistry(seed=config.seed)
    app = web.Application()
    app[STATE_KEY] = AntiCaptchaState(config, registry)
    # One route for every method so unknown ones answer like the real API (errorId 14), not 404.
    app.router.add_post("/{method}", _method)
    return app


class AntiCaptchaServer(LoopbackAppServer):
    """The Anti-Captcha stand-in on loopback in a background thread.

    ``AnticaptchaClient(server.client_key, host=server.host_port, use_ssl=False)`` talks to it.
    """

    thread_name = "sandbox-anticaptcha"

    def __init__(
        self,
        config: AntiCaptchaConfig | None = None,
        registry: CaptchaRegistry | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config if config is not None else AntiCaptchaConfig()
        self.registry = registry if registry is not None else CaptchaRegistry(seed=self.config.seed)
        super().__init__(host=host, port=port)

    def _build_app(self) -> web.Application:
        return build_anticaptcha_app(self.config, self.registry)

    @property
    def state(self) -> AntiCaptchaState:
        return self.app[STATE_KEY]

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``: what ``AnticaptchaClient(host=…)`` and ``ANTICAPTCHA_HOST`` take."""
        return self.base_url.removeprefix("http://")

    @property
    def client_key(self) -> str:
        return sorted(self.config.client_keys)[0]

    def stats(self) -> dict[str, Any]:
        return self.state.stats()
