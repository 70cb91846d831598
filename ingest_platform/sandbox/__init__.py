"""Offline stand-ins for the outside world, so the platform runs and is tested without internet.

Today: a TikTok-like web site (``tiktok_site``) serving deterministic content with a personal-data
ground truth (``content``), runnable on loopback (``server``). Later: order files, proxies,
Anti-Captcha and Apify stand-ins.

Names are imported lazily: ``from ingest_platform.sandbox import SandboxServer`` loads aiohttp only
when asked, so importing this package from the Dagster code location stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest_platform.sandbox.content import (
        REFERENCE_TIME,
        SandboxContent,
        SandboxHashtag,
        SandboxPost,
        SandboxProfile,
    )
    from ingest_platform.sandbox.server import SandboxServer, serve_forever
    from ingest_platform.sandbox.tiktok_site import SiteScenario, build_app

_EXPORTS: dict[str, str] = {
    "REFERENCE_TIME": "ingest_platform.sandbox.content",
    "SandboxContent": "ingest_platform.sandbox.content",
    "SandboxHashtag": "ingest_platform.sandbox.content",
    "SandboxPost": "ingest_platform.sandbox.content",
    "SandboxProfile": "ingest_platform.sandbox.content",
    "SiteScenario": "ingest_platform.sandbox.tiktok_site",
    "build_app": "ingest_platform.sandbox.tiktok_site",
    "SandboxServer": "ingest_platform.sandbox.server",
    "serve_forever": "ingest_platform.sandbox.server",
}

__all__ = [
    "REFERENCE_TIME",
    "SandboxContent",
    "SandboxHashtag",
    "SandboxPost",
    "SandboxProfile",
    "SandboxServer",
    "SiteScenario",
    "build_app",
    "serve_forever",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
