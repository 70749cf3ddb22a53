"""Frozen-encoder outputs precomputed per caption, and the null (empty caption) embedding.

    encode = make_encode_fn(encoder, params, tokenizer)        # jitted, fixed shapes
    cache = build_embedding_cache(encode, captions, "emb.safetensors")
    states, mask = EmbeddingCache.load("emb.safetensors").lookup(batch["caption"])
    null_states, null_mask = cache.null(batch_size)            # for classifier-free guidance

File format (safetensors, no pickles): `states (N, L, D)`, `mask (N, L) bool`,
`null_states (L, D)`, `null_mask (L,) bool`; metadata `captions` is the JSON list of the N
captions in row order. The empty caption "" is the null embedding and is not a row.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file

from lumiere_jax.text.t5_weights import read_safetensors
from lumiere_jax.text.tokenizers import Tokenizer, _as_text_list

EncodeFn = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]
FORMAT = "lumiere_jax.text_embedding_cache.v1"


def make_encode_fn(encoder: nn.Module, params: Any, tokenizer: Tokenizer) -> EncodeFn:
    """captions (B,) -> `(states (B, L, D) float32 np, mask (B, L) bool np)`,
    L = tokenizer.max_length.

    `encoder` is a `TextEncoder` or `T5Encoder` (`apply` returns `(states, mask)`); `params`
    is its `'params'` collection (logical-partitioning boxes are removed). One jitted apply
    per batch size. Raises `ValueError` if the tokenizer's ids do not fit the encoder's vocab.
    """
    vocab = getattr(getattr(encoder, "config", None), "vocab_size", None)
    if vocab is not None and tokenizer.vocab_size > vocab:
        raise ValueError(f"tokenizer vocab_size {tokenizer.vocab_size} exceeds the encoder's "
                         f"config.vocab_size {vocab}: out-of-range ids would be silently clamped; "
                         "use the tokenizer the encoder was trained with")
    params = nn.meta.unbox(params)
    apply = jax.jit(lambda p, ids, mask: encoder.apply({"params": p}, ids, mask))

    def encode(captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = tokenizer.encode(captions)
        states, mask = apply(params, ids, mask)
        return np.asarray(states, np.float32), np.asarray(mask, bool)

    return encode


def null_embedding(encode_fn: EncodeFn, batch_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The unconditional embedding (empty caption): `(states (B, L, D), mask (B, L))`.

    Encodes B empty captions, so it reuses the compiled shape of a training batch.
    """
    return encode_fn([""] * batch_size)


