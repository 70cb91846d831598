"""ingest_platform: social-media and commerce ingestion as Dagster assets.

Pure libraries (scraping, privacy, enrichment, warehouse, orders, sandbox) import no Dagster;
the Dagster layer lives in ``ingest_platform.dagster_layer`` and ``ingest_platform.definitions``.
"""

__version__ = "0.1.0"
