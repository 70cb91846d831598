"""Local HTTP forward proxies for the sandbox: a fleet of "residential IPs" on loopback.

``ProxyFleet(count)`` runs ``count`` forward proxies on ``127.0.0.1`` (one asyncio loop in a
daemon thread). Each behaves like a paid proxy endpoint, within the sandbox's limits:

* ``Proxy-Authorization: Basic`` is required; without it (or wrong) the answer is
  ``407 Proxy Authentication Required`` with ``Proxy-Authenticate: Basic realm="sandbox-proxy"``
  (Chromium only sends credentials after that challenge);
* absolute-URI requests (``GET http://127.0.0.1:PORT/path HTTP/1.1``: what browsers and HTTP
  clients send to a proxy for ``http://`` URLs) are forwarded with
  ``X-Forwarded-For: 203.0.113.<i>`` (i = proxy index + 1, a documentation-range address that is
  never contacted): the sandbox site takes that header as the client's IP, so every proxy is a
  distinct identity. A client's own ``X-Forwarded-For`` is replaced, not trusted;
* ``CONNECT host:port`` opens a byte tunnel (no header can be added inside it, so the site sees
  such traffic as 127.0.0.1);
* only loopback targets (``127.0.0.0/8``, ``::1``, ``localhost``) are reachable; anything else
  (Chromium's own background calls to Google hosts included) gets ``403`` and is counted as
  refused. Host names are never resolved, so nothing leaves the machine;
* ``dead`` proxies hold their port bound but never listen: connecting is refused, as with a
  proxy that went away. ``flaky`` ones reset (RST) a deterministic share of connections.

One request per client connection: every answer carries ``Connection: close``. That keeps
framing trivial (the upstream response is relayed byte for byte until it closes) and browsers
simply reconnect.

``fleet.urls`` → ``["http://user:pass@127.0.0.1:PORT", …]``; ``fleet.proxy_list`` is the same
joined by commas (the ``PROXY_LIST`` setting); ``fleet.stats()`` counts requests, tunnels, bytes
in/out, refusals, resets and failures per proxy.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import itertools
import socket
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from ingest_platform.sandbox.captcha_registry import fraction
from ingest_platform.sandbox.server import LoopbackService

__all__ = ["ProxyFleet", "ProxyStats", "proxy_identity"]

_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 8 * 1024 * 1024
_HEAD_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
_IDLE_TIMEOUT_S = 60.0  # a relay with no bytes either way for this long is dropped
_CHUNK = 64 * 1024
# Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy's own: never forwarded.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "x-forwarded-for",
    }
)


def proxy_identity(index: int) -> str:
    """The address proxy ``index`` presents to the site (RFC 5737 TEST-NET-3, never contacted)."""
    return f"203.0.113.{index + 1}"


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: never resolved, so never reachable


@dataclass
class ProxyStats:
    index: int
    port: int
    identity: str
    dead: bool
    flaky_rate: float
    connections: int = 0  # accepted TCP connections
    requests: int = 0  # forwarded absolute-URI requests
    tunnels: int = 0  # CONNECT tunnels opened
    auth_challenges: int = 0  # 407 answers
    refused: int = 0  # 403: non-loopback target
    bad_requests: int = 0  # 400/411/413/501: not something a proxy can forward
    resets: int = 0  # flaky connection resets
    failures: int = 0  # resets + upstream errors (502) + broken relays
    bytes_in: int = 0  # bytes received from clients
    bytes_out: int = 0  # bytes sent to clients
    targets: dict[str, int] = field(default_factory=dict)  # host:port -> requests (incl. refused)


class _Proxy:
    """One forward proxy endpoint."""

    def __init__(self, fleet: ProxyFleet, index: int, dead: bool, flaky_rate: float) -> None:
        self.fleet = fleet
        self.index = index
        self.identity = proxy_identity(index)
        self.stats = ProxyStats(index, 0, self.identity, dead, flaky_rate)
        self.server: asyncio.Server | None = None
        self.placeholder: socket.socket | None = None  # a dead proxy's bound, non-listening port
        self._connections = itertools.count()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, host: str) -> None:
        if self.stats.dead:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))  # reserved, never listen(): connecting is refused
            self.placeholder = sock
            self.stats.port = sock.getsockname()[1]
            return
        self.server = await asyncio.start_server(self._handle, host, 0, limit=_MAX_HEAD_BYTES)
        self.stats.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)
            self.server = None
        if self.placeholder is not None:
            self.placeholder.close()
            self.placeholder = None

    def _count(self, **deltas: int) -> None:
        with self.fleet.lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    # -- one connection ----------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = next(self._connections)
        self._count(connections=1)
        try:
            rate = self.stats.flaky_rate
            if rate and fraction(self.fleet.seed, "flaky", self.index, number) < rate:
                self._count(resets=1, failures=1)
                _reset(writer)
                return
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client went away or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            await self._answer(writer, 431, "Request Header Fields Too Large", bad=True)
            return
        self._count(bytes_in=len(head))
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._answer(writer, 400, "Bad Request", bad=True)
            return
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                await self._answer(writer, 400, "Bad Request", bad=True)
                return
            headers.append((name.strip(), value.strip()))

        if not self._authorized(headers):
            self._count(auth_challenges=1)
            await self._answer(
                writer,
                407,
                "Proxy Authentication Required",
                extra={"Proxy-Authenticate": 'Basic realm="sandbox-proxy"'},
            )
            return
        if method.upper() == "CONNECT":
            await self._tunnel(reader, writer, target)
        else:
            await self._forward(reader, writer, method, target, version, headers)

    def _authorized(self, headers: Iterable[tuple[str, str]]) -> bool:
        value = next((v for k, v in headers if k.lower() == "proxy-authorization"), "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            supplied = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.fleet.username}:{self.fleet.password}".encode()
        return hmac.compare_digest(supplied, expected)

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        reason: str,
        *,
        extra: Mapping[str, str] | None = None,
        bad: bool = False,
    ) -> None:
        body = f"{status} {reason}\n".encode()
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        head.append("Connection: close")
        payload = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        if bad:
            self._count(bad_requests=1)
        self._count(bytes_out=len(payload))
        writer.write(payload)
        await writer.drain()

    def _note_target(self, authority: str) -> None:
        with self.fleet.lock:
            self.stats.targets[authority] = self.stats.targets.get(authority, 0) + 1

    async def _open_upstream(
        self, writer: asyncio.StreamWriter, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), port), _CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            self._count(failures=1)
            await self._answer(writer, 502, "Bad Gateway")
            return None

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str) -> None:
        host, sep, port_text = target.rpartition(":")
        self._note_target(target)
        if not sep or not port_text.isdigit():
            await self._answer(writer, 400, "Bad Request", bad=True)
            return
        if not _is_loopback_host(host):
            self._count(refused=1)
            await self._answer(writer, 403, "Forbidden")
            return
        upstream = await self._open_upstream(writer, host, int(port_text))
        if upstream is None:
            return
        up_reader, up_writer = upstream
        self._count(tunnels=1)
        established = b"HTTP/1.1 200 Connection Established\r\n\r\n"
        self._count(bytes_out=len(established))
        writer.write(established)
        await writer.drain()
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, "bytes_in"),
                self._pump(up_reader, writer, "bytes_out"),
            )
        finally:
            up_writer.close()

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
    ) -> None:
        url = urlsplit(target)
        if url.scheme.lower() != "http" or not url.hostname:
            # origin-form ("GET /path") is a request for the proxy itself, not something to relay
            await self._answer(writer, 400, "Bad Request", bad=True)
            return
        port = url.port or 80
        self._note_target(f"{url.hostname}:{port}")
        if not _is_loopback_host(url.hostname):
            self._count(refused=1)
            await self._answer(writer, 403, "Forbidden")
            return
        lowered = {k.lower(): v for k, v in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            await self._answer(writer, 411, "Length Required", bad=True)
            return
        try:
            length = int(lowered.get("content-length", "0") or "0")
        except ValueError:
            length = -1
        if length < 0:
            await self._answer(writer, 400, "Bad Request", bad=True)
            return
        if length > _MAX_BODY_BYTES:
            await self._answer(writer, 413, "Content Too Large", bad=True)
            return
        body = await asyncio.wait_for(reader.readexactly(length), _HEAD_TIMEOUT_S) if length else b""
        self._count(bytes_in=len(body))

        origin_form = (url.path or "/") + (f"?{url.query}" if url.query else "")
        out = [f"{method} {origin_form} {version}"]
        out += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_HEADERS]
        if "host" not in lowered:
            out.append(f"Host: {url.netloc.rpartition('@')[2]}")
        out += [f"X-Forwarded-For: {self.identity}", "Connection: close"]
        upstream = await self._open_upstream(writer, url.hostname, port)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        self._count(requests=1)
        try:
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            await up_writer.drain()
            # The upstream closes after its answer (Connection: close): relay until then.
            await self._pump(up_reader, writer, "bytes_out")
        except (ConnectionError, TimeoutError):
            self._count(failures=1)
        finally:
            up_writer.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, counter: str) -> None:
        try:
            while True:
                chunk = await asyncio.wait_for(source.read(_CHUNK), _IDLE_TIMEOUT_S)
                if not chunk:
                    break
                # Count before writing: once the bytes are out, a client may read them and check
                # the counters before this thread runs again.
                self._count(**{counter: len(chunk)})
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            if sink.can_write_eof():
                with contextlib.suppress(OSError, RuntimeError):
                    sink.write_eof()  # half-close: the other direction may still be talking


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with RST rather than FIN: what a flaky proxy's "connection reset by peer" looks like."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ProxyFleet(LoopbackService):
    """``count`` authenticated forward proxies on loopback (see the module docstring).

    ``dead``: indexes whose port refuses connections. ``flaky``: index -> share of connections
    reset, decided by ``seed`` and the connection's number (reproducible).
    """

    thread_name = "sandbox-proxies"

    def __init__(
        self,
        count: int,
        *,
        username: str = "user",
        password: str = "pass",
        dead: Iterable[int] = (),
        flaky: Mapping[int, float] | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host)
        if not 0 <= count <= 254:
            raise ValueError("count must be between 0 and 254 (one 203.0.113.x identity each)")
        dead_set, flaky_map = set(dead), dict(flaky or {})
        for index in dead_set | set(flaky_map):
            if not 0 <= index < count:
                raise ValueError(f"proxy index {index} is outside 0..{count - 1}")
        for index, rate in flaky_map.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"flaky rate of proxy {index} must be within [0, 1]")
        self.count = count
        self.username = username
        self.password = password
        self.dead = frozenset(dead_set)
        self.flaky = flaky_map
        self.seed = seed
        self.lock = threading.Lock()
        self._proxies: list[_Proxy] = []

    def _before_start(self) -> None:
        self._proxies = [
            _Proxy(self, i, dead=i in self.dead, flaky_rate=self.flaky.get(i, 0.0)) for i in range(self.count)
        ]

    async def _setup(self) -> None:
        for proxy in self._proxies:
            await proxy.start(self.host)

    async def _teardown(self) -> None:
        for proxy in self._proxies:
            await proxy.close()

    # -- public ------------------------------------------------------------------------------
    def _require_running(self) -> None:
        if not self.running:
            raise RuntimeError("ProxyFleet is not running; call start() first")

    @property
    def ports(self) -> list[int]:
        self._require_running()
        return [proxy.stats.port for proxy in self._proxies]

    @property
    def identities(self) -> list[str]:
        """The ``X-Forwarded-For`` address of each proxy, in order."""
        return [proxy_identity(i) for i in range(self.count)]

    @property
    def urls(self) -> list[str]:
        """``http://user:pass@127.0.0.1:PORT`` per proxy, dead ones included (finding them is the
        scraper's job)."""
        credentials = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        return [f"http://{credentials}@{self.host}:{port}" for port in self.ports]

    @property
    def proxy_list(self) -> str:
        """The fleet as the ``PROXY_LIST`` setting takes it."""
        return ",".join(self.urls)

    def url(self, index: int) -> str:
        return self.urls[index]

    def heal(self) -> None:
        """Stop every flaky proxy from resetting connections (dead ones stay dead): a scenario's
        "the provider recovered" moment, on a running fleet."""
        self._require_running()
        with self.lock:
            for proxy in self._proxies:
                proxy.stats.flaky_rate = 0.0

    def stats(self) -> dict[str, Any]:
        """``{"proxies": [per-proxy counters], "totals": {...}}``."""
        with self.lock:
            proxies = [asdict(proxy.stats) for proxy in self._proxies]
        summed = (
            "connections",
            "requests",
            "tunnels",
            "auth_challenges",
            "refused",
            "bad_requests",
            "resets",
            "failures",
            "bytes_in",
            "bytes_out",
        )
        totals: dict[str, Any] = {name: sum(p[name] for p in proxies) for name in summed}
        totals |= {"proxies": len(proxies), "dead": len(self.dead), "flaky": len(self.flaky)}
        return {"proxies": proxies, "totals": totals}
