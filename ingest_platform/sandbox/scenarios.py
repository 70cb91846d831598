"""Named sandbox presets: how hostile the site is, how many proxies, which of them are broken.

``get_scenario("adversarial")`` returns a fresh ``ScenarioPreset`` (a new, mutable
``SiteScenario`` each call, so tests can tweak one without touching another).
``SandboxStack(scenario="adversarial")`` and ``ingest-platform sandbox --scenario adversarial``
start one.

Presets: ``calm``; one per anti-bot behaviour (``rate_limited``, ``ban_403``, ``ban_10204``,
``captcha_recaptcha``, ``captcha_hcaptcha``, ``captcha_image``, ``captcha_slider``, ``waf``,
``login_redirect``, ``empty_lists``, ``headless_detection``, ``webdriver_detection``);
``adversarial`` (the scraping benchmark: 10 proxies of which 3 are dead, a ban after 20
requests per client, a captcha on 10 % of page loads with a fifth of them sliders, random 429
bursts); ``heavy_blocking`` (most requests blocked: for monitoring and alerting tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ingest_platform.sandbox.anticaptcha_api import AntiCaptchaConfig
from ingest_platform.sandbox.tiktok_site import SiteScenario

__all__ = ["SCENARIO_NAMES", "ScenarioPreset", "get_scenario"]


@dataclass
class ScenarioPreset:
    """Everything ``SandboxStack`` needs to stand one scenario up."""

    name: str
    description: str
    site: SiteScenario
    proxies: int = 0
    dead: frozenset[int] = frozenset()
    flaky: dict[int, float] = field(default_factory=dict)
    anticaptcha: AntiCaptchaConfig | None = None


def _service(seed: int) -> AntiCaptchaConfig:
    # No solve delay: python-anticaptcha's join() polls first, so a ready task costs no sleep.
    return AntiCaptchaConfig(seed=seed)


def _calm(seed: int) -> ScenarioPreset:
    return ScenarioPreset(
        "calm",
        "A well-behaved site, 3 healthy proxies.",
        SiteScenario(seed=seed),
        3,
        anticaptcha=_service(seed),
    )


def _rate_limited(seed: int) -> ScenarioPreset:
    site = SiteScenario(seed=seed, rate_limit_per_minute=30)
    return ScenarioPreset("rate_limited", "429 + Retry-After beyond 30 requests/min/client.", site, 3)


def _ban(mode: str) -> Callable[[int], ScenarioPreset]:
    def build(seed: int) -> ScenarioPreset:
        site = SiteScenario(seed=seed, ban_after_requests=20, ban_mode=mode)  # type: ignore[arg-type]
        name = "ban_403" if mode == "http_403" else "ban_10204"
        return ScenarioPreset(name, f"Clients banned for good after 20 requests ({mode}).", site, 5)

    return build


def _captcha(kind: str) -> Callable[[int], ScenarioPreset]:
    def build(seed: int) -> ScenarioPreset:
        site = SiteScenario(seed=seed, captcha_rate=0.3, captcha_kind=kind)  # type: ignore[arg-type]
        description = f"A {kind} captcha on 30 % of page loads; the Anti-Captcha stand-in solves it."
        return ScenarioPreset(f"captcha_{kind}", description, site, 3, anticaptcha=_service(seed))

    return build


def _captcha_slider(seed: int) -> ScenarioPreset:
    site = SiteScenario(seed=seed, captcha_rate=0.3, captcha_slider_fraction=1.0)
    description = "TikTok's slider on 30 % of page loads: unsolvable, rotate identity."
    return ScenarioPreset("captcha_slider", description, site, 5, anticaptcha=_service(seed))


def _waf(seed: int) -> ScenarioPreset:
    site = SiteScenario(seed=seed, waf_rate=1.0)
    description = "Every client must pass the SHA-256 proof-of-work page once (a JS browser does)."
    return ScenarioPreset("waf", description, site, 3)


def _login_redirect(seed: int) -> ScenarioPreset:
    site = SiteScenario(seed=seed, login_redirect_rate=0.2)
    return ScenarioPreset("login_redirect", "20 % of page loads redirect to /login.", site, 3)


def _empty_lists(seed: int) -> ScenarioPreset:
    site = SiteScenario(seed=seed, empty_list_rate=0.3)
    return ScenarioPreset("empty_lists", "30 % of item-list calls answer an empty 200.", site, 3)


def _headless(seed: int) -> ScenarioPreset:
    site = SiteScenario(seed=seed, detect_headless_ua=True)
    return ScenarioPreset("headless_detection", "'HeadlessChrome' user agents get 403.", site, 3)


def _webdriver(seed: int) -> ScenarioPreset:
    site = SiteScenario(seed=seed, detect_webdriver=True, ban_mode="status_10204")
    description = "Pages report navigator.webdriver; a true value bans the client (10204)."
    return ScenarioPreset("webdriver_detection", description, site, 3)


def _adversarial(seed: int) -> ScenarioPreset:
    site = SiteScenario(
        seed=seed,
        ban_after_requests=20,
        ban_mode="status_10204",
        captcha_rate=0.1,
        captcha_slider_fraction=0.2,
        captcha_kind="recaptcha",
        burst_429_rate=0.05,
    )
    description = (
        "The benchmark: 10 proxies (3 dead), ban after 20 requests per client, captcha on 10 % of "
        "page loads (a fifth of them sliders), random 429 bursts."
    )
    return ScenarioPreset(
        "adversarial", description, site, 10, dead=frozenset({1, 4, 7}), anticaptcha=_service(seed)
    )


def _heavy_blocking(seed: int) -> ScenarioPreset:
    site = SiteScenario(
        seed=seed,
        ban_after_requests=3,
        ban_mode="http_403",
        captcha_rate=0.5,
        captcha_slider_fraction=0.5,
        burst_429_rate=0.3,
        login_redirect_rate=0.2,
        empty_list_rate=0.6,
    )
    description = "Most requests blocked: bans after 3 requests, captchas, 429s, empty lists, dead proxies."
    return ScenarioPreset(
        "heavy_blocking",
        description,
        site,
        4,
        dead=frozenset({1, 3}),
        flaky={2: 0.3},
        anticaptcha=AntiCaptchaConfig(seed=seed, unsolvable_rate=0.5),
    )


_BUILDERS: dict[str, Callable[[int], ScenarioPreset]] = {
    "calm": _calm,
    "rate_limited": _rate_limited,
    "ban_403": _ban("http_403"),
    "ban_10204": _ban("status_10204"),
    "captcha_recaptcha": _captcha("recaptcha"),
    "captcha_hcaptcha": _captcha("hcaptcha"),
    "captcha_image": _captcha("image"),
    "captcha_slider": _captcha_slider,
    "waf": _waf,
    "login_redirect": _login_redirect,
    "empty_lists": _empty_lists,
    "headless_detection": _headless,
    "webdriver_detection": _webdriver,
    "adversarial": _adversarial,
    "heavy_blocking": _heavy_blocking,
}

SCENARIO_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def get_scenario(name: str, *, seed: int = 0) -> ScenarioPreset:
    """A fresh preset by name; ``seed`` drives every random decision of the site and services."""
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown sandbox scenario {name!r}; choose one of: {', '.join(SCENARIO_NAMES)}")
    return builder(seed)
