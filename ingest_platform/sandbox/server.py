"""Run the sandbox TikTok site on loopback: in a background thread (tests) or in the foreground (CLI).

``SandboxServer`` owns its own event loop in a daemon thread, so synchronous code (pytest,
Playwright's sync API, a Dagster op) can use the site without an event loop of its own::

    with SandboxServer() as site:
        requests.get(f"{site.base_url}/@{site.content.profiles[0].unique_id}")

It binds only to loopback addresses: the sandbox serves made-up personal data and must never be
reachable from another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from aiohttp import web

from ingest_platform.sandbox.content import SandboxContent
from ingest_platform.sandbox.tiktok_site import CLIENTS_KEY, ClientTracker, SiteScenario, build_app

__all__ = ["SandboxServer", "default_targets", "serve_forever"]

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


class SandboxServer:
    """The sandbox site on ``host:port`` (port 0 = any free port) in a background thread."""

    def __init__(
        self,
        content: SandboxContent | None = None,
        scenario: SiteScenario | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_log: bool = False,
    ) -> None:
        self.host = _require_loopback(host)
        self.port = port
        self.content = content if content is not None else SandboxContent.generate()
        self.scenario = scenario if scenario is not None else SiteScenario()
        self.access_log = access_log
        self.app: web.Application = build_app(self.content, self.scenario)
        self._requested_port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # -- public ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if not self.running:
            raise RuntimeError("SandboxServer is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def clients(self) -> ClientTracker:
        """Per-client (IP + User-Agent) request counters of the running app."""
        return self.app[CLIENTS_KEY]

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else f"/{path}")

    def start(self) -> SandboxServer:
        """Start serving; returns once the socket is bound. Idempotent while running."""
        if self.running:
            return self
        if self.app.frozen:
            # An aiohttp app cannot be run twice: a restart gets a fresh app (counters reset).
            self.app = build_app(self.content, self.scenario)
        self._started.clear()
        self._error = None
        self.port = self._requested_port
        self._thread = threading.Thread(target=self._run, name="sandbox-tiktok-site", daemon=True)
        self._thread.start()
        if not self._started.wait(_STARTUP_TIMEOUT_S):
            raise RuntimeError("sandbox server did not start in time")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"sandbox server failed to start on {self.host}:{self.port}") from self._error
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

    def __enter__(self) -> SandboxServer:
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
        runner = web.AppRunner(
            self.app,
            handle_signals=False,  # signals belong to the main thread (see serve_forever)
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
            **({} if self.access_log else {"access_log": None}),
        )
        try:
            loop.run_until_complete(self._bind(runner))
        except BaseException as exc:  # reported to start() in the caller's thread
            self._error = exc
            with contextlib.suppress(Exception):  # best effort: the bind error is what matters
                loop.run_until_complete(runner.cleanup())
            loop.close()
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _bind(self, runner: web.AppRunner) -> None:
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = int(runner.addresses[0][1])


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
    scenario: SiteScenario | None = None,
    access_log: bool = True,
) -> None:
    """Serve until SIGINT or SIGTERM, printing the base URL. Call from the main thread."""
    server = SandboxServer(content=content, scenario=scenario, host=host, port=port, access_log=access_log)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {sig: signal.signal(sig, _on_signal) for sig in signals}
    try:
        server.start()
        print(f"TikTok sandbox serving at {server.base_url}  (Ctrl+C to stop)", flush=True)
        while not stop.wait(0.5):
            if not server.running:  # the server thread died: do not pretend to serve
                raise RuntimeError("sandbox server stopped unexpectedly")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the offline TikTok-like sandbox site.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # shows the access log
    serve_forever(args.host, args.port, content=SandboxContent.generate(seed=args.seed))


if __name__ == "__main__":
    _main()
