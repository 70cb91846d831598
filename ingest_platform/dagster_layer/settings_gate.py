"""Imported first by ``definitions.py``: the code location refuses to load on a settings problem.

Importing this module runs ``ingest_platform.settings.check_settings()`` on the process
environment, before any other ``dagster_layer`` module reads a setting at import time (the target
lists become partition keys then). A problem raises ``ConfigError`` whose one line lists every
missing or malformed setting, so ``dagster definitions validate``, ``dagster dev`` and the daemon
all stop at load with the same message instead of failing the first run.
"""

from ingest_platform.settings import check_settings

check_settings()
