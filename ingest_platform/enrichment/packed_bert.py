"""Padding-free ("packed") CPU forward pass for BERT-family sentence-transformers models.

Why: post captions are short (about 19 tokens here) and vary in length, so the stock
``SentenceTransformer.encode`` spends much of its time on padding: it pads every batch to its
longest text and runs every matrix product over the padded tokens. On CPU the model is
compute-bound in those products (64% of the time in a profile), so every padding token is
wasted work.

How: texts are tokenized by the model's own preprocessing, sorted by token count, and grouped
into chunks. Inside a chunk the real tokens of all texts are packed into one ``[tokens, hidden]``
matrix, so the Q/K/V projection (fused into one product), the output projection and the
feed-forward layers run on real tokens only, as one large product each. Only attention needs the
per-text layout: the chunk is scattered into ``[texts, heads, length, head_dim]`` (texts of a
chunk have nearly the same length, since they were sorted) with a key mask, and gathered back.
Mean pooling is a segment sum over the packed rows.

Precision follows torch's CPU autocast: matrix products in ``compute_dtype`` (bfloat16 or
float32), softmax, residual sums and LayerNorm in float32. The result is the same model, not an
approximation: float32 output matches ``encode`` to float rounding, and bfloat16 output has a
cosine above 0.9999 to it.

Only the architecture this code reproduces is accepted (``unsupported_reason`` says why not):
a BERT encoder with absolute positions and exact GELU, followed by mean pooling and an optional
Normalize. ``LocalSentenceTransformerProvider`` checks that, verifies the packed output against
``encode`` on load, and otherwise keeps the stock path.

This module imports torch at the top: import it only where torch is already needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PackedBertEncoder", "unsupported_reason"]

# Texts tokenized and sorted together; bounds the memory of one call to ``encode``.
_WINDOW_TEXTS = 8192
# Padded tokens per chunk (texts x longest text). Measured on a 2-core AVX512-BF16 CPU with
# 512 captions: 1024 -> 585/s, 2048 -> 694/s, 8192 -> 612/s, 16384 -> 467/s (the feed-forward
# activations of a larger chunk fall out of the L2 cache).
DEFAULT_CHUNK_TOKENS = 2048


def _module_kinds(model: Any) -> list[str]:
    return [type(module).__name__ for module in model]


def _pooling_is_mean(pooling: Any) -> bool:
    mode = getattr(pooling, "pooling_mode", None)
    if mode is not None:  # sentence-transformers >= 6
        return mode == "mean"
    config = pooling.get_config_dict()
    flags = {key: value for key, value in config.items() if key.startswith("pooling_mode_")}
    return flags.get("pooling_mode_mean_tokens") is True and not any(
        value for key, value in flags.items() if key != "pooling_mode_mean_tokens"
    )


def unsupported_reason(model: Any) -> str | None:
    """Why ``model`` (a ``SentenceTransformer``) cannot use the packed path, or None if it can."""
    kinds = _module_kinds(model)
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"modules {kinds} (packed path handles Transformer, Pooling[, Normalize])"
    if not _pooling_is_mean(model[1]):
        return "pooling is not plain mean pooling"
    if getattr(model, "default_prompt_name", None):
        return "the model prepends a default prompt"
    auto_model = getattr(model[0], "auto_model", None)
    config = getattr(auto_model, "config", None)
    if config is None or getattr(config, "model_type", None) != "bert":
        return f"encoder type {getattr(config, 'model_type', None)!r} is not bert"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position embeddings {config.position_embedding_type!r} are not absolute"
    if getattr(config, "hidden_act", None) != "gelu":
        return f"activation {getattr(config, 'hidden_act', None)!r} is not exact gelu"
    if getattr(config, "is_decoder", False):
        return "the encoder is configured as a decoder"
    tokenizer = getattr(model, "tokenizer", None)
    if getattr(tokenizer, "padding_side", "right") != "right":
        return "the tokenizer pads on the left"
    if next(auto_model.parameters()).device.type != "cpu":
        return "the model is not on the CPU"
    return None


@dataclass(frozen=True)
class _Layer:
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    attention_out_weight: torch.Tensor
    attention_out_bias: torch.Tensor
    attention_norm: tuple[torch.Tensor, torch.Tensor]
    intermediate_weight: torch.Tensor
    intermediate_bias: torch.Tensor
    output_weight: torch.Tensor
    output_bias: torch.Tensor
    output_norm: tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class _Tokenized:
    """A window of texts as one flat token array with per-text offsets."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    offsets: np.ndarray  # len(texts) + 1

    @cached_property
    def lengths(self) -> np.ndarray:  # read for every chunk of the window: computed once
        return np.diff(self.offsets)


class PackedBertEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a supported ``SentenceTransformer``.

    The encoder keeps its own copies of the matrix weights in ``compute_dtype`` (read-only, so
    one instance may serve several threads); the model object itself is not modified.
    """

    def __init__(
        self,
        model: Any,
        compute_dtype: torch.dtype = torch.float32,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    ) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"model not supported by the packed encoder: {reason}")
        self._model = model
        self._preprocess = getattr(model, "preprocess", None) or model.tokenize
        self.compute_dtype = compute_dtype
        self.chunk_tokens = chunk_tokens
        bert = model[0].auto_model
        config = bert.config
        self.hidden = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        self.head_dim = self.hidden // self.heads
        self.eps = float(config.layer_norm_eps)

        def matrix(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.detach().to(compute_dtype).contiguous()

        def norm(module: Any) -> tuple[torch.Tensor, torch.Tensor]:
            return module.weight.detach().float(), module.bias.detach().float()

        embeddings = bert.embeddings
        self._word = embeddings.word_embeddings.weight.detach().float()
        self._position = embeddings.position_embeddings.weight.detach().float()
        self._token_type = embeddings.token_type_embeddings.weight.detach().float()
        self._embedding_norm = norm(embeddings.LayerNorm)
        self._layers: list[_Layer] = []
        for layer in bert.encoder.layer:
            attention = layer.attention
            projections = (attention.self.query, attention.self.key, attention.self.value)
            self._layers.append(
                _Layer(
                    qkv_weight=matrix(torch.cat([p.weight for p in projections])),
                    qkv_bias=matrix(torch.cat([p.bias for p in projections])),
                    attention_out_weight=matrix(attention.output.dense.weight),
                    attention_out_bias=matrix(attention.output.dense.bias),
                    attention_norm=norm(attention.output.LayerNorm),
                    intermediate_weight=matrix(layer.intermediate.dense.weight),
                    intermediate_bias=matrix(layer.intermediate.dense.bias),
                    output_weight=matrix(layer.output.dense.weight),
                    output_bias=matrix(layer.output.dense.bias),
                    output_norm=norm(layer.output.LayerNorm),
                )
            )

    # ------------------------------------------------------------------ tokenizing

    def _tokenize(self, texts: Sequence[str]) -> _Tokenized:
        """The model's own preprocessing (strip, truncation to ``max_seq_length``, special
        tokens), then the padding removed."""
        features = self._preprocess(list(texts))
        mask = features["attention_mask"].bool()
        input_ids = features["input_ids"][mask]
        token_types = features.get("token_type_ids")
        token_type_ids = token_types[mask] if token_types is not None else torch.zeros_like(input_ids)
        lengths = mask.sum(dim=1).numpy()
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return _Tokenized(input_ids.numpy(), token_type_ids.numpy(), offsets)

    # ------------------------------------------------------------------ forward

    def _encode_chunk(self, tokens: _Tokenized, rows: np.ndarray) -> torch.Tensor:
        """Embeddings of the texts ``rows`` of ``tokens`` (one chunk), in that order."""
        lengths = tokens.lengths[rows]
        count, longest = len(rows), int(lengths.max())
        token_index = np.concatenate([np.arange(tokens.offsets[r], tokens.offsets[r + 1]) for r in rows])
        positions_np = np.concatenate([np.arange(n) for n in lengths])
        text_of_token_np = np.repeat(np.arange(count), lengths)

        input_ids = torch.from_numpy(tokens.input_ids[token_index])
        token_types = torch.from_numpy(tokens.token_type_ids[token_index])
        positions = torch.from_numpy(positions_np)
        text_of_token = torch.from_numpy(text_of_token_np)
        # Row of each real token in the padded [texts * longest] layout used by attention.
        padded_row = text_of_token * longest + positions
        lengths_t = torch.from_numpy(lengths)
        key_is_padding = torch.arange(longest)[None, :] >= lengths_t[:, None]
        key_bias = torch.zeros(count, 1, 1, longest).masked_fill_(
            key_is_padding[:, None, None, :], float("-inf")
        )

        hidden, heads, head_dim, dtype = self.hidden, self.heads, self.head_dim, self.compute_dtype
        scale = 1.0 / math.sqrt(head_dim)
        x = self._word[input_ids] + self._position[positions] + self._token_type[token_types]
        x = F.layer_norm(x, (hidden,), *self._embedding_norm, self.eps)
        for layer in self._layers:
            qkv = F.linear(x.to(dtype), layer.qkv_weight, layer.qkv_bias)  # [tokens, 3 * hidden]
            padded = qkv.new_zeros(count * longest, 3 * hidden)
            padded[padded_row] = qkv
            query, key, value = padded.view(count, longest, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            scores = torch.matmul(query, key.transpose(-1, -2)).float() * scale + key_bias
            probabilities = torch.softmax(scores, dim=-1).to(dtype)
            context = torch.matmul(probabilities, value)  # [texts, heads, longest, head_dim]
            context = context.transpose(1, 2).reshape(count * longest, hidden)[padded_row]
            attended = F.linear(context, layer.attention_out_weight, layer.attention_out_bias)
            x = F.layer_norm(attended.float() + x, (hidden,), *layer.attention_norm, self.eps)
            intermediate = F.gelu(F.linear(x.to(dtype), layer.intermediate_weight, layer.intermediate_bias))
            output = F.linear(intermediate, layer.output_weight, layer.output_bias)
            x = F.layer_norm(output.float() + x, (hidden,), *layer.output_norm, self.eps)
        pooled = torch.zeros(count, hidden).index_add_(0, text_of_token, x) / lengths_t[:, None]
        return F.normalize(pooled, dim=1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape ``(len(texts), hidden)``, in input order."""
        out = np.empty((len(texts), self.hidden), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), _WINDOW_TEXTS):
                window = texts[start : start + _WINDOW_TEXTS]
                tokens = self._tokenize(window)
                lengths = tokens.lengths
                order = np.argsort(-lengths, kind="stable")
                i = 0
                while i < len(order):
                    # Sorted longest first, so the first text of a chunk sets its padded length.
                    per_chunk = max(1, self.chunk_tokens // int(lengths[order[i]]))
                    rows = order[i : i + per_chunk]
                    out[start + rows] = self._encode_chunk(tokens, rows).numpy()
                    i += per_chunk
        return out
