"""Run the sandbox TikTok site on loopback: in a background thread (tests) or in the foreground (CLI).

``SandboxServer`` owns its own event loop in a daemon thread, so synchronous code (pytest,
Playwright's sync API, a Dagster op) can use the site without an event loop of its own::

    with SandboxServer() as site:
        requests.get(f"{site.base_url}/@{site.content.profiles[0].unique_id}")

``LoopbackService`` / ``LoopbackAppServer`` are that machinery on their own; the proxy fleet
(``proxies``) and the Anti-Captcha stand-in (``anticaptcha_api``) run on them too.
``serve_forever(scenario="adversarial")`` serves a whole named preset (site, proxies,
Anti-Captcha; see ``scenarios``) in the foreground and prints the environment that points the
platform at it.

Everything binds only to loopback addresses: the sandbox serves made-up personal data and must
never be reachable from another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import shlex
import signal
import threading
from abc import ABC, abstractmethod
from types import FrameType, TracebackType
from typing import Any, Self

from aiohttp import web

from ingest_platform.sandbox.captcha_registry import CaptchaRegistry
from ingest_platform.sandbox.content import SandboxContent
from ingest_platform.sandbox.tiktok_site import CLIENTS_KEY, ClientTracker, SiteScenario, build_app

__all__ = [
    "LoopbackAppServer",
    "LoopbackService",
    "SandboxServer",
    "SandboxStartError",
    "default_targets",
    "serve_forever",
]

_STARTUP_TIMEOUT_S = 15.0
_SHUTDOWN_TIMEOUT_S = 2.0  # in-flight requests get this long; aiohttp's default is 60 s


def _require_loopback(host: str) -> str:
    """Return the address to bind; raise ValueError for anything that is not loopback."""
    if host == "localhost":
        # Binding "localhost" can give ::1 and 127.0.0.1 different ephemeral ports: pick one.
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"host {host!r} is not a loopback address: the sandbox binds only to 127.0.0.0/8, ::1 "
            "or localhost"
        )
    return host


class SandboxStartError(RuntimeError, OSError):
    """A sandbox service could not bind. Also an ``OSError``, so a caller that falls back to a free
    port on ``except OSError`` (``ingest-platform demo``) does."""


class LoopbackService(ABC):
    """Something served on loopback by its own asyncio loop in a daemon thread.

    Subclasses implement ``_setup`` (bind, in the loop) and ``_teardown``. ``start()`` returns once
    ``_setup`` finished; ``stop()`` stops the loop, tears down and joins. Synchronous callers
    (pytest, Playwright's sync API, a Dagster op) need no event loop of their own.
    """

    thread_name = "sandbox-service"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = _require_loopback(host)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # -- to implement ------------------------------------------------------------------------
    @abstractmethod
    async def _setup(self) -> None:
        """Start the service's sockets on ``self._loop``."""

    async def _teardown(self) -> None:
        return None

    def _before_start(self) -> None:
        """Runs in the caller's thread before the loop starts (reset state for a restart)."""
        return None  # optional hook: most services have nothing to reset

    # -- public ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start serving; returns once bound. Idempotent while running."""
        if self.running:
            return self
        self._before_start()
        self._started.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._started.wait(_STARTUP_TIMEOUT_S):
            raise RuntimeError(f"{self.thread_name} did not start in time")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            message = f"{self.thread_name} failed to start on {self.host}: {self._error}"
            if isinstance(self._error, OSError):
                raise SandboxStartError(message) from self._error
            raise RuntimeError(message) from self._error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread. Safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_SHUTDOWN_TIMEOUT_S + 10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start() in the caller's thread
            self._error = exc
            with contextlib.suppress(Exception):  # best effort: the bind error is what matters
                loop.run_until_complete(self._teardown())
            loop.close()
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._teardown())
            finally:
                _cancel_pending(loop)
                loop.close()


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running (open proxy tunnels, slow handlers) so the loop closes cleanly."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


