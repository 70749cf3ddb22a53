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


def space_time_features(frames: int, height: int, width: int,
                        num_freqs: int = 3) -> jax.Array:
    """Fourier features of every (frame, row, column) of a clip: `(T, H, W, 3 + 6 F)`.

    Each coordinate is first mapped to [-1, 1] (cell centres), then given as itself and
    as `sin, cos(pi 2^k c)` for k < `num_freqs`.
    """
    axes = [(jnp.arange(n, dtype=jnp.float32) + 0.5) / n * 2.0 - 1.0
            for n in (frames, height, width)]
    coords = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)  # (T, H, W, 3)
    angles = coords[..., None] * (jnp.pi * 2.0 ** jnp.arange(num_freqs, dtype=jnp.float32))
    angles = angles.reshape(coords.shape[:-1] + (-1,))
    return jnp.concatenate([coords, jnp.sin(angles), jnp.cos(angles)], axis=-1)


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
