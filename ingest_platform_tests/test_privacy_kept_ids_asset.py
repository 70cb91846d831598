"""Issue #12 item 6 at the asset level: an order id that is an e-mail reaches ORDERS as a token,
the same token as its ``customer_email_token``, and the count is in the materialization metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from ingest_platform.dagster_layer.resources import (
    LandingZoneResource,
    PrivacyResource,
    RawStoreResource,
    ThresholdsResource,
    WarehouseResource,
)
from ingest_platform.dagster_layer.warehouse import orders
from ingest_platform.sandbox.orders import write_order_files

pytestmark = [pytest.mark.usefixtures("dagster_home"), pytest.mark.filterwarnings("ignore::UserWarning")]


def test_orders_asset_tokenises_personal_order_ids_and_counts_them(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    truth = write_order_files(landing, n_files=1, rows_per_file=10)
    (path,) = truth.files
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows[0]["order_id"] = rows[0]["customer_email"]  # a shop that keys orders by e-mail
    rows[1]["order_id"] = "+44 20 7946 0958"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    resources = {
        "warehouse": WarehouseResource(engine="duckdb", duckdb_path=str(tmp_path / "wh.duckdb")),
        "raw_store": RawStoreResource(uri=str(tmp_path / "raw")),
        "landing": LandingZoneResource(uri=str(landing)),
        "privacy": PrivacyResource(hmac_key="k" * 48),
        "thresholds": ThresholdsResource(),
    }
    result = materialize([orders], resources=resources, instance=DagsterInstance.ephemeral())
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["pii_in_kept_columns"].value == 2
    with resources["warehouse"].open() as wh:
        table = wh.read_sql("SELECT * FROM ORDERS")
    assert rows[0]["customer_email"] not in set(table["order_id"])
    assert "+44 20 7946 0958" not in set(table["order_id"])
    by_email = table[table["customer_email_token"] == table["order_id"]]
    assert len(by_email) == 1  # the tokenised id joins the customer's e-mail token
    assert len(table) == 10 and table["order_id"].is_unique
