"""The whole offline outside world in one object: hostile site + proxy fleet + Anti-Captcha.

::

    with SandboxStack(scenario="adversarial") as stack:
        os.environ.update(stack.env())   # TIKTOK_BASE_URL, TIKTOK_TARGETS, PROXY_LIST, ANTICAPTCHA_*
        ... run the scraper ...
        print(stack.stats())             # what the site, each proxy and the solver saw

The site and the Anti-Captcha stand-in share one ``CaptchaRegistry``: tokens the service
issues are exactly the ones the site accepts, as with Google behind a real solving service.
Each service runs its own event loop in a daemon thread, so a slow tunnel never stalls the site.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from ingest_platform.sandbox.anticaptcha_api import AntiCaptchaConfig, AntiCaptchaServer
from ingest_platform.sandbox.captcha_registry import CaptchaRegistry
from ingest_platform.sandbox.content import SandboxContent
from ingest_platform.sandbox.proxies import ProxyFleet
from ingest_platform.sandbox.scenarios import ScenarioPreset, get_scenario
from ingest_platform.sandbox.server import SandboxServer, default_targets
from ingest_platform.sandbox.tiktok_site import SiteScenario

__all__ = ["SandboxStack"]


class SandboxStack:
    """Site (+ ``proxies`` forward proxies) (+ an Anti-Captcha stand-in when ``anticaptcha`` is set).

    ``scenario`` is a ``SiteScenario`` or a preset name from ``scenarios``; a preset also brings
    its proxy count, dead/flaky proxies and Anti-Captcha config, each overridable here
    (``proxies=None``/``dead=None``/``flaky=None``/``anticaptcha=None`` mean "the preset's", or
    none without a preset).
    """

    def __init__(
        self,
        content: SandboxContent | None = None,
        scenario: SiteScenario | str | None = None,
        proxies: int | None = None,
        *,
        dead: Iterable[int] | None = None,
        flaky: Mapping[int, float] | None = None,
        anticaptcha: AntiCaptchaConfig | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        proxy_username: str = "user",
        proxy_password: str = "pass",
        access_log: bool = False,
    ) -> None:
        preset: ScenarioPreset | None = None
        if isinstance(scenario, str):
            preset = get_scenario(scenario, seed=seed)
            site_scenario = preset.site
        else:
            site_scenario = scenario if scenario is not None else SiteScenario(seed=seed)
        self.preset = preset
        self.scenario = site_scenario
        self.content = content if content is not None else SandboxContent.generate()
        self.registry = CaptchaRegistry(seed=site_scenario.seed)
        self.site = SandboxServer(
            self.content, site_scenario, host=host, port=port, access_log=access_log, registry=self.registry
        )
        count = proxies if proxies is not None else (preset.proxies if preset else 0)
        dead_set = set(dead) if dead is not None else set(preset.dead if preset else ())
        flaky_map = dict(flaky) if flaky is not None else dict(preset.flaky if preset else {})
        self.fleet: ProxyFleet | None = (
            ProxyFleet(
                count,
                username=proxy_username,
                password=proxy_password,
                dead=dead_set,
                flaky=flaky_map,
                seed=site_scenario.seed,
                host=host,
            )
            if count
            else None
        )
        config = anticaptcha if anticaptcha is not None else (preset.anticaptcha if preset else None)
        self.anticaptcha: AntiCaptchaServer | None = (
            AntiCaptchaServer(config, self.registry, host=host) if config is not None else None
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def _services(self) -> list[Any]:
        return [s for s in (self.site, self.fleet, self.anticaptcha) if s is not None]

    def start(self) -> Self:
        try:
            for service in self._services():
                service.start()
        except BaseException:
            self.stop()  # never leave half a stack running
            raise
        return self

    def stop(self) -> None:
        for service in reversed(self._services()):
            service.stop()

    @property
    def running(self) -> bool:
        return all(service.running for service in self._services())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- where things are --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.site.base_url

    def url(self, path: str) -> str:
        return self.site.url(path)

    @property
    def proxy_urls(self) -> list[str]:
        return self.fleet.urls if self.fleet is not None else []

    @property
    def proxy_list(self) -> str:
        """Comma-joined proxy URLs (``PROXY_LIST``); empty without proxies."""
        return self.fleet.proxy_list if self.fleet is not None else ""

    @property
    def anticaptcha_host(self) -> str | None:
        """``127.0.0.1:PORT`` for ``AnticaptchaClient(host=…, use_ssl=False)``; None without one."""
        return self.anticaptcha.host_port if self.anticaptcha is not None else None

    @property
    def anticaptcha_url(self) -> str | None:
        """``http://127.0.0.1:PORT``: the host with its scheme (what ``ANTICAPTCHA_HOST`` is set to)."""
        return self.anticaptcha.base_url if self.anticaptcha is not None else None

    @property
    def anticaptcha_key(self) -> str | None:
        return self.anticaptcha.client_key if self.anticaptcha is not None else None

    def env(self) -> dict[str, str]:
        """Environment that points the platform at this stack.

        ``ANTICAPTCHA_HOST`` carries the ``http://`` scheme: the service speaks plain HTTP, and a
        bare ``host:port`` would leave clients defaulting to TLS. ``PROXY_LIST`` is always set
        (empty = no proxies) so a previous stack's value never leaks into this one.
        """
        values = {
            "TIKTOK_BASE_URL": self.base_url,
            "TIKTOK_TARGETS": ",".join(default_targets(self.content)),
            "PROXY_LIST": self.proxy_list,
        }
        if self.anticaptcha is not None:
            values["ANTICAPTCHA_HOST"] = self.anticaptcha.base_url
            values["ANTICAPTCHA_API_KEY"] = self.anticaptcha.client_key
        return values

    def stats(self) -> dict[str, Any]:
        """``{"site": …, "proxies": …, "anticaptcha": …, "captcha_registry": …}`` (None when absent)."""
        return {
            "scenario": self.preset.name if self.preset else None,
            "site": self.site.stats(),
            "proxies": self.fleet.stats() if self.fleet is not None else None,
            "anticaptcha": self.anticaptcha.stats() if self.anticaptcha is not None else None,
            "captcha_registry": self.registry.stats(),
        }
