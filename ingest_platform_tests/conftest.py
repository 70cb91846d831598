"""Shared fixtures: temporary DAGSTER_HOME, the sandbox TikTok server, environment for local runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Chromium with no stealth for the sandbox's own tests: they check what the site detects in a
# plain automated browser, independent of the scraper's CHROMIUM_ARGS.
BARE_CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def real_fixtures_dir() -> Path:
    """Real-world TikTok and Apify samples (see its README), kept in the repo so a fresh clone tests alone."""
    return REPO_ROOT / "ingest_platform_tests" / "data" / "real"


def modules_loaded_by(
    imports: Sequence[str], packages: Sequence[str], env: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Import ``imports`` in a fresh interpreter and report, per entry of ``packages``, the loaded
    modules whose name starts with it (``"dagster"`` also catches ``dagster_shared``; a trailing
    dot, ``"snowflake."``, skips a bare namespace package). Used to keep heavy libraries out of
    the code location's start-up."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(imports)!r}:\n"
        "    importlib.import_module(name)\n"
        f"packages = {list(packages)!r}\n"
        "print(json.dumps({p: sorted(m for m in sys.modules if m.startswith(p)) for p in packages}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for a block (module-scoped fixtures can't use monkeypatch)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def rsa_pem(passphrase: str | None = None) -> tuple[str, bytes]:
    """A fresh 2048-bit RSA key as PKCS#8 PEM (encrypted when ``passphrase``) and its plain DER."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode(), der


def make_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


@contextmanager
def fakesnow_warehouse_resource(**overrides: object) -> Iterator[object]:
    """A Snowflake ``WarehouseResource`` whose connector fakesnow patches for the block.

    ``WarehouseResource.open()`` calls ``snowflake.connector.connect`` at run time, which
    fakesnow has replaced; fakesnow creates TEST_DB/PUBLIC on connect. fakesnow is in the test
    extra: without it this fails rather than skips.
    """
    import fakesnow

    from ingest_platform.dagster_layer.resources import WarehouseResource
    from ingest_platform.warehouse.snowflake_warehouse import FAKESNOW_NOP_REGEXES

    settings: dict[str, object] = {
        "engine": "snowflake",
        "snowflake_account": "test_account",
        "snowflake_user": "loader",
        "snowflake_password": "not-a-real-password",
        "snowflake_database": "TEST_DB",
        "snowflake_schema": "PUBLIC",
        "snowflake_warehouse": "LOAD_WH",
    }
    with fakesnow.patch(nop_regexes=list(FAKESNOW_NOP_REGEXES)):
        yield WarehouseResource(**{**settings, **overrides})


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = make_dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def sandbox_content():
    from ingest_platform.sandbox.content import SandboxContent

    return SandboxContent.generate(seed=7)


@pytest.fixture(scope="session")
def sandbox_server(sandbox_content):
    from ingest_platform.sandbox.server import SandboxServer

    server = SandboxServer(content=sandbox_content)
    server.start()
    yield server
    server.stop()


class WebhookReceiver:
    """A loopback HTTP server recording every JSON body POSTed to it (alert webhooks)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@dataclass
class DagsterDev:
    """A running ``dagster dev`` on loopback, with its log for failure messages."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, pattern: str = "", lines: int = 40) -> str:
        """The last lines of the dev log matching ``pattern`` (a regex)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        matching = [line for line in text.splitlines() if re.search(pattern, line)]
        return "\n".join(matching[-lines:])

    def wait_until_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise TimeoutError(f"dagster dev did not answer on {self.url} within {timeout_s}s")


@contextmanager
def run_dagster_dev(home: Path, env: dict[str, str], log_path: Path) -> Iterator[DagsterDev]:
    """``dagster dev`` on a free loopback port for the workspace, stopped with its whole group."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "DAGSTER_HOME": str(home), "INGEST_ENV": "local", "DAGSTER_UI_URL": url, **env}
    command = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
               "-w", str(REPO_ROOT / "workspace.yaml")]  # fmt: skip
    with log_path.open("w") as log:
        # Its own process group, so SIGTERM reaches every child (REFERENCE §8).
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        dev = DagsterDev(url, process, log_path)
        try:
            dev.wait_until_ready()
            yield dev
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


# -- hypothesis profiles (orders-harness) ---------------------------------------------------------
# ``default`` keeps `make test` within minutes; ``HYPOTHESIS_PROFILE=long`` runs far more examples.
# Tests with their own ``@settings(max_examples=...)`` scale theirs with ``hypothesis_scale()``.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("long", max_examples=1_000, deadline=None)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def hypothesis_scale() -> int:
    """How many times more examples the active profile asks for (1 by default, 10 when long)."""
    return 10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1


# -- PostgreSQL on loopback (orders-harness) ------------------------------------------------------
@dataclass
class PostgresServer:
    """A throwaway PostgreSQL server: superuser ``dagster``, database ``dagster``, trust auth on 127.0.0.1."""

    port: int
    data_dir: Path
    user: str = "dagster"
    dbname: str = "dagster"

    @property
    def url(self) -> str:
        # The driver named: SQLAlchemy's default for "postgresql://" is psycopg 3, which is not
        # installed; dagster-postgres works through psycopg2.
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.dbname}"


def _postgres_bin() -> Path:
    """Debian's server binaries (``make test`` installs ``postgresql`` when they are missing)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries are missing: apt-get install postgresql (make test does)"
        )
    return found[-1].parent


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """Start a PostgreSQL server for one test and stop it afterwards (REFERENCE §12).

    initdb refuses root, so as root the server runs as the ``postgres`` user through ``runuser``,
    in a data directory outside pytest's root-only tmp tree.
    """
    import tempfile

    bin_dir = _postgres_bin()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="ingest_pg_"))
    data = base / "data"
    data.mkdir()
    if as_root:
        base.chmod(0o755)
        shutil.chown(data, "postgres", "postgres")
    server = PostgresServer(port=free_port(), data_dir=data)
    log = base / "server.log"
    if as_root:
        log.touch()
        shutil.chown(log, "postgres", "postgres")

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{args[0]} failed: {result.stdout}{result.stderr}"

    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", server.user, "--no-sync")
    options = f"-p {server.port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
    try:
        address = ["-h", "127.0.0.1", "-p", str(server.port), "-U", server.user]
        run(str(bin_dir / "createdb"), *address, server.dbname)
        yield server
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(base, ignore_errors=True)
