"""Fingerprints: consistent desktop Chrome identities, never HeadlessChrome, real Chromium major."""

from __future__ import annotations

import asyncio
import os
import random
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from ingest_platform.sandbox.server import LoopbackAppServer
from ingest_platform.scraping.browser import CHROMIUM_ARGS, resolve_browser_executable
from ingest_platform.scraping.fingerprints import (
    FingerprintFactory,
    SessionFingerprint,
    build_fingerprint,
    chrome_accept_language,
    chrome_major,
    chromium_major_of,
    is_software_renderer,
)
from ingest_platform.scraping.proxy_config import parse_proxy_list
from ingest_platform.scraping.proxy_pool import ProxyPool
from ingest_platform.scraping.sessions import SessionManager

HEADLESS_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36"
)


@pytest.fixture(scope="module")
def fingerprints() -> list[SessionFingerprint]:
    factory = FingerprintFactory(chrome_major=156, locales=("en-US", "en-GB"), rng=random.Random(3))
    return [factory.generate() for _ in range(25)]


def test_user_agents_are_desktop_chrome_at_the_running_major(fingerprints: list[SessionFingerprint]) -> None:
    for fp in fingerprints:
        assert "HeadlessChrome" not in fp.user_agent
        assert "Mobile" not in fp.user_agent
        assert chrome_major(fp.user_agent) == 156 == fp.chrome_major
        assert "Chrome/156.0.0.0 " in fp.user_agent  # Chrome's reduced UA format


def test_platform_fields_agree_with_the_user_agent(fingerprints: list[SessionFingerprint]) -> None:
    expected = {"Windows NT": ("Win32", "Windows"), "Macintosh": ("MacIntel", "macOS")}
    for fp in fingerprints:
        for marker, (platform, ua_platform) in expected.items():
            if marker in fp.user_agent:
                assert (fp.platform, fp.ua_platform) == (platform, ua_platform)
        if "X11; Linux" in fp.user_agent:
            assert (fp.platform, fp.ua_platform) == ("Linux x86_64", "Linux")


def test_languages_headers_locale_and_timezone_agree(fingerprints: list[SessionFingerprint]) -> None:
    for fp in fingerprints:
        assert fp.locale in ("en-US", "en-GB")
        options = fp.context_options()
        if fp.locale == "en-US":  # the browser's own locale: Chromium sends Chrome's q-list
            assert fp.languages == ("en-US", "en") and fp.accept_language == "en-US,en;q=0.9"
            assert fp.context_locale is None and "locale" not in options
            assert fp.timezone_id.startswith("America/")
        else:  # Playwright's per-context locale: consistent, bare header
            assert fp.languages == ("en-GB",) and fp.accept_language == "en-GB"
            assert options["locale"] == "en-GB" and fp.timezone_id == "Europe/London"
        assert options["timezone_id"] == fp.timezone_id and options["user_agent"] == fp.user_agent
    assert {fp.locale for fp in fingerprints} == {"en-US", "en-GB"}


def test_screen_and_viewport_are_a_plausible_desktop(fingerprints: list[SessionFingerprint]) -> None:
    for fp in fingerprints:
        assert 1024 <= fp.viewport_width <= fp.screen_width <= 1920
        assert 600 <= fp.viewport_height < fp.screen_height
        assert fp.device_scale_factor in (1.0, 1.25, 1.5, 2.0)
        options = fp.context_options()
        assert options["viewport"] == {"width": fp.viewport_width, "height": fp.viewport_height}
        assert options["is_mobile"] is False


def test_stealth_overrides_come_from_the_same_fingerprint(fingerprints: list[SessionFingerprint]) -> None:
    fp = fingerprints[0]
    stealth = fp.stealth()
    assert stealth.navigator_user_agent_override == fp.user_agent
    assert stealth.navigator_platform_override == fp.platform
    if fp.locale == "en-US":
        assert stealth.navigator_languages and stealth.navigator_languages_override == ("en-US", "en")
    else:
        assert not stealth.navigator_languages
    assert stealth.navigator_webdriver is True
    assert fp.webgl_vendor is None or stealth.webgl_vendor_override == fp.webgl_vendor
    assert stealth.sec_ch_ua is False  # Chromium's own client hints stay (they match the UA)


