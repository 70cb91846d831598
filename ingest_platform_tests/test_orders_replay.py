"""Dead-letter replay (issue #11): the library, ``dead_letter_replay_job`` and the CLI.

Letters rejected under an *older* rule are simulated by writing them to the raw store directly
(their payload passes today's rules); others still fail and must stay, with today's reason.
Replaying twice loads nothing twice and marks nothing twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions

from ingest_platform.cli import main
from ingest_platform.dagster_layer.quality import dead_letter_replay_job
from ingest_platform.dagster_layer.resources import PrivacyResource, RawStoreResource, WarehouseResource
from ingest_platform.models import DeadLetter
from ingest_platform.orders.replay import ReplaySelection, parse_time, rebuild_record, replay_dead_letters
from ingest_platform.privacy.policies import ORDERS_POLICY
from ingest_platform.raw_store import RawStore

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("dagster_home")]

HMAC_KEY = "k" * 20 + "Zq9!" + "m" * 24
DAY1 = datetime(2026, 12, 1, 9, tzinfo=UTC)
DAY3 = datetime(2026, 12, 3, 9, tzinfo=UTC)
EMAIL = "replay.person@example.org"


def order(order_id: str, **changes: Any) -> dict[str, Any]:
    record = {
        "order_id": order_id,
        "created_at": "2026-11-30T10:00:00Z",
        "amount": "19.99",
        "currency": "EUR",
        "customer_email": EMAIL,
        "_source_file": "/landing/orders_old.jsonl",
        "_source_line": 1,
    }
    return {**record, **changes}


def letter(line: int, reason: str, payload: dict[str, Any], rejected_at: datetime) -> DeadLetter:
    return DeadLetter.from_payload(
        source="ORDERS",
        reason=reason,
        payload=payload,
        letter_id=DeadLetter.file_letter_id("ORDERS", "fp-old", line),
        source_file="/landing/orders_old.jsonl",
        source_fingerprint="fp-old",
        source_line=line,
        rejected_at=rejected_at,
        run_id="old-run",
    )


def corrupt_line(line: int, raw: str, rejected_at: datetime) -> DeadLetter:
    payload = {"raw": raw, "raw_truncated": False, "error": "JSONDecodeError: ...", "_source_line": line}
    return letter(line, "corrupt_json", {**payload, "_source_file": "/landing/orders_old.jsonl"}, rejected_at)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    """Five letters spooled by an older loader: two now pass, two still fail, one from day 3."""
    raw = RawStore(str(tmp_path / "raw"))
    letters = [
        # An older rule rejected lower-case currency codes that today's rule... still rejects:
        letter(1, "invalid_currency", order("OLD-1", currency="eur"), DAY1),
        # An older rule rejected amounts above 10 000; today's bound is far higher.
        letter(2, "amount_out_of_range: above 10000", order("OLD-2", amount="12000.00"), DAY1),
        # A line fixed by hand in the spool: it parses now.
        corrupt_line(3, json.dumps(order("OLD-3", _source_file=None)), DAY1),
        # Still garbage.
        corrupt_line(4, '{"order_id": "OLD-4", "amount": ', DAY1),
        letter(5, "amount_out_of_range: above 10000", order("OLD-5", amount="15000.00"), DAY3),
    ]
    raw.write_dead_letters("ORDERS", "fp=fp-old", letters)
    return {
        "raw": raw,
        "warehouse": WarehouseResource(engine="duckdb", duckdb_path=str(tmp_path / "wh.duckdb")),
        "raw_resource": RawStoreResource(uri=str(tmp_path / "raw")),
        "privacy": PrivacyResource(hmac_key=HMAC_KEY),
        "tmp": tmp_path,
    }


def replay(setup: dict[str, Any], selection: ReplaySelection, *, run_id: str, dry_run: bool = False) -> Any:
    privacy = setup["privacy"]
    with setup["warehouse"].open() as wh:
        return replay_dead_letters(
            setup["raw"],
            wh,
            selection=selection,
            apply_privacy=lambda frame: privacy.apply(ORDERS_POLICY, frame)[0],
            run_id=run_id,
            query_tag=f"test:{run_id}",
            dry_run=dry_run,
        )


def table(setup: dict[str, Any], sql: str) -> pd.DataFrame:
    with setup["warehouse"].open() as wh:
        return wh.read_sql(sql)


def test_replay_loads_what_passes_today_once_and_keeps_the_rest_with_their_new_reason(
    setup: dict[str, Any],
) -> None:
    report = replay(setup, ReplaySelection(source="ORDERS"), run_id="replay-1")

    assert (report.selected, report.replayed, report.still_failing) == (5, 3, 2)
    outcomes = {o.letter_id.rsplit(":", 1)[-1]: o for o in report.outcomes}
    assert {k for k, o in outcomes.items() if o.outcome == "loaded"} == {"2", "3", "5"}
    assert outcomes["1"].new_reason == "invalid_currency"
    assert (outcomes["4"].new_reason or "").startswith("corrupt_json")
    stored = table(setup, "SELECT * FROM ORDERS ORDER BY order_id")
    assert list(stored["order_id"]) == ["OLD-2", "OLD-3", "OLD-5"]
    assert EMAIL not in set(stored.astype(str).to_numpy().ravel())  # the privacy policy ran
    marks = table(setup, "SELECT letter_id, outcome, new_reason, run_id FROM dead_letter_replays")
    assert len(marks) == 5 and set(marks["run_id"]) == {"replay-1"}

    # Twice: the replayed letters are not selected again, nothing is loaded or marked twice.
    again = replay(setup, ReplaySelection(source="ORDERS"), run_id="replay-2")
    assert (again.selected, again.replayed, again.still_failing, again.already_replayed) == (2, 0, 2, 3)
    assert len(table(setup, "SELECT * FROM ORDERS")) == 3
    loaded_marks = table(setup, "SELECT letter_id FROM dead_letter_replays WHERE outcome = 'loaded'")
    assert loaded_marks["letter_id"].is_unique and len(loaded_marks) == 3


def test_selection_by_reason_and_time_range_and_dry_run(setup: dict[str, Any]) -> None:
    day2 = datetime(2026, 12, 2, tzinfo=UTC)
    by_reason = ReplaySelection(source="ORDERS", reason="amount_out_of_range", until=day2)
    dry = replay(setup, by_reason, run_id="dry", dry_run=True)
    assert (dry.selected, dry.replayed, dry.dry_run) == (1, 1, True)
    assert "orders" not in [t.lower() for t in _tables(setup)]  # a dry run loads nothing
    assert "dead_letter_replays" not in _tables(setup)  # and marks nothing

    exact = ReplaySelection(source="ORDERS", reason="amount_out_of_range", reason_exact=True)
    assert replay(setup, exact, run_id="exact", dry_run=True).selected == 0  # the reason has a detail
    since_day2 = ReplaySelection(source="ORDERS", since=datetime(2026, 12, 2, tzinfo=UTC))
    assert replay(setup, since_day2, run_id="since", dry_run=True).selected == 1
    assert replay(setup, ReplaySelection(source="TIKTOK"), run_id="other", dry_run=True).selected == 0

    real = replay(setup, by_reason, run_id="real")
    assert real.replayed == 1
    assert list(table(setup, "SELECT order_id FROM ORDERS")["order_id"]) == ["OLD-2"]


def _tables(setup: dict[str, Any]) -> list[str]:
    with setup["warehouse"].open() as wh:
        return wh.list_tables()


def test_a_replayed_older_version_does_not_overwrite_a_newer_order(setup: dict[str, Any]) -> None:
    # ORDERS already holds a newer version of OLD-2 (loaded from a later file).
    privacy = setup["privacy"]
    from ingest_platform.orders.load import load_orders_frame

    newer = pd.DataFrame([order("OLD-2", amount="30.00", created_at="2026-12-05T10:00:00Z")])
    with setup["warehouse"].open() as wh:
        load_orders_frame(
            newer,
            apply_privacy=lambda frame: privacy.apply(ORDERS_POLICY, frame)[0],
            warehouse=wh,
            run_id="newer",
            query_tag="test:newer",
        )
    replay(setup, ReplaySelection(source="ORDERS", reason="amount_out_of_range"), run_id="replay")
    amounts = table(setup, "SELECT order_id, amount FROM ORDERS ORDER BY order_id")
    assert dict(zip(amounts["order_id"], amounts["amount"].astype(float), strict=True)) == {
        "OLD-2": 30.0,
        "OLD-5": 15000.0,
    }


def test_rebuild_record_refuses_what_cannot_be_rebuilt() -> None:
    truncated = DeadLetter.from_payload(
        source="ORDERS",
        reason="corrupt_json",
        payload={"raw": "{", "raw_truncated": True, "error": "x", "_source_line": 1, "_source_file": "f"},
    )
    assert rebuild_record(truncated) == (
        None,
        "not_replayable: the raw line was truncated when it was spooled",
    )
    csv_row = DeadLetter.from_payload(
        source="ORDERS",
        reason="malformed_csv_row",
        payload={"raw": "a,b", "raw_truncated": False, "error": "x", "_source_line": 2, "_source_file": "f"},
    )
    assert (rebuild_record(csv_row)[1] or "").startswith("not_replayable")
    with pytest.raises(ValueError, match="not an ISO 8601 date"):
        parse_time("last tuesday")
    assert parse_time("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)


def test_dead_letter_replay_job_reports_selected_replayed_and_still_failing(setup: dict[str, Any]) -> None:
    job = Definitions(
        jobs=[dead_letter_replay_job],
        resources={
            "raw_store": setup["raw_resource"],
            "privacy": setup["privacy"],
            "warehouse": setup["warehouse"],
        },
    ).resolve_job_def("dead_letter_replay_job")
    selection = {"reason": "amount_out_of_range", "until": "2026-12-02"}
    config = {"ops": {"replay_dead_letters": {"config": selection}}}

    result = job.execute_in_process(run_config=config, instance=DagsterInstance.ephemeral())

    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert (metadata["selected"], metadata["replayed"], metadata["still_failing"]) == (1, 1, 0)
    (materialization,) = result.get_asset_materialization_events()
    assert materialization.asset_key.to_user_string() == "ORDERS"
    marks = table(setup, "SELECT run_id FROM dead_letter_replays")
    assert list(marks["run_id"]) == [result.run_id]


def test_cli_replays_with_a_one_line_summary_and_documented_exit_codes(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGEST_ENV", "local")
    monkeypatch.setenv("INGEST_DUCKDB_PATH", setup["warehouse"].duckdb_path)
    monkeypatch.setenv("INGEST_RAW_URI", setup["raw_resource"].uri)
    monkeypatch.setenv("PRIVACY_HMAC_KEY", HMAC_KEY)

    assert main(["replay-dead-letters", "--since", "yesterday"]) == 2
    assert "not an ISO 8601 date" in capsys.readouterr().err

    assert main(["replay-dead-letters", "--source", "ORDERS", "--dry-run"]) == 1  # two still fail
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "5 dead letter(s) selected, dry run: would replay 3, 2 still failing "
        "(corrupt_json=1, invalid_currency=1), 0 already replayed earlier"
    ]
    code = main(["replay-dead-letters", "--reason", "amount_out_of_range", "--until", "2026-12-02"])
    assert code == 0
    assert capsys.readouterr().out.startswith("1 dead letter(s) selected, replayed 1, 0 still failing")
    assert list(table(setup, "SELECT order_id FROM ORDERS")["order_id"]) == ["OLD-2"]


def test_cli_help_shows_an_example_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay-dead-letters", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "ingest-platform replay-dead-letters --source ORDERS --reason invalid_amount" in text
    for code in ("0  every selected", "1  the replay ran", "2  bad arguments", "3  the replay could not run"):
        assert code in text


def test_cli_reports_an_unusable_warehouse_in_one_line_with_exit_code_3(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = setup["tmp"] / "taken.duckdb"
    taken.mkdir()  # a directory where the database file should be
    monkeypatch.setenv("INGEST_ENV", "local")
    monkeypatch.setenv("INGEST_DUCKDB_PATH", str(taken))
    monkeypatch.setenv("INGEST_RAW_URI", setup["raw_resource"].uri)
    monkeypatch.setenv("PRIVACY_HMAC_KEY", HMAC_KEY)

    assert main(["replay-dead-letters"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("replay-dead-letters: could not replay: ")
