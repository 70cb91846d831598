"""The sandbox forward proxies: authentication, identities the site sees, dead and flaky proxies,
loopback-only targets, CONNECT tunnels, counters, and a real Chromium going through one."""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from ingest_platform.sandbox.captcha_registry import fraction
from ingest_platform.sandbox.content import SandboxContent
from ingest_platform.sandbox.proxies import ProxyFleet, proxy_identity
from ingest_platform.sandbox.server import SandboxServer
from ingest_platform.scraping.browser import resolve_browser_executable
from ingest_platform.scraping.proxy_config import parse_proxy_list
from ingest_platform_tests.conftest import BARE_CHROMIUM_ARGS

# The sandbox is tested with a bare browser (no stealth), wherever INGEST_BROWSER_PATH points.
_CHROMIUM = resolve_browser_executable()
_AUTH = "Proxy-Authorization: Basic " + base64.b64encode(b"user:pass").decode()


@pytest.fixture(scope="module")
def site() -> Iterator[SandboxServer]:
    with SandboxServer(content=SandboxContent.generate()) as running:
        yield running


@pytest.fixture(scope="module")
def fleet() -> Iterator[ProxyFleet]:
    with ProxyFleet(4, dead={2}) as running:
        yield running


def raw(port: int, request: str, *, timeout: float = 10.0) -> bytes:
    """Send ``request`` to 127.0.0.1:port, read until the proxy closes (it always does)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def through(proxy_url: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy_url}))
    request = urllib.request.Request(url, headers={"User-Agent": "proxy-tests/1.0", **(headers or {})})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_urls_and_proxy_list_parse_as_the_platform_setting(fleet: ProxyFleet) -> None:
    assert len(fleet.urls) == 4 and len(set(fleet.ports)) == 4
    assert all(url.startswith("http://user:pass@127.0.0.1:") for url in fleet.urls)
    assert fleet.proxy_list == ",".join(fleet.urls)
    endpoints = parse_proxy_list(fleet.proxy_list)
    assert [(e.host, e.port, e.username) for e in endpoints] == [
        ("127.0.0.1", p, "user") for p in fleet.ports
    ]
    assert fleet.identities == [f"203.0.113.{i}" for i in range(1, 5)]
    with pytest.raises(ValueError):
        ProxyFleet(2, dead={5})


def test_proxy_authentication_is_required(fleet: ProxyFleet, site: SandboxServer) -> None:
    target = site.url("/__sandbox__/health")
    before = fleet.stats()["proxies"][0]["auth_challenges"]
    for auth in ("", "Proxy-Authorization: Basic " + base64.b64encode(b"user:wrong").decode() + "\r\n"):
        answer = raw(fleet.ports[0], f"GET {target} HTTP/1.1\r\nHost: x\r\n{auth}\r\n")
        head = answer.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 407 ")
        assert 'Proxy-Authenticate: Basic realm="sandbox-proxy"' in head
    assert fleet.stats()["proxies"][0]["auth_challenges"] == before + 2
    answer = raw(fleet.ports[0], f"GET {target} HTTP/1.1\r\nHost: x\r\n{_AUTH}\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"ok":true}')


def test_each_proxy_is_a_distinct_identity_for_the_site(fleet: ProxyFleet, site: SandboxServer) -> None:
    profile = site.content.profiles[0].unique_id
    for index in (0, 1, 3):
        status, page = through(fleet.urls[index], site.url(f"/@{profile}"), {"X-Forwarded-For": "6.6.6.6"})
        assert status == 200 and "__UNIVERSAL_DATA_FOR_REHYDRATION__" in page
    seen = {record["ip"] for record in site.stats()["clients"]}
    assert {proxy_identity(0), proxy_identity(1), proxy_identity(3)} <= seen
    assert "6.6.6.6" not in seen  # a client cannot choose its own identity through the proxy
    stats = fleet.stats()["proxies"]
    assert all(stats[i]["requests"] >= 1 and stats[i]["bytes_out"] > len(page) for i in (0, 1, 3))
    assert all(stats[i]["bytes_in"] > 0 for i in (0, 1, 3))


def test_dead_proxy_refuses_connections(fleet: ProxyFleet, site: SandboxServer) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", fleet.ports[2]), timeout=5)
    with pytest.raises(urllib.error.URLError):
        through(fleet.urls[2], site.url("/"))
    assert fleet.stats()["proxies"][2]["dead"] is True


def test_non_loopback_targets_are_refused_without_resolving(fleet: ProxyFleet) -> None:
    refused_before = fleet.stats()["totals"]["refused"]
    for request in (
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n",
        "GET http://10.0.0.1:8080/ HTTP/1.1\r\nHost: 10.0.0.1\r\n",
        "CONNECT accounts.google.com:443 HTTP/1.1\r\nHost: accounts.google.com:443\r\n",
    ):
        answer = raw(fleet.ports[1], request + _AUTH + "\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 403 "), answer
    stats = fleet.stats()
    assert stats["totals"]["refused"] == refused_before + 3
    assert stats["proxies"][1]["targets"]["accounts.google.com:443"] == 1
    # Not something a forward proxy relays: origin-form and garbage get 400, and the proxy lives on.
    assert raw(fleet.ports[1], f"GET / HTTP/1.1\r\n{_AUTH}\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(fleet.ports[1], "NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_connect_tunnels_to_loopback(fleet: ProxyFleet, site: SandboxServer) -> None:
    with socket.create_connection(("127.0.0.1", fleet.ports[3]), timeout=10) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{site.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n{_AUTH}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 Connection Established")
        sock.sendall(b"GET /__sandbox__/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"ok":true}')
    assert fleet.stats()["proxies"][3]["tunnels"] == 1


def test_flaky_proxy_resets_a_deterministic_share_of_connections(site: SandboxServer) -> None:
    rate, seed = 0.4, 5
    expected = [fraction(seed, "flaky", 0, n) < rate for n in range(30)]
    assert 5 < sum(expected) < 25
    with ProxyFleet(1, flaky={0: rate}, seed=seed) as flaky:
        observed = []
        for _ in range(30):
            try:
                answer = raw(
                    flaky.ports[0], f"GET {site.url('/__sandbox__/health')} HTTP/1.1\r\n{_AUTH}\r\n\r\n"
                )
            except ConnectionResetError:
                answer = b""
            observed.append(not answer.startswith(b"HTTP/1.1 200 "))
        stats = flaky.stats()["proxies"][0]
    assert observed == expected
    assert stats["resets"] == sum(expected) and stats["failures"] == sum(expected)
    assert stats["connections"] == 30 and stats["requests"] == 30 - sum(expected)


def test_chromium_through_an_authenticated_proxy_loads_a_sandbox_page(
    fleet: ProxyFleet, site: SandboxServer
) -> None:
    from playwright.sync_api import sync_playwright

    profile = site.content.profiles[1]
    before = fleet.stats()["proxies"][3]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_CHROMIUM,
            args=BARE_CHROMIUM_ARGS,
        )
        try:
            context = browser.new_context(
                proxy={
                    "server": f"http://127.0.0.1:{fleet.ports[3]}",
                    "username": "user",
                    "password": "pass",
                },
                user_agent="proxied-chromium/1.0",
            )
            page = context.new_page()
            response = page.goto(site.url(f"/@{profile.unique_id}"), wait_until="domcontentloaded")
            assert response is not None and response.status == 200
            page.wait_for_function(
                "window.__sandboxState && window.__sandboxState.pages === 1", timeout=10_000
            )
            assert page.locator('[data-e2e="user-post-item"]').count() == 30
        finally:
            browser.close()
    (record,) = [c for c in site.stats()["clients"] if c["userAgent"] == "proxied-chromium/1.0"]
    assert record["ip"] == proxy_identity(3) and record["pageRequests"] == 1 and record["apiRequests"] == 1
    after = fleet.stats()["proxies"][3]
    # Chromium sends credentials only after a 407; its own background calls may add more traffic.
    assert after["auth_challenges"] > before["auth_challenges"]
    assert after["requests"] >= before["requests"] + 2
