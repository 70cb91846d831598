"""Per-session browser fingerprints: one consistent desktop Chrome identity per sticky session.

A session's identity has to agree with itself everywhere a site can look:

- the ``User-Agent`` header and ``navigator.userAgent`` (never ``HeadlessChrome``), with the Chrome
  major version of the Chromium actually running, because the client hints (``Sec-CH-UA``,
  ``navigator.userAgentData``) are produced by that browser and carry its real major;
- ``Sec-CH-UA-Platform`` / ``navigator.userAgentData.platform`` and ``navigator.platform`` with the
  operating system the user agent names;
- ``Accept-Language``, ``navigator.language(s)``, ``Intl``'s locale and a time zone where that
  locale is spoken. The browser is launched pinned to ``en-US`` (``BROWSER_LOCALE_ARGS``): for
  ``en-US`` sessions Chromium itself sends ``Accept-Language: en-US,en;q=0.9`` and reports
  ``navigator.languages = ["en-US", "en"]``, exactly like a real US Chrome. Other locales go
  through Playwright's per-context ``locale``, which is consistent everywhere but sends a bare
  ``Accept-Language: en-GB`` (Playwright overrides the header; a q-list cannot be set per
  context), so ``en-US`` is the default and the most natural identity;
- screen, viewport and device pixel ratio of a real desktop.

`browserforge <https://github.com/daijro/browserforge>`_ draws the user agent, OS, screen, GPU
and core count from real-world data (offline: its model ships in ``apify_fingerprint_datapoints``).
Only the parts above are applied. browserforge's own header set is *not* injected: its
``Sec-Fetch-*`` values are scrambled in 1.2.x, and a hard-coded ``Sec-CH-UA`` naming "Google
Chrome" would contradict ``navigator.userAgentData`` of the Chromium we drive. Playwright derives
the client hints from the user agent we set (platform included), so header and JavaScript agree.

The WebGL vendor/renderer never names a software or virtual-machine GPU: browserforge's real-world
data includes SwiftShader, llvmpipe and "Microsoft Basic Render Driver" machines (about one draw in
30), and a renderer like ``ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)…)`` is the
classic headless tell. Such a draw is redrawn (``_MAX_GPU_DRAWS`` attempts, same OS); if every
attempt is software, a common hardware GPU of the user agent's OS is used instead. The rule is
:func:`is_software_renderer`; :func:`build_fingerprint` applies the same fallback, so no path can
produce a fingerprint that claims one.

Automation tells are hidden by ``--disable-blink-features=AutomationControlled`` (keeps
``navigator.webdriver`` false, see ``browser.CHROMIUM_ARGS``) and playwright-stealth 2.x
(``Stealth(...).apply_stealth_async(context)``), configured from the same fingerprint so its
overrides (platform, languages, WebGL vendor) match the rest.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BROWSER_LOCALE",
    "BROWSER_LOCALE_ARGS",
    "FingerprintFactory",
    "SessionFingerprint",
    "build_fingerprint",
    "chrome_accept_language",
    "chrome_major",
    "chromium_major_of",
    "is_software_renderer",
]

# The locale the browser itself runs in: sessions in it need no per-context override.
BROWSER_LOCALE = "en-US"
BROWSER_LOCALE_ARGS: tuple[str, ...] = ("--lang=en-US", "--accept-lang=en-US,en")

_CHROME_RE = re.compile(r"(?:Headless)?Chrome/(\d+)(?:\.[\d.]+)?")
# Which OS a user agent names -> (navigator.platform, Sec-CH-UA-Platform value).
_OS_SIGNATURES: tuple[tuple[str, str, str], ...] = (
    ("Windows NT", "Win32", "Windows"),
    ("Macintosh", "MacIntel", "macOS"),
    ("CrOS", "Linux x86_64", "Chrome OS"),
    ("Linux", "Linux x86_64", "Linux"),
)
# Time zones where each locale's region is plausible (a proxy's country should agree too: pass
# explicit ``timezones`` when the proxies are geo-targeted).
_TIMEZONES_BY_REGION: dict[str, tuple[str, ...]] = {
    "US": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
    "GB": ("Europe/London",),
    "CA": ("America/Toronto", "America/Vancouver"),
    "AU": ("Australia/Sydney", "Australia/Melbourne"),
    "DE": ("Europe/Berlin",),
    "FR": ("Europe/Paris",),
    "ES": ("Europe/Madrid",),
    "IT": ("Europe/Rome",),
    "NL": ("Europe/Amsterdam",),
    "BR": ("America/Sao_Paulo",),
    "MX": ("America/Mexico_City",),
    "IN": ("Asia/Kolkata",),
    "JP": ("Asia/Tokyo",),
}
_DEFAULT_TIMEZONES = ("UTC",)
# Browser chrome (tabs, address bar) between the screen's available height and the viewport.
_BROWSER_CHROME_PX = (80, 140)
_MIN_VIEWPORT = (1024, 600)
_MAX_VIEWPORT = (1920, 1200)
_DEVICE_SCALE_FACTORS = (1.0, 1.25, 1.5, 2.0)

# WebGL vendor/renderer words that name a software rasteriser or a virtual machine's GPU.
_SOFTWARE_GPU_RE = re.compile(
    r"swiftshader|subzero|0x0000c0de|llvmpipe|lavapipe|softpipe|software|mesa offscreen|"
    r"basic render|microsoft basic display|gdi generic|vmware|svga3d|virtualbox|virgl|parallels|"
    r"hyper-v|qxl|bochs|red hat|cirrus",
    re.IGNORECASE,
)
# Redraws before falling back to a known hardware GPU (at ~1 software draw in 30, eight in a row
# happen about once in 10^12 sessions).
_MAX_GPU_DRAWS = 8
# A common real GPU per OS (ua_platform): what a fingerprint reports when every draw was software.
_HARDWARE_GPU_BY_PLATFORM: dict[str, tuple[str, str]] = {
    "Windows": (
        "Google Inc. (Intel)",
        "ANGLE (Intel, Intel(R) UHD Graphics 620 (0x00003EA0) Direct3D11 vs_5_0 ps_5_0, D3D11)",
    ),
    "macOS": ("Google Inc. (Apple)", "ANGLE (Apple, ANGLE Metal Renderer: Apple M1, Unspecified Version)"),
    "Linux": ("Google Inc. (Intel)", "ANGLE (Intel, Mesa Intel(R) UHD Graphics 620 (KBL GT2), OpenGL 4.6)"),
    "Chrome OS": (
        "Google Inc. (Intel)",
        "ANGLE (Intel, Mesa Intel(R) UHD Graphics 620 (KBL GT2), OpenGL ES 3.2)",
    ),
}


def is_software_renderer(vendor: str | None, renderer: str | None) -> bool:
    """True when a WebGL vendor/renderer names a software rasteriser (SwiftShader, llvmpipe,
    softpipe, "Microsoft Basic Render Driver", Mesa OffScreen…) or a virtual machine's GPU."""
    return bool(_SOFTWARE_GPU_RE.search(f"{vendor or ''} {renderer or ''}"))