class LoopbackAppServer(LoopbackService):
    """An aiohttp application on ``host:port`` (port 0 = any free port) in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False) -> None:
        super().__init__(host)
        self.port = port
        self._requested_port = port
        self.access_log = access_log
        self.app: web.Application = self._build_app()
        self._runner: web.AppRunner | None = None

    @abstractmethod
    def _build_app(self) -> web.Application:
        """The aiohttp application this server runs."""

    @property
    def base_url(self) -> str:
        if not self.running:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else f"/{path}")

    def _before_start(self) -> None:
        if self.app.frozen:
            # An aiohttp app cannot be run twice: a restart gets a fresh app (counters reset).
            self.app = self._build_app()
        self.port = self._requested_port

    async def _setup(self) -> None:
        runner = web.AppRunner(
            self.app,
            handle_signals=False,  # signals belong to the main thread (see serve_forever)
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
            **({} if self.access_log else {"access_log": None}),
        )
        self._runner = runner
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = int(runner.addresses[0][1])

    async def _teardown(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class SandboxServer(LoopbackAppServer):
    """The sandbox site on ``host:port`` (port 0 = any free port) in a background thread."""

    thread_name = "sandbox-tiktok-site"

    def __init__(
        self,
        content: SandboxContent | None = None,
        scenario: SiteScenario | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_log: bool = False,
        registry: CaptchaRegistry | None = None,
    ) -> None:
        self.content = content if content is not None else SandboxContent.generate()
        self.scenario = scenario if scenario is not None else SiteScenario()
        # The site trusts tokens from this registry (share it with an AntiCaptchaServer).
        self.registry = registry if registry is not None else CaptchaRegistry(seed=self.scenario.seed)
        super().__init__(host=host, port=port, access_log=access_log)

    def _build_app(self) -> web.Application:
        return build_app(self.content, self.scenario, registry=self.registry)

    @property
    def clients(self) -> ClientTracker:
        """Per-client (IP + User-Agent) request and anti-bot counters of the running app."""
        return self.app[CLIENTS_KEY]

    def stats(self) -> dict[str, Any]:
        """Per-client and total hostile-decision counters (same shape as ``/__sandbox__/clients``)."""
        return self.clients.stats()


def default_targets(content: SandboxContent) -> list[str]:
    """A target list that exists in ``content``: two profiles, one hashtag (capped) and one video.

    ``ingest-platform demo`` and ``dev`` export it as ``TIKTOK_TARGETS``.
    """
    first, second, third = content.profiles[0], content.profiles[1], content.profiles[2]
    video_id = third.post_ids[0]
    return [
        f"@{first.unique_id}",
        f"@{second.unique_id}",
        f"#{content.hashtags[0].title}:60",
        f"https://www.tiktok.com/@{third.unique_id}/video/{video_id}",
    ]


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    content: SandboxContent | None = None,
    scenario: SiteScenario | str | None = None,
    access_log: bool = True,
    seed: int = 0,
) -> None:
    """Serve until SIGINT or SIGTERM, printing the base URL. Call from the main thread.

    ``scenario`` may name a preset (``ingest_platform.sandbox.scenarios``, e.g. "adversarial"):
    the preset's proxies and Anti-Captcha stand-in start too, and the environment that points
    the platform at them is printed as ``export`` lines. ``seed`` seeds the preset.
    """
    service: Any
    if isinstance(scenario, str):
        from ingest_platform.sandbox.stack import SandboxStack  # the stack imports this module

        service = SandboxStack(content, scenario, seed=seed, host=host, port=port, access_log=access_log)
    else:
        service = SandboxServer(
            content=content, scenario=scenario, host=host, port=port, access_log=access_log
        )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {sig: signal.signal(sig, _on_signal) for sig in signals}
    try:
        service.start()
        print(f"TikTok sandbox serving at {service.base_url}  (Ctrl+C to stop)", flush=True)
        if isinstance(scenario, str):
            print(f"scenario {scenario!r}: {service.preset.description}", flush=True)
            for name, value in service.env().items():
                print(f"export {name}={shlex.quote(value)}", flush=True)
        while not stop.wait(0.5):
            if not service.running:  # a server thread died: do not pretend to serve
                raise RuntimeError("sandbox server stopped unexpectedly")
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None = None) -> None:
    from ingest_platform.sandbox.scenarios import SCENARIO_NAMES

    parser = argparse.ArgumentParser(description="Serve the offline TikTok-like sandbox site.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=7, help="content seed")
    parser.add_argument(
        "--scenario",
        choices=SCENARIO_NAMES,
        help="a hostile preset: also starts its proxies and Anti-Captcha stand-in",
    )
    parser.add_argument("--scenario-seed", type=int, default=0, help="seed of the anti-bot decisions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # shows the access log
    serve_forever(
        args.host,
        args.port,
        content=SandboxContent.generate(seed=args.seed),
        scenario=args.scenario,
        seed=args.scenario_seed,
    )


if __name__ == "__main__":
    _main()