def test_build_fingerprint_rewrites_headless_and_foreign_majors() -> None:
    fp = build_fingerprint(
        user_agent=HEADLESS_UA,
        locale="de-DE",
        target_major=150,
        timezone_id="Europe/Berlin",
        screen=(800, 500, 480),  # too small: clamped to a usable desktop
        device_scale_factor=1.1,
        rng=random.Random(0),
    )
    assert fp.user_agent.endswith("Chrome/150.0.0.0 Safari/537.36")
    assert "Headless" not in fp.user_agent
    assert (fp.platform, fp.ua_platform) == ("Linux x86_64", "Linux")
    assert fp.accept_language == "de-DE" and fp.context_locale == "de-DE" and fp.languages == ("de-DE",)
    assert fp.viewport_width >= 1024 and fp.viewport_height >= 600
    assert fp.device_scale_factor == 1.0
    kept = build_fingerprint(
        user_agent=HEADLESS_UA, locale="en", target_major=None, timezone_id="UTC", screen=(1920, 1080, 1040)
    )
    assert chrome_major(kept.user_agent) == 156 and kept.languages == ("en",)
    us = build_fingerprint(
        user_agent=HEADLESS_UA, locale="en-US", target_major=156, timezone_id="UTC", screen=(1920, 1080, 1040)
    )
    assert us.languages == ("en-US", "en") and us.accept_language == "en-US,en;q=0.9"


SOFTWARE_GPUS = [
    (
        "Google Inc. (Google)",
        "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
    ),
    (
        "Google Inc. (Microsoft)",
        "ANGLE (Microsoft, Microsoft Basic Render Driver (0x0000008C) Direct3D11 vs_5_0 ps_5_0, D3D11)",
    ),
    ("Google Inc. (Mesa)", "ANGLE (Mesa, llvmpipe (LLVM 15.0.7, 256 bits), OpenGL 4.5)"),
    ("Mesa", "softpipe"),
    ("Mesa", "Mesa OffScreen"),
    ("Google Inc. (VMware, Inc.)", "ANGLE (VMware, Inc., SVGA3D; build: RELEASE; LLVM;, OpenGL 4.1)"),
]
HARDWARE_GPUS = [
    (
        "Google Inc. (NVIDIA)",
        "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 (0x00002503) Direct3D11 vs_5_0 ps_5_0, D3D11)",
    ),
    (
        "Google Inc. (Intel)",
        "ANGLE (Intel, Intel(R) UHD Graphics 620 (0x00003EA0) Direct3D11 vs_5_0 ps_5_0, D3D11)",
    ),
    ("Google Inc. (Apple)", "ANGLE (Apple, ANGLE Metal Renderer: Apple M2, Unspecified Version)"),
    ("Google Inc. (AMD)", "ANGLE (AMD, AMD Radeon RX 6600 (radeonsi, navi23, LLVM 15.0.7), OpenGL 4.6)"),
]


@pytest.mark.parametrize(("vendor", "renderer"), SOFTWARE_GPUS)
def test_software_renderers_are_recognised(vendor: str, renderer: str) -> None:
    assert is_software_renderer(vendor, renderer)


@pytest.mark.parametrize(("vendor", "renderer"), HARDWARE_GPUS)
def test_hardware_renderers_are_not_rejected(vendor: str, renderer: str) -> None:
    assert not is_software_renderer(vendor, renderer)