def drop_to_null(states: jax.Array, mask: jax.Array, null_states: jax.Array,
                 null_mask: jax.Array, key: jax.Array, rate: float,
                 group: int = 1) -> tuple[jax.Array, jax.Array]:
    """Replace each caption by the null embedding with probability `rate` (CFG training).

    `states (B, L, D)`, `mask (B, L)`, `null_states (L, D) | (B, L, D)`, `null_mask (L,) | (B, L)`.
    `group`: each run of `group` consecutive rows is kept or dropped together (B % group == 0).
    """
    if states.ndim != 3 or mask.shape != states.shape[:2]:
        raise ValueError(f"states must be (B, L, D) and mask (B, L), got {states.shape} and "
                         f"{mask.shape}")
    if group < 1 or states.shape[0] % group:
        raise ValueError(f"group={group} must be >= 1 and divide the batch {states.shape[0]}")
    drop = jnp.repeat(jax.random.bernoulli(key, rate, (states.shape[0] // group,)), group)
    null_states = jnp.broadcast_to(null_states, states.shape).astype(states.dtype)
    null_mask = jnp.broadcast_to(null_mask, mask.shape).astype(bool)
    return (jnp.where(drop[:, None, None], null_states, states),
            jnp.where(drop[:, None], null_mask, mask.astype(bool)))


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingCache:
    """Encoder outputs keyed by caption. `states (N, L, D)`, `mask (N, L)`, null `(L, D)`,
    `(L,)`."""

    captions: tuple[str, ...]
    states: np.ndarray
    mask: np.ndarray
    null_states: np.ndarray
    null_mask: np.ndarray

    def __post_init__(self):
        n, length, dim = self.states.shape
        if len(self.captions) != n or self.mask.shape != (n, length):
            raise ValueError(f"EmbeddingCache: {len(self.captions)} captions, states "
                             f"{self.states.shape} and mask {self.mask.shape} disagree "
                             f"(expected N = {n}, mask (N, {length}))")
        if self.null_states.shape != (length, dim) or self.null_mask.shape != (length,):
            raise ValueError(f"EmbeddingCache: null_states {self.null_states.shape} / null_mask "
                             f"{self.null_mask.shape} must be ({length}, {dim}) / ({length},)")
        if len(set(self.captions)) != n or "" in self.captions:
            raise ValueError("EmbeddingCache: captions must be unique and non-empty")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.captions)})

    def __len__(self) -> int:
        return len(self.captions)

    def __contains__(self, caption: str) -> bool:
        return caption == "" or caption in self._index

    def lookup(self, captions: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """captions (B,) (str or UTF-8 bytes; "" = null) -> `(states (B, L, D), mask (B, L))`."""
        captions = _as_text_list(captions)
        missing = [c for c in captions if c not in self]
        if missing:
            raise ValueError(f"{len(missing)} caption(s) not in the embedding cache, e.g. "
                             f"{missing[:3]!r}; rebuild it with build_embedding_cache over the "
                             "dataset")
        rows = np.array([self._index.get(c, -1) for c in captions], np.int64)
        states = np.asarray(self.states[np.maximum(rows, 0)])
        mask = np.asarray(self.mask[np.maximum(rows, 0)])
        is_null = rows < 0
        states[is_null], mask[is_null] = self.null_states, self.null_mask
        return states, mask

    def null(self, batch_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """`(states (B, L, D), mask (B, L))` of the empty caption."""
        return (np.broadcast_to(self.null_states, (batch_size, *self.null_states.shape)),
                np.broadcast_to(self.null_mask, (batch_size, *self.null_mask.shape)))

    def save(self, path: str | os.PathLike) -> None:
        save_file({"states": np.ascontiguousarray(self.states),
                   "mask": np.ascontiguousarray(self.mask),
                   "null_states": np.ascontiguousarray(self.null_states),
                   "null_mask": np.ascontiguousarray(self.null_mask)},
                  str(path),
                  metadata={"format": FORMAT, "captions": json.dumps(list(self.captions))})

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmbeddingCache:
        """Memory-maps the arrays; only looked-up rows are read."""
        from safetensors import safe_open  # header metadata only; arrays come from the memmap

        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not an embedding cache (metadata format "
                             f"{metadata.get('format')!r}, expected {FORMAT!r})")
        tensors = read_safetensors(path)
        missing = sorted({"states", "mask", "null_states", "null_mask"} - set(tensors))
        if missing:
            raise ValueError(f"{path}: embedding cache is missing tensors {missing}")
        return cls(tuple(json.loads(metadata["captions"])), tensors["states"], tensors["mask"],
                   tensors["null_states"], tensors["null_mask"])


def build_embedding_cache(encode_fn: EncodeFn, captions: Sequence[str] | np.ndarray,
                          path: str | os.PathLike | None = None, *, batch_size: int = 32,
                          dtype: Any = np.float32) -> EmbeddingCache:
    """Encode each distinct caption once (fixed batch shape, last batch padded with "").

    `dtype` is the storage dtype (float32 or float16). Saves to `path` when given.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"dtype must be float32 or float16, got {np.dtype(dtype)}")
    unique = tuple(dict.fromkeys(c for c in _as_text_list(captions) if c != ""))
    null_states, null_mask = encode_fn([""] * batch_size)  # same shape as every other call
    chunks_s, chunks_m = [], []
    for start in range(0, len(unique), batch_size):
        chunk = list(unique[start:start + batch_size])
        states, mask = encode_fn(chunk + [""] * (batch_size - len(chunk)))
        chunks_s.append(np.asarray(states[: len(chunk)], dtype))
        chunks_m.append(np.asarray(mask[: len(chunk)], bool))
    _, length, dim = null_states.shape
    cache = EmbeddingCache(
        unique,
        np.concatenate(chunks_s) if chunks_s else np.zeros((0, length, dim), dtype),
        np.concatenate(chunks_m) if chunks_m else np.zeros((0, length), bool),
        np.asarray(null_states[0], dtype), np.asarray(null_mask[0], bool))
    if path is not None:
        cache.save(path)
    return cache
