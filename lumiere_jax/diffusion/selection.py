"""Best of K: sample several candidates per item and keep the one a scorer likes best.

An inference-time way to follow the prompt more often without retraining (DALL-E 1
reranked its samples with CLIP; Ramesh et al. 2021, sec. 2.5). The pipeline samples K
base clips per prompt in one batch and keeps the one the critic scores highest against
the prompt (`SamplingConfig.base_candidates`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange

__all__ = ["repeat_candidates", "best_of"]


def repeat_candidates(x: jax.Array, k: int) -> jax.Array:
    """(B, ...) -> (B*K, ...): item b's K copies are rows b*K ... b*K + K - 1."""
    return jnp.repeat(x, k, axis=0)


def best_of(candidates: jax.Array, scores: jax.Array, k: int) -> jax.Array:
    """candidates (B*K, ...) laid out as `repeat_candidates` lays out items, scores (B*K,)
    -> (B, ...): each item's highest-scoring candidate (the first one on a tie)."""
    grouped = rearrange(candidates, "(b k) ... -> b k ...", k=k)
    best = jnp.argmax(rearrange(scores, "(b k) -> b k", k=k), axis=1)
    return grouped[jnp.arange(grouped.shape[0]), best]
