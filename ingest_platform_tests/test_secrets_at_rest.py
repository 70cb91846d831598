"""No secret is ever at rest: one full demo with known secrets, then a scan of everything it left.

The demo (``ingest-platform demo``, every job, against the sandbox) runs once in a subprocess
with distinctive values for every secret the platform takes: the proxy password (inside
``PROXY_LIST``, which the sandbox proxies check), the Apify token (the stand-in checks it), the
Anti-Captcha key (the stand-in checks it), the privacy HMAC key, the Snowflake password and
private-key passphrase, the Slack token and a webhook URL carrying a token. Then every file under
``DAGSTER_HOME`` is scanned: raw bytes, gzip/zlib-decompressed bytes, base64-looking runs decoded;
every SQLite table's every column with each blob decompressed when it is zlib (Dagster's run and
job snapshots are zlib blobs); parquet files read back; the DuckDB warehouse's every table and
column as text; and the demo's stdout and stderr. Each secret is looked for as is, URL-encoded
and base64-encoded (at the three byte alignments). Zero hits.

A second, fast test builds every job snapshot of the local and the prod environment with the
same secrets set and checks none of them is in the serialised snapshot: what Dagster stores in
``runs.db`` for every run.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from ingest_platform_tests.conftest import REPO_ROOT


def _known_secrets() -> dict[str, str]:
    tag = secrets.token_hex(6)
    return {
        "proxy_password": f"PxPw{tag}Zq7",
        "apify_token": f"apify_api_Tk{tag}Q9",
        "anticaptcha_key": f"ac{tag}deadbeef0123",
        "hmac_key": f"hmac-{secrets.token_hex(24)}",
        "snowflake_password": f"SfPw{tag}!x",
        "snowflake_passphrase": f"SfPass{tag}",
        "slack_token": f"xoxb-1111-{tag}-SlAcK",
        "webhook_token": f"WhTok{tag}",
        "embeddings_api_key": f"sk-emb{tag}",
    }


def _secret_env(known: dict[str, str], webhook_port: int = 9) -> dict[str, str]:
    """The environment a deployment sets for its secrets (PROXY_LIST/APIFY/ANTICAPTCHA come from
    the demo's stand-ins, which the driver builds with the known values)."""
    return {
        "PRIVACY_HMAC_KEY": known["hmac_key"],
        "SNOWFLAKE_PASSWORD": known["snowflake_password"],
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": known["snowflake_passphrase"],
        "ALERT_SLACK_TOKEN": known["slack_token"],
        "ALERT_SLACK_CHANNEL": "#data-alerts",
        "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{webhook_port}/hooks/{known['webhook_token']}",
        "EMBEDDINGS_API_KEY": known["embeddings_api_key"],
    }


def _needles(known: dict[str, str]) -> dict[bytes, str]:
    """Every byte form a secret could take at rest -> the secret's name."""
    forms: dict[bytes, str] = {}
    for name, value in known.items():
        raw = value.encode()
        for text in {value, quote(value, safe=""), quote_plus(value)}:
            forms[text.encode()] = name
        # base64 of the secret inside a longer base64 text, at each of the three byte alignments:
        # only the characters that do not depend on the neighbouring bytes are certain.
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw + b"\0\0")
            core = encoded[(shift * 4 + 2) // 3 + 1 : -4]
            if len(core) >= 12:
                forms[core] = name
                forms[core.replace(b"+", b"-").replace(b"/", b"_")] = name
    return forms


_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_\-]{24,}={0,2}")


def _decoded_views(data: bytes, depth: int = 0) -> Iterator[bytes]:
    """``data`` and whatever it decompresses / base64-decodes to (bounded depth)."""
    yield data
    if depth >= 2 or not data:
        return
    for wbits in (47, -15):  # 47: zlib or gzip header, auto-detected; -15: raw deflate
        try:
            inflated = zlib.decompressobj(wbits).decompress(data, 512 * 1024 * 1024)
        except zlib.error:
            continue
        if inflated:
            yield from _decoded_views(inflated, depth + 1)
            break
    if len(data) <= 8 * 1024 * 1024:
        for match in _BASE64_RUN.finditer(data):
            run = match.group()
            try:
                urlsafe = b"-" in run or b"_" in run
                decoded = base64.b64decode(run + b"=" * (-len(run) % 4), altchars=b"-_" if urlsafe else None)
            except (binascii.Error, ValueError):
                continue
            yield from _decoded_views(decoded, depth + 1)


