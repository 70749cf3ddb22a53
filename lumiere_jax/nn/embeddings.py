"""Sinusoidal embeddings of scalars (diffusion time, noise level) and positions."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from lumiere_jax.nn.layers import Dtype, dense


def sinusoidal_embedding(values: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """`values: (N,) float` -> `(N, dim)` float32 [sin, cos] features (dim must be even)."""
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(values, jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class ScalarEmbedding(nn.Module):
    """Embeds a per-example scalar in [0, 1] (time or noise level) with an MLP.

    `t: (B,) float` -> `(B, features)`.
    """

    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        h = sinusoidal_embedding(t * 1000.0, self.features).astype(self.dtype)
        h = dense(self.features, name="dense_0", dtype=self.dtype, param_dtype=self.param_dtype)(h)
        h = nn.silu(h)
        return dense(self.features, name="dense_1", dtype=self.dtype,
                     param_dtype=self.param_dtype)(h)
