"""CaptchaSolver: the real python-anticaptcha client against the sandbox stand-in, its traps
(unbounded polling, no HTTP timeout, errorId 11), budget and fatal errors, and the page flows
(reCAPTCHA, hCaptcha, image, wrong solutions) in real Chromium against the hostile site."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from python_anticaptcha import NoCaptchaTaskProxylessTask

from ingest_platform.sandbox.anticaptcha_api import AntiCaptchaConfig, AntiCaptchaServer
from ingest_platform.sandbox.server import LoopbackAppServer
from ingest_platform.sandbox.stack import SandboxStack
from ingest_platform.sandbox.tiktok_site import SiteScenario
from ingest_platform.scraping.blocking import CaptchaChallenge, CaptchaKind
from ingest_platform.scraping.browser import BrowserSettings, scrape_sync
from ingest_platform.scraping.captcha import CaptchaSolver, _SolveError
from ingest_platform.scraping.proxy_config import parse_proxy_list
from ingest_platform.scraping.targets import Target, TargetKind

RECAPTCHA = CaptchaKind.RECAPTCHA_V2


def _task() -> NoCaptchaTaskProxylessTask:
    return NoCaptchaTaskProxylessTask(website_url="http://127.0.0.1/@x", website_key="6LcSandbox")


@pytest.fixture
def service() -> Iterator[AntiCaptchaServer]:
    with AntiCaptchaServer(AntiCaptchaConfig()) as server:
        yield server


def _solver(server: AntiCaptchaServer, messages: list[str] | None = None, **kwargs: float) -> CaptchaSolver:
    options = {"poll_interval_s": 0.05, "max_wait_s": 5.0, "request_timeout_s": 2.0} | kwargs
    return CaptchaSolver(
        server.client_key,
        host=server.host_port,
        use_ssl=False,
        notify=messages.append if messages is not None else None,
        **options,
    )


# ------------------------------------------------------------------------------ the client side ---
def test_solves_a_task_with_the_real_client_and_counts_cost(service: AntiCaptchaServer) -> None:
    solver = _solver(service)
    solution, task_id, cost = solver.solve_task_blocking(_task(), RECAPTCHA)
    assert solution["gRecaptchaResponse"].startswith("03AFcWeA")
    assert task_id > 0 and cost == pytest.approx(0.002)
    assert solver.stats.tasks_created == 1 and solver.stats.cost_usd == pytest.approx(0.002)
    assert service.stats()["by_type"] == {"NoCaptchaTaskProxyless": 1}


def test_polling_is_bounded_by_max_wait(service: AntiCaptchaServer) -> None:
    service.config.solve_delay_s = 60.0  # the library's own join() would wait up to 300 s
    solver = _solver(service, max_wait_s=0.6, poll_interval_s=0.1)
    started = time.monotonic()
    with pytest.raises(_SolveError, match="not ready within"):
        solver.solve_task_blocking(_task(), RECAPTCHA)
    assert time.monotonic() - started < 2.0
    assert service.stats()["polls"] >= 3  # it did poll, at our interval


def test_a_service_that_never_answers_cannot_hang_the_solver() -> None:
    # getTaskResult has no HTTP timeout in python-anticaptcha: a silent server would block forever.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # ...and never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    messages: list[str] = []
    try:
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        solver = CaptchaSolver(
            "k-silent", host=host, use_ssl=False, request_timeout_s=0.3, notify=messages.append
        )
        started = time.monotonic()
        for _ in range(3):
            with pytest.raises(_SolveError):
                solver.solve_task_blocking(_task(), RECAPTCHA)
        assert time.monotonic() - started < 3.0
        assert not solver.active and len(messages) == 1  # unreachable 3 times: solving stops once
        assert "did not answer" in messages[0] and "k-silent" not in messages[0]
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


class _ErrorEleven(LoopbackAppServer):
    thread_name = "test-anticaptcha-error-11"

    def _build_app(self) -> web.Application:
        async def create(request: web.Request) -> web.Response:
            del request
            return web.json_response(
                {"errorId": 11, "errorCode": "ERROR_IP_NOT_ALLOWED", "errorDescription": "not allowed"}
            )

        app = web.Application()
        app.router.add_post("/{method}", create)
        return app


def test_error_11_never_makes_the_client_call_outside() -> None:
    messages: list[str] = []
    with _ErrorEleven() as server:
        host = server.base_url.removeprefix("http://")
        solver = CaptchaSolver(
            "k-eleven", host=host, use_ssl=False, request_timeout_s=1, notify=messages.append
        )
        started = time.monotonic()
        with pytest.raises(_SolveError, match="ERROR_IP_NOT_ALLOWED"):
            solver.solve_task_blocking(_task(), RECAPTCHA)
        # The client would otherwise GET https://api.myip.com (no internet here: a 5 s timeout).
        assert time.monotonic() - started < 1.5
    assert not solver.active and len(messages) == 1 and "k-eleven" not in messages[0]


@pytest.mark.parametrize(
    ("config", "code"),
    [
        (AntiCaptchaConfig(balance=0.0), "ERROR_ZERO_BALANCE"),
        (AntiCaptchaConfig(client_keys={"another-key"}), "ERROR_KEY_DOES_NOT_EXIST"),
    ],
)
def test_fatal_account_errors_stop_solving_with_one_message(config: AntiCaptchaConfig, code: str) -> None:
    messages: list[str] = []
    with AntiCaptchaServer(config) as server:
        solver = CaptchaSolver(
            "sandbox-anticaptcha-key", host=server.host_port, use_ssl=False, notify=messages.append
        )
        for _ in range(3):
            with pytest.raises(_SolveError):
                solver.solve_task_blocking(_task(), RECAPTCHA)
        calls = server.state.counters["calls:createTask"]
    assert calls == 1  # after the fatal answer no further task is even attempted
    assert not solver.active and code in (solver.disabled_reason or "")
    assert len(messages) == 1 and code in messages[0]
    assert "sandbox-anticaptcha-key" not in messages[0] and "sandbox-anticaptcha-key" not in repr(solver)


def test_budget_caps_spending_per_run(service: AntiCaptchaServer) -> None:
    messages: list[str] = []
    solver = _solver(service, messages, budget_usd_per_run=0.005)
    solver.solve_task_blocking(_task(), RECAPTCHA)
    solver.solve_task_blocking(_task(), RECAPTCHA)
    with pytest.raises(_SolveError, match="over budget"):
        solver.solve_task_blocking(_task(), RECAPTCHA)  # 0.004 spent + 0.002 > 0.005
    assert service.stats()["tasks_created"] == 2
    assert len(messages) == 1 and "budget" in messages[0]


def test_unsupported_kind_is_not_sent_and_calls_run_off_the_event_loop(service: AntiCaptchaServer) -> None:
    solver = _solver(service)

    class NoPage:
        url = "http://127.0.0.1/"

    result = asyncio.run(solver.solve(NoPage(), CaptchaChallenge(kind=CaptchaKind.TIKTOK_SLIDER)))
    assert result.status == "unsupported" and service.stats()["tasks_created"] == 0

    service.config.solve_delay_s = 0.4
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        solving = asyncio.create_task(asyncio.to_thread(solver.solve_task_blocking, _task(), RECAPTCHA))
        while not solving.done():
            ticks += 1
            await asyncio.sleep(0.02)
        await solving

    asyncio.run(main())
    assert ticks >= 10  # the loop kept running while the solver polled in its thread


def test_from_env_reads_key_and_host() -> None:
    assert CaptchaSolver.from_env({}) is None
    solver = CaptchaSolver.from_env(
        {"ANTICAPTCHA_API_KEY": "k1", "ANTICAPTCHA_HOST": "http://127.0.0.1:8471"}, budget_usd_per_run=0.5
    )
    assert solver is not None and solver.host == "127.0.0.1:8471" and solver.use_ssl is False
    assert solver.budget_usd_per_run == 0.5
    default = CaptchaSolver.from_env({"ANTICAPTCHA_API_KEY": "k1"})
    assert default is not None and default.host == "api.anti-captcha.com" and default.use_ssl is True


# -------------------------------------------------------------------------------- page flows ---
FAST = {"min_delay_s": 0.0, "max_delay_s": 0.05, "quarantine_base_s": 0.2, "quarantine_max_s": 1.0}


def _targets(stack: SandboxStack) -> list[Target]:
    content = stack.content
    return [
        Target(kind=TargetKind.PROFILE, value=content.profiles[0].unique_id, max_posts=30),
        Target(
            kind=TargetKind.VIDEO, value=content.profiles[1].post_ids[0], handle=content.profiles[1].unique_id
        ),
        Target(
            kind=TargetKind.VIDEO, value=content.profiles[2].post_ids[1], handle=content.profiles[2].unique_id
        ),
    ]


def _scrape(stack: SandboxStack, solver: CaptchaSolver, **settings: float):
    options = FAST | {"base_url": stack.base_url, "concurrent_sessions": 2} | settings
    return scrape_sync(
        _targets(stack), BrowserSettings(**options), parse_proxy_list(stack.proxy_list), captcha=solver
    )


def _stack_solver(stack: SandboxStack) -> CaptchaSolver:
    assert stack.anticaptcha_key and stack.anticaptcha_host
    return CaptchaSolver(
        stack.anticaptcha_key, host=stack.anticaptcha_host, use_ssl=False, poll_interval_s=0.05, max_wait_s=10
    )


@pytest.mark.parametrize("kind", ["hcaptcha", "image"])
def test_hcaptcha_and_image_captchas_are_solved_in_the_page(kind: str) -> None:
    # Every client's first page is a captcha; a solved one earns a pass for the next pages.
    scenario = SiteScenario(seed=5, captcha_rate=1.0, captcha_kind=kind)  # type: ignore[arg-type]
    with SandboxStack(scenario=scenario, proxies=2, anticaptcha=AntiCaptchaConfig(seed=5)) as stack:
        outcome = _scrape(stack, _stack_solver(stack))
        stats = stack.stats()
    metrics = outcome.metrics
    assert metrics.success_rate == 1.0, outcome.targets
    assert metrics.captchas_solved >= 1 and metrics.captchas_rejected == 0
    assert stats["site"]["totals"]["captcha_solved"] == metrics.captchas_solved
    expected_type = "HCaptchaTaskProxyless" if kind == "hcaptcha" else "ImageToTextTask"
    assert set(stats["anticaptcha"]["by_type"]) == {expected_type}
    assert metrics.captcha_cost_usd == pytest.approx(0.002 * metrics.captcha_tasks)


def test_wrong_solutions_are_reported_and_the_page_is_retried_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scenario = SiteScenario(seed=11, captcha_rate=1.0, captcha_kind="recaptcha")
    service = AntiCaptchaConfig(seed=11, wrong_solution_rate=0.5)
    with SandboxStack(scenario=scenario, proxies=3, anticaptcha=service) as stack:
        with caplog.at_level(logging.DEBUG):
            outcome = _scrape(stack, _stack_solver(stack), max_attempts_per_target=6)
        stats = stack.stats()
    metrics = outcome.metrics
    rejected = stats["site"]["totals"]["captcha_failed"]
    assert rejected >= 1, "seed 11 should produce at least one wrong solution"
    assert metrics.captchas_rejected == rejected
    assert stats["anticaptcha"]["reports_recaptcha"] == rejected
    assert stats["anticaptcha"]["reports_of_wrong_solutions"] == rejected  # only wrong ones reported
    assert metrics.success_rate == 1.0, outcome.targets
    assert "sandbox-anticaptcha-key" not in caplog.text