def _hits(data: bytes, needles: dict[bytes, str], where: str) -> list[str]:
    found = []
    for view in _decoded_views(data):
        for needle, name in needles.items():
            if needle in view:
                found.append(f"{name} in {where}")
    return found


def _scan_sqlite(path: Path, needles: dict[bytes, str]) -> list[str]:
    found: list[str] = []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        data = value
                    elif isinstance(value, str):
                        data = value.encode("utf-8", "surrogatepass")
                    else:
                        continue
                    found += _hits(data, needles, f"{path.name}:{table}")
    finally:
        connection.close()
    return found


def _scan_parquet(path: Path, needles: dict[bytes, str]) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    text = json.dumps(table.to_pylist(), default=str).encode()
    return _hits(text, needles, f"{path} (parquet rows)")


def _scan_duckdb(path: Path, needles: dict[bytes, str]) -> list[str]:
    import duckdb

    found: list[str] = []
    connection = duckdb.connect(str(path), read_only=True)
    try:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
        for schema, table in tables:
            columns = [
                row[0]
                for row in connection.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = ? AND table_name = ?",
                    [schema, table],
                ).fetchall()
            ]
            for column in columns:
                rows = connection.execute(
                    f'SELECT CAST("{column}" AS VARCHAR) FROM "{schema}"."{table}"'
                ).fetchall()
                text = "\n".join(str(row[0]) for row in rows).encode()
                found += _hits(text, needles, f"{path.name}:{schema}.{table}.{column}")
    finally:
        connection.close()
    return found


def scan_tree(root: Path, needles: dict[bytes, str]) -> tuple[list[str], dict[str, int]]:
    """Every hit of a needle anywhere under ``root``, and how many files of each kind were read."""
    found: list[str] = []
    kinds = {"files": 0, "sqlite": 0, "parquet": 0, "duckdb": 0}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        kinds["files"] += 1
        data = path.read_bytes()
        found += _hits(data, needles, str(path.relative_to(root)))
        if data.startswith(b"SQLite format 3\0"):
            kinds["sqlite"] += 1
            found += _scan_sqlite(path, needles)
        elif data[:4] == b"PAR1":
            kinds["parquet"] += 1
            found += _scan_parquet(path, needles)
        elif data[8:12] == b"DUCK":
            kinds["duckdb"] += 1
            found += _scan_duckdb(path, needles)
    return found, kinds