def test_no_fingerprint_claims_a_software_renderer_over_many_draws() -> None:
    # browserforge samples with the global `random`: seed it for a reproducible run, then restore it.
    # On the code before the fix about one draw in 30 was software (e.g. 20 of 600): never 0 here.
    draws = int(os.environ.get("FINGERPRINT_DRAWS", "600"))
    saved = random.getstate()
    random.seed(20261206)
    try:
        factory = FingerprintFactory(chrome_major=156, rng=random.Random(11))
        drawn = [factory.generate() for _ in range(draws)]
    finally:
        random.setstate(saved)
    offenders = [(fp.webgl_vendor, fp.webgl_renderer) for fp in drawn if is_software_renderer(
        fp.webgl_vendor, fp.webgl_renderer)]
    assert offenders == []
    # The data's variety is kept (redraws, not one fixed GPU for everyone).
    assert len({fp.webgl_renderer for fp in drawn}) > 20


class _SoftwareOnlyGenerator:
    """A browserforge stand-in whose every draw is a SwiftShader Linux machine."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, **_kwargs: Any) -> Any:
        self.calls += 1
        return SimpleNamespace(
            navigator=SimpleNamespace(
                userAgent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/150.0.0.0 Safari/537.36"
            ),
            screen=SimpleNamespace(width=1920, height=1080, availHeight=1050, devicePixelRatio=1),
            videoCard=SimpleNamespace(vendor=SOFTWARE_GPUS[0][0], renderer=SOFTWARE_GPUS[0][1]),
        )


def test_a_generator_that_only_yields_software_gpus_falls_back_to_hardware_after_bounded_draws() -> None:
    factory = FingerprintFactory(chrome_major=156, operating_systems=("linux",), rng=random.Random(1))
    generator = _SoftwareOnlyGenerator()
    factory._generator = generator
    fingerprint = factory.generate()
    assert generator.calls <= 8
    assert fingerprint.webgl_renderer is not None
    assert not is_software_renderer(fingerprint.webgl_vendor, fingerprint.webgl_renderer)
    assert "Mesa Intel" in fingerprint.webgl_renderer  # a Linux GPU for a Linux user agent


def test_build_fingerprint_never_keeps_a_software_gpu() -> None:
    for vendor, renderer in SOFTWARE_GPUS:
        fp = build_fingerprint(
            user_agent=HEADLESS_UA.replace("X11; Linux x86_64", "Macintosh; Intel Mac OS X 10_15_7"),
            locale="en-US",
            target_major=156,
            timezone_id="America/New_York",
            screen=(1440, 900, 875),
            webgl=(vendor, renderer),
        )
        assert not is_software_renderer(fp.webgl_vendor, fp.webgl_renderer)
        assert fp.webgl_vendor == "Google Inc. (Apple)"  # matches the macOS user agent
    kept = build_fingerprint(
        user_agent=HEADLESS_UA, locale="en-US", target_major=156, timezone_id="UTC",
        screen=(1920, 1080, 1050), webgl=HARDWARE_GPUS[3],
    )  # fmt: skip
    assert (kept.webgl_vendor, kept.webgl_renderer) == HARDWARE_GPUS[3]


def test_helpers() -> None:
    assert chromium_major_of("156.0.8078.108") == 156
    assert chromium_major_of("") is None and chromium_major_of(None) is None
    assert chrome_accept_language(["en-US", "en", "de"]) == "en-US,en;q=0.9,de;q=0.8"
    assert chrome_major("Mozilla/5.0 Firefox/120.0") is None
    with pytest.raises(ValueError):
        FingerprintFactory(locales=())


# ------------------------------------------------------------------------ in a real browser ---
class _EchoSite(LoopbackAppServer):
    """Records the headers of every request and serves a page that fetches once more."""

    thread_name = "test-fingerprint-echo"

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        super().__init__()

    def _build_app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            self.seen.append(dict(request.headers))
            html = "<html><body>hi<script>fetch('/xhr')</script></body></html>"
            return web.Response(text=html, content_type="text/html")

        async def xhr(request: web.Request) -> web.Response:
            self.seen.append(dict(request.headers))
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/", page)
        app.router.add_get("/xhr", xhr)
        return app


_PROBE = """() => ({
  ua: navigator.userAgent, webdriver: navigator.webdriver, platform: navigator.platform,
  languages: navigator.languages, uaPlatform: navigator.userAgentData && navigator.userAgentData.platform,
  brands: navigator.userAgentData && navigator.userAgentData.brands.map(b => b.brand),
  tz: Intl.DateTimeFormat().resolvedOptions().timeZone, width: window.innerWidth
})"""


def test_sessions_present_their_fingerprint_consistently_in_chromium() -> None:
    from playwright.async_api import async_playwright

    async def probe(url: str) -> list[tuple[SessionFingerprint, dict]]:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=resolve_browser_executable(), headless=True, args=list(CHROMIUM_ARGS)
            )
            factory = FingerprintFactory(
                chrome_major=chromium_major_of(browser.version),
                locales=("en-US", "en-GB"),
                rng=random.Random(3),
            )
            manager = SessionManager(browser, ProxyPool([]), factory)
            results = []
            try:
                for _ in range(4):
                    session = await manager.open()
                    page = await session.context.new_page()
                    await page.goto(url)
                    await page.wait_for_load_state("networkidle")
                    results.append((session.fingerprint, await page.evaluate(_PROBE)))
                    await manager.close(session)
            finally:
                await browser.close()
            return results

    with _EchoSite() as site:
        results = asyncio.run(probe(site.url("/")))
        headers = site.seen
    assert len(headers) == 8  # page + fetch for each of the four sessions
    assert {fp.locale for fp, _ in results} == {"en-US", "en-GB"}
    for index, (fp, seen) in enumerate(results):
        assert seen["webdriver"] is False
        assert seen["ua"] == fp.user_agent and "HeadlessChrome" not in seen["ua"]
        assert seen["platform"] == fp.platform and seen["uaPlatform"] == fp.ua_platform
        assert seen["languages"] == list(fp.languages)
        assert seen["tz"] == fp.timezone_id and seen["width"] == fp.viewport_width
        assert all("Headless" not in brand for brand in seen["brands"])
        for sent in headers[2 * index : 2 * index + 2]:
            assert sent["User-Agent"] == fp.user_agent
            assert sent["Accept-Language"] == fp.accept_language
            assert sent["Sec-CH-UA-Platform"] == f'"{fp.ua_platform}"'
            assert f'v="{fp.chrome_major}"' in sent["Sec-CH-UA"] and "Headless" not in sent["Sec-CH-UA"]


def test_sessions_open_together_on_one_proxy_take_different_user_agents() -> None:
    """Same IP + same user agent is one client to the site: it would share one request budget."""
    from playwright.async_api import async_playwright

    async def open_sessions() -> tuple[list[str], str]:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=resolve_browser_executable(), headless=True, args=list(CHROMIUM_ARGS)
            )
            # One proxy (never dialled: no page is loaded) and a seeded factory that would repeat itself.
            pool = ProxyPool(parse_proxy_list("http://127.0.0.1:9"))
            factory = FingerprintFactory(chrome_major=156, rng=random.Random(0))
            manager = SessionManager(browser, pool, factory)
            try:
                # Opened concurrently, as the scraper's workers and warm spares are.
                sessions = list(await asyncio.gather(*(manager.open() for _ in range(3))))
                agents = [session.fingerprint.user_agent for session in sessions]
                for session in sessions:
                    await manager.close(session)
                # Everything is closed and nothing was burnt: all identities are free again.
                reopened = await manager.open()
                await manager.close(reopened)
                return agents, reopened.fingerprint.user_agent
            finally:
                await browser.close()

    agents, reopened = asyncio.run(open_sessions())
    assert len(set(agents)) == 3  # windows, macos, linux: three live sessions, three identities
    assert reopened in agents
