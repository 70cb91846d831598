"""Scraping libraries: pure Python, no Dagster.

Modules (import them directly; this package deliberately re-exports nothing so that importing
``ingest_platform.scraping`` never pulls in Playwright or other heavy dependencies):

- ``tiktok_page``: parse TikTok page state (``__UNIVERSAL_DATA_FOR_REHYDRATION__`` / ``SIGI_STATE``)
  and item-list API responses into :class:`ingest_platform.models.Post`.
- ``targets``: parse scrape targets (``@name``, ``#tag``, video URLs) and build page URLs.
- ``proxy_config``: parse the ``PROXY_LIST`` setting into redaction-safe proxy endpoints.
- ``proxy_pool``, ``sessions``, ``fingerprints``: healthy proxies, sticky sessions, consistent fingerprints.
- ``blocking``, ``captcha``: what a block looks like, and solving the CAPTCHAs a service can solve.
- ``browser``: the Playwright scraper that ties them together; ``metrics``: its run counters.
- ``schema_drift``: field paths and types of scraped items, compared across runs.
- ``apify_backend``, ``apify_normalizers``: Apify actors as a second backend producing the same rows.
- ``backend_choice``, ``backend_cost``: browser / apify / auto, and cost per 1,000 posts.
"""