# The driver runs `ingest-platform demo` unchanged, except that its offline stand-ins (proxies,
# Anti-Captcha, Apify) are built with the known secrets instead of the demo's fixed ones.
_DEMO_DRIVER = """
import json, sys
from ingest_platform import cli
from ingest_platform.sandbox.anticaptcha_api import AntiCaptchaConfig
from ingest_platform.sandbox.apify_api import ApifyStandIn
from ingest_platform.sandbox.stack import SandboxStack

known = json.loads(sys.argv[1])


class KnownSecretsStack(cli.LocalStack):
    def __init__(self, port, scenario="calm"):
        self.stack = SandboxStack(
            scenario=scenario, port=0, proxy_password=known["proxy_password"],
            anticaptcha=AntiCaptchaConfig(client_keys={known["anticaptcha_key"]}),
        ).start()
        self.apify = ApifyStandIn(self.stack.content, token=known["apify_token"])
        self.apify.start()

    def env(self):
        return {**super().env(), "APIFY_TOKEN": known["apify_token"]}


cli.LocalStack = KnownSecretsStack
sys.exit(cli.main(["demo", "--home", sys.argv[2], "--port", "0"]))
"""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    known = _known_secrets()
    home = tmp_path_factory.mktemp("secrets_home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROXY_", "APIFY_", "ANTICAPTCHA_", "SNOWFLAKE_", "ALERT_", "PRIVACY_"))
    }
    env.update(_secret_env(known))
    env.update({"INGEST_ENV": "local", "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    result = subprocess.run(
        [sys.executable, "-c", _DEMO_DRIVER, json.dumps(known), str(home)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        timeout=900,
    )
    return {"known": known, "home": home, "result": result}


def test_the_demo_ran_every_job_with_the_known_secrets(demo_run: dict) -> None:
    result = demo_run["result"]
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out[-3000:] + result.stderr.decode(errors="replace")[-3000:]
    jobs = ("tiktok_scrape_job", "facebook_posts_job", "orders_job", "warehouse_cost_job", "cost_report_job")
    for job in jobs:
        assert f"run {job}" in out
    assert "FAILURE" not in out
    # The secrets were used, not skipped: TikTok posts came through the proxies (which accept only
    # the known password) and Facebook posts from the Apify stand-in (which accepts only the token).
    import duckdb

    connection = duckdb.connect(str(demo_run["home"] / "warehouse.duckdb"), read_only=True)
    try:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'platform'"
        ).fetchall()
        platforms = {
            row[0]
            for schema, table in tables
            for row in connection.execute(f'SELECT DISTINCT platform FROM "{schema}"."{table}"').fetchall()
        }
    finally:
        connection.close()
    assert {"tiktok", "facebook"} <= platforms, platforms


def test_no_secret_anywhere_under_dagster_home_or_in_the_output(demo_run: dict) -> None:
    needles = _needles(demo_run["known"])
    found, kinds = scan_tree(demo_run["home"], needles)
    result = demo_run["result"]
    found += _hits(result.stdout, needles, "stdout")
    found += _hits(result.stderr, needles, "stderr")
    # The scan really read the instance: run storage, the raw store and the warehouse.
    assert kinds["sqlite"] >= 1 and kinds["parquet"] >= 1 and kinds["duckdb"] == 1, kinds
    assert found == [], sorted(set(found))[:40]


def test_the_scanner_finds_a_secret_in_a_zlib_blob_of_a_sqlite_table(tmp_path: Path) -> None:
    # The scan must see what Dagster stores: a zlib-compressed JSON blob in a SQLite column.
    known = {"k": "Zz-a-distinctive-secret-42"}
    connection = sqlite3.connect(tmp_path / "runs.db")
    blob = zlib.compress(json.dumps({"default_value_as_json_str": json.dumps(known["k"])}).encode())
    connection.execute("CREATE TABLE snapshots (snapshot_body BLOB)")
    connection.execute("INSERT INTO snapshots VALUES (?)", [blob])
    connection.commit()
    connection.close()
    (tmp_path / "b64.txt").write_bytes(base64.b64encode(b"xx" + known["k"].encode() + b"yy"))
    found, _ = scan_tree(tmp_path, _needles(known))
    assert any("runs.db:snapshots" in hit for hit in found), found
    assert any("b64.txt" in hit for hit in found), found


_SNAPSHOT_PROBE = """
import json, sys
from dagster._core.snap import JobSnap
from dagster._serdes import serialize_value
from ingest_platform.definitions import make_definitions

defs = make_definitions(sys.argv[1])
for job in defs.get_repository_def().get_all_jobs():
    print(json.dumps({"job": job.name, "snapshot": serialize_value(JobSnap.from_job_def(job))}))
"""


def _prod_settings(tmp_path: Path) -> dict[str, str]:
    return {
        "INGEST_ENV": "prod",
        "SNOWFLAKE_ACCOUNT": "myorg-myaccount",
        "SNOWFLAKE_USER": "INGEST_LOADER_SVC",
        "SNOWFLAKE_DATABASE": "ANALYTICS",
        "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
        "INGEST_RAW_URI": str(tmp_path / "raw"),
        "ORDERS_LANDING_URI": "s3://my-bucket/landing/orders",
        "TIKTOK_TARGETS": "@somecreator",
    }


@pytest.mark.parametrize("environment", ["local", "prod"])
def test_no_secret_in_any_job_snapshot(environment: str, dagster_home, tmp_path: Path) -> None:
    known = _known_secrets()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SNOWFLAKE_", "PROXY_"))}
    env.update(_secret_env(known))
    env.update(
        {
            "PROXY_LIST": f"http://user:{known['proxy_password']}@127.0.0.1:9000",
            "APIFY_TOKEN": known["apify_token"],
            "ANTICAPTCHA_API_KEY": known["anticaptcha_key"],
            "EMBEDDINGS_PROVIDER": "openai",
        }
    )
    if environment == "prod":
        env.update(_prod_settings(tmp_path))
        env.pop("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
    result = subprocess.run(
        [sys.executable, "-c", _SNAPSHOT_PROBE, environment],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    jobs = [json.loads(line) for line in result.stdout.decode().splitlines() if line.startswith("{")]
    assert len(jobs) >= 7
    needles = _needles(known)
    found = []
    for job in jobs:
        found += _hits(job["snapshot"].encode(), needles, f"{environment} {job['job']} snapshot")
    assert found == [], sorted(set(found))


def test_a_failed_alert_delivery_is_logged_without_the_webhook_token(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from dagster import (
        AssetCheckResult,
        AssetCheckSpec,
        DagsterInstance,
        Definitions,
        MaterializeResult,
        asset,
        build_sensor_context,
        materialize,
    )

    from ingest_platform.dagster_layer.alerts import AlertsResource, check_alert_sensor

    token = "T0KEN" + secrets.token_hex(8)

    @asset(check_specs=[AssetCheckSpec("always_fails", asset="watched")])
    def watched():  # no annotation: a string one (future import) cannot resolve in a local scope
        return MaterializeResult(check_results=[AssetCheckResult(check_name="always_fails", passed=False)])

    instance = DagsterInstance.ephemeral()
    assert materialize([watched], instance=instance, raise_on_error=False) is not None
    # A URL without its scheme (a common slip): urllib's error quotes the whole URL, token included.
    alerts = AlertsResource(webhook_url=f"hooks.example.com/services/{token}")
    context = build_sensor_context(
        instance=instance,
        definitions=Definitions(assets=[watched], sensors=[check_alert_sensor]),
        resources={"alerts": alerts},
    )
    capfd.readouterr()
    check_alert_sensor(context)
    captured = capfd.readouterr()
    messages = (captured.out + captured.err).splitlines()
    delivery = [message for message in messages if "alert delivery failed" in message]
    assert delivery, messages
    assert all(token not in message for message in delivery), delivery


def test_the_snowflake_resource_path_leaves_no_secret_in_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that loads into Snowflake (fakesnow) with a password, then with an encrypted key pair:
    neither the password, the passphrase nor the key's PEM is anywhere in the instance."""
    import fakesnow
    import pandas as pd
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from dagster import DagsterInstance, EnvVar, asset, materialize

    from ingest_platform.dagster_layer.resources import WarehouseResource
    from ingest_platform.warehouse.snowflake_warehouse import FAKESNOW_NOP_REGEXES

    known = {"password": "SfPw" + secrets.token_hex(8), "passphrase": "SfPp" + secrets.token_hex(8)}
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(known["passphrase"].encode()),
    ).decode()
    known["pem_body"] = pem.splitlines()[5]  # one line of the key's base64 body
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", known["password"])
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY", pem)
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", known["passphrase"])

    # required_resource_keys, not an annotated parameter: string annotations can't resolve here
    @asset(required_resource_keys={"warehouse"})
    def loaded(context):
        frame = pd.DataFrame({"order_id": ["o1", "o2"], "amount": [1.5, 2.5]})
        warehouse = context.resources.warehouse.open()
        warehouse.merge("ORDERS_TEST", frame, key_columns=["order_id"], query_tag="t")

    common = {
        "engine": "snowflake",
        "snowflake_account": "myorg-myaccount",
        "snowflake_user": "INGEST_LOADER_SVC",
        "snowflake_database": "TEST_DB",
        "snowflake_schema": "PUBLIC",
        "snowflake_warehouse": "LOAD_WH",
    }
    by_password = WarehouseResource(**common, snowflake_password=EnvVar("SNOWFLAKE_PASSWORD"))
    by_key = WarehouseResource(
        **common,
        snowflake_private_key=EnvVar("SNOWFLAKE_PRIVATE_KEY"),
        snowflake_private_key_passphrase=EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
    )
    home = tmp_path / "home"
    home.mkdir()
    with (
        DagsterInstance.local_temp(str(home)) as instance,
        fakesnow.patch(nop_regexes=list(FAKESNOW_NOP_REGEXES)),
    ):
        for resource in (by_password, by_key):
            result = materialize([loaded], instance=instance, resources={"warehouse": resource})
            assert result.success
    found, kinds = scan_tree(home, _needles(known))
    assert kinds["sqlite"] >= 1, kinds
    assert found == [], sorted(set(found))
