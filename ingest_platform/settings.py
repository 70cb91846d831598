"""Settings problems, found before anything starts.

``ConfigError`` is the one exception type for a setting that is missing or malformed: its text
is a single line that names the setting and the fix, so the CLI and the code location can show
it as is (no traceback). ``check_settings`` looks at the whole environment at once and reports
every problem in one message.

No Dagster imports here: the CLI calls this before it starts anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENVIRONMENTS = ("local", "prod")


class ConfigError(ValueError):
    """A setting is missing or malformed; ``str(error)`` is one line naming it and the fix."""


def check_settings(environ: Mapping[str, str] | None = None) -> None:
    """Raise ``ConfigError`` listing every problem in ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    name = env.get("INGEST_ENV") or "local"
    if name not in ENVIRONMENTS:
        problems.append(f"INGEST_ENV={name!r} is not one of {', '.join(ENVIRONMENTS)}")
    if problems:
        raise ConfigError("; ".join(problems))
