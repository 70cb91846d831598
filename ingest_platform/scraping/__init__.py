"""Scraping libraries: pure Python, no Dagster.

Modules (import them directly; this package deliberately re-exports nothing so that importing
``ingest_platform.scraping`` never pulls in Playwright or other heavy dependencies):

- ``tiktok_page``: parse TikTok page state (``__UNIVERSAL_DATA_FOR_REHYDRATION__`` / ``SIGI_STATE``)
  and item-list API responses into :class:`ingest_platform.models.Post`.
- ``targets``: parse scrape targets (``@name``, ``#tag``, video URLs) and build page URLs.
- ``proxy_config``: parse the ``PROXY_LIST`` setting into redaction-safe proxy endpoints.
"""
