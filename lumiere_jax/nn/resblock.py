"""Imagen-style ResNet block with time-embedding scale/shift conditioning."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import repeat

from lumiere_jax.nn.layers import Dtype, conv, dense, frames_per_item
from lumiere_jax.nn.norm import group_norm


class ResBlock(nn.Module):
    """`x: (B*T, H, W, C_in)`, `emb: (B, E)` -> `(B*T, H, W, features)`.

    The embedding is shared by the T frames of an item (T = leading size / B).
    """

    features: int
    norm_groups: int = 32
    dropout: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array, train: bool = False) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        frames = frames_per_item(x, emb.shape[0])
        h = group_norm(x.shape[-1], self.norm_groups, name="norm_0", silu=True, **kw)(x)
        h = conv(self.features, (3, 3), name="conv_0", **kw)(h)
        scale_shift = dense(2 * self.features, name="emb_proj", **kw)(nn.silu(emb))
        scale_shift = repeat(scale_shift, "b c -> (b t) c", t=frames)
        scale, shift = jnp.split(scale_shift, 2, axis=-1)
        # silu(norm(h) * (1 + scale) + shift), one fused op
        h = group_norm(self.features, self.norm_groups, name="norm_1", silu=True, **kw)(
            h, scale, shift)
        h = nn.Dropout(self.dropout)(h, deterministic=not train)
        h = conv(self.features, (3, 3), name="conv_1", **kw)(h)
        if x.shape[-1] != self.features:
            x = conv(self.features, (1, 1), name="skip", **kw)(x)
        return (x + h) / jnp.sqrt(2.0).astype(h.dtype)