def chrome_major(user_agent: str) -> int | None:
    """The Chrome major version a user agent names (``Chrome/147.0.0.0`` -> 147)."""
    match = _CHROME_RE.search(user_agent)
    return int(match.group(1)) if match else None


def chromium_major_of(browser_version: str | None) -> int | None:
    """Major of Playwright's ``browser.version`` (``"156.0.8078.108"`` -> 156)."""
    head = (browser_version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def chrome_accept_language(languages: Sequence[str]) -> str:
    """``Accept-Language`` as Chrome writes it: ``en-US,en;q=0.9,de;q=0.8``."""
    parts: list[str] = []
    for index, language in enumerate(languages):
        q = round(1.0 - 0.1 * index, 1)
        parts.append(language if index == 0 else f"{language};q={max(q, 0.1)}")
    return ",".join(parts)


class SessionFingerprint(BaseModel):
    """The identity one session keeps for its whole life. Safe to log: no secrets in it."""

    model_config = ConfigDict(frozen=True)

    user_agent: str
    chrome_major: int
    platform: str = Field(description="navigator.platform, e.g. Win32, MacIntel, 'Linux x86_64'")
    ua_platform: str = Field(description="Sec-CH-UA-Platform / userAgentData.platform, e.g. Windows")
    locale: str
    languages: tuple[str, ...]
    accept_language: str = Field(description="the Accept-Language header the browser will send")
    context_locale: str | None = Field(
        default=None, description="Playwright's per-context locale; None = the browser's own (en-US)"
    )
    timezone_id: str
    viewport_width: int
    viewport_height: int
    screen_width: int
    screen_height: int
    device_scale_factor: float
    webgl_vendor: str | None = None
    webgl_renderer: str | None = None

    def context_options(self) -> dict[str, Any]:
        """Keyword arguments for ``browser.new_context`` (add ``proxy=`` yourself)."""
        options: dict[str, Any] = {
            "user_agent": self.user_agent,
            "timezone_id": self.timezone_id,
            "viewport": {"width": self.viewport_width, "height": self.viewport_height},
            "screen": {"width": self.screen_width, "height": self.screen_height},
            "device_scale_factor": self.device_scale_factor,
            "is_mobile": False,
            "has_touch": False,
        }
        if self.context_locale is not None:
            options["locale"] = self.context_locale
        return options

    def stealth(self) -> Any:
        """A playwright-stealth 2.x ``Stealth`` whose overrides agree with this fingerprint."""
        from playwright_stealth import Stealth

        languages = (self.languages[0], self.languages[1]) if len(self.languages) > 1 else None
        return Stealth(
            navigator_user_agent_override=self.user_agent,
            navigator_platform_override=self.platform,
            # Its override takes exactly two languages; a single-language locale is already
            # consistent through Playwright's locale, so the evasion stays off then.
            navigator_languages=languages is not None,
            navigator_languages_override=languages,
            webgl_vendor_override=self.webgl_vendor,
            webgl_renderer_override=self.webgl_renderer,
            # The header form of the client hints comes from Chromium itself (see module doc).
            sec_ch_ua=False,
        )

    def describe(self) -> str:
        """A short human label for logs: ``Chrome 156 / Windows / en-US / America/Chicago``."""
        return f"Chrome {self.chrome_major} / {self.ua_platform} / {self.locale} / {self.timezone_id}"


class FingerprintFactory:
    """Draws :class:`SessionFingerprint` values: desktop Chrome on Windows, macOS or Linux.

    ``chrome_major`` is the major of the Chromium being driven (``browser.version``); generated user
    agents are rewritten to it so they match the client hints Chromium sends. ``None`` keeps
    browserforge's version.
    """

    def __init__(
        self,
        *,
        chrome_major: int | None = None,
        operating_systems: Sequence[str] = ("windows", "macos", "linux"),
        locales: Sequence[str] = ("en-US",),
        timezones: Sequence[str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not locales:
            raise ValueError("locales must not be empty")
        self.chrome_major = chrome_major
        self.operating_systems = tuple(operating_systems)
        self.locales = tuple(locales)
        self.timezones = tuple(timezones) if timezones else None
        self._rng = rng or random.Random()
        self._generator: Any = None

    def _browserforge(self) -> Any:
        if self._generator is None:
            from browserforge.fingerprints import FingerprintGenerator

            self._generator = FingerprintGenerator(
                browser=("chrome",), os=self.operating_systems, device="desktop", locale=self.locales
            )
        return self._generator

    def generate(self, *, avoid_user_agents: Collection[str] = ()) -> SessionFingerprint:
        """A fresh fingerprint; ``avoid_user_agents`` are identities already burnt on the proxy
        this session will use (Chrome's reduced UA leaves only a few per OS, so a site that bans
        IP + user agent bans all Windows Chrome users behind that IP at once).

        The operating system is drawn uniformly first, which spreads sessions over the distinct
        user agents; then browserforge draws the rest for that OS. When every OS is burnt the
        least bad choice (a fresh draw) is returned: the proxy pool keeps such proxies quarantined.
        """
        systems = list(self.operating_systems)
        self._rng.shuffle(systems)
        fingerprint: SessionFingerprint | None = None
        for system in systems:
            fingerprint = self._draw(system)
            if fingerprint.user_agent not in avoid_user_agents:
                return fingerprint
        return fingerprint if fingerprint is not None else self._draw(None)

    def _draw(self, system: str | None) -> SessionFingerprint:
        for _attempt in range(_MAX_GPU_DRAWS):
            raw = self._browserforge().generate(os=system) if system else self._browserforge().generate()
            card = raw.videoCard
            if card is None or not is_software_renderer(card.vendor, card.renderer):
                break
        # After _MAX_GPU_DRAWS software draws, build_fingerprint substitutes a hardware GPU.
        locale = self._rng.choice(self.locales)
        return build_fingerprint(
            user_agent=raw.navigator.userAgent,
            locale=locale,
            target_major=self.chrome_major,
            timezone_id=self._rng.choice(self.timezones or _timezones_for(locale)),
            screen=(int(raw.screen.width), int(raw.screen.height), int(raw.screen.availHeight)),
            device_scale_factor=float(raw.screen.devicePixelRatio or 1.0),
            webgl=(raw.videoCard.vendor, raw.videoCard.renderer) if raw.videoCard else None,
            rng=self._rng,
        )


def build_fingerprint(
    *,
    user_agent: str,
    locale: str,
    target_major: int | None,
    timezone_id: str,
    screen: tuple[int, int, int],
    device_scale_factor: float = 1.0,
    webgl: tuple[str, str] | None = None,
    rng: random.Random | None = None,
) -> SessionFingerprint:
    """Normalise raw fingerprint parts into a consistent :class:`SessionFingerprint`."""
    rng = rng or random.Random()
    ua = _normalise_user_agent(user_agent, target_major)
    major = chrome_major(ua) or 0
    platform, ua_platform = _platform_of(ua)
    if webgl is not None and is_software_renderer(*webgl):
        webgl = _HARDWARE_GPU_BY_PLATFORM.get(ua_platform, _HARDWARE_GPU_BY_PLATFORM["Windows"])
    if locale == BROWSER_LOCALE:
        languages, accept_language, context_locale = ("en-US", "en"), "en-US,en;q=0.9", None
    else:
        languages, accept_language, context_locale = (locale,), locale, locale
    width, height, avail_height = screen
    width = min(max(width, _MIN_VIEWPORT[0]), _MAX_VIEWPORT[0])
    height = min(max(height, _MIN_VIEWPORT[1] + _BROWSER_CHROME_PX[1]), 1600)
    avail_height = min(max(avail_height or height, _MIN_VIEWPORT[1] + _BROWSER_CHROME_PX[1]), height)
    viewport_height = avail_height - rng.randint(*_BROWSER_CHROME_PX)
    viewport_height = min(max(viewport_height, _MIN_VIEWPORT[1]), _MAX_VIEWPORT[1])
    scale = min(_DEVICE_SCALE_FACTORS, key=lambda f: abs(f - device_scale_factor))
    return SessionFingerprint(
        user_agent=ua,
        chrome_major=major,
        platform=platform,
        ua_platform=ua_platform,
        locale=locale,
        languages=languages,
        accept_language=accept_language,
        context_locale=context_locale,
        timezone_id=timezone_id,
        viewport_width=width,
        viewport_height=viewport_height,
        screen_width=width,
        screen_height=height,
        device_scale_factor=scale,
        webgl_vendor=webgl[0] if webgl else None,
        webgl_renderer=webgl[1] if webgl else None,
    )


def _normalise_user_agent(user_agent: str, major: int | None) -> str:
    # "HeadlessChrome/…" alone gets a scraper blocked; a Chrome major other than the running
    # Chromium's would contradict the Sec-CH-UA header Chromium sends. Chrome's reduced UA
    # always reads "<major>.0.0.0".
    def repl(match: re.Match[str]) -> str:
        version = major if major is not None else int(match.group(1))
        return f"Chrome/{version}.0.0.0"

    normalised = _CHROME_RE.sub(repl, user_agent.strip())
    return normalised.replace("HeadlessChrome", "Chrome")


def _platform_of(user_agent: str) -> tuple[str, str]:
    for marker, platform, ua_platform in _OS_SIGNATURES:
        if marker in user_agent:
            return platform, ua_platform
    return "Win32", "Windows"


def _timezones_for(locale: str) -> tuple[str, ...]:
    region = locale.split("-")[-1].upper() if "-" in locale else ""
    return _TIMEZONES_BY_REGION.get(region, _DEFAULT_TIMEZONES)
