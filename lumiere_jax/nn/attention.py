"""Multi-head attention through `jax.nn.dot_product_attention` (fast kernels on GPU/TPU).

Three residual uses: spatial self-attention per frame, text cross-attention over all
pixels of a clip, and temporal self-attention per pixel (in `lumiere_jax.nn.temporal`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

from lumiere_jax.nn.layers import Dtype, default_kernel_init, dense, zeros_init
from lumiere_jax.nn.norm import group_norm


class MultiHeadAttention(nn.Module):
    """`queries: (N, S, C)`, `context: (N, L, D)`, `mask: (N, L) bool | None` -> `(N, S, C)`.

    `zero_init_output=True` makes the block an exact no-op at init (for residual use).
    """

    num_heads: int
    zero_init_output: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, queries: jax.Array, context: jax.Array,
                 mask: jax.Array | None = None, query_bias: jax.Array | None = None) -> jax.Array:
        channels = queries.shape[-1]
        if channels % self.num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {self.num_heads}")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        qk_in = queries if query_bias is None else queries + query_bias
        kv_in = context if query_bias is None else context + query_bias
        split = lambda t: rearrange(t, "n s (h d) -> n s h d", h=self.num_heads)
        q = split(dense(channels, name="query", use_bias=False, **kw)(qk_in))
        k = split(dense(channels, name="key", use_bias=False, **kw)(kv_in))
        v = split(dense(channels, name="value", use_bias=False, **kw)(context))
        attn_mask = None if mask is None else rearrange(mask.astype(bool), "n l -> n 1 1 l")
        out = jax.nn.dot_product_attention(q, k, v.astype(q.dtype), mask=attn_mask)
        out = rearrange(out, "n s h d -> n s (h d)")
        out_init = zeros_init if self.zero_init_output else default_kernel_init
        return dense(channels, name="out", kernel_init=out_init, **kw)(out)


class SpatialSelfAttention(nn.Module):
    """Residual self-attention over the pixels of each frame: `(N, H, W, C)` -> same."""

    num_heads: int
    norm_groups: int = 32
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = group_norm(x.shape[-1], self.norm_groups, name="norm", **kw)(x)
        tokens = rearrange(h, "n h w c -> n (h w) c")
        out = MultiHeadAttention(self.num_heads, name="attention", **kw)(tokens, tokens)
        return x + rearrange(out, "n (h w) c -> n h w c", h=x.shape[1])


class TextCrossAttention(nn.Module):
    """Residual cross-attention from every pixel of every frame to the text.

    `x: (B*T, H, W, C)`, `text: (B, L, D)`, `text_mask: (B, L) bool` -> `(B*T, H, W, C)`.
    Frames of one clip share one query sequence, so the text is never repeated per frame.
    """

    num_heads: int
    norm_groups: int = 32
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, text: jax.Array, text_mask: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        batch, height = text.shape[0], x.shape[1]
        h = group_norm(x.shape[-1], self.norm_groups, name="norm", **kw)(x)
        tokens = rearrange(h, "(b t) h w c -> b (t h w) c", b=batch)
        context = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="text_norm",
                               scale_init=nn.with_logical_partitioning(nn.initializers.ones,
                                                                       ("norm",)),
                               bias_init=nn.with_logical_partitioning(zeros_init, ("norm",)))(text)
        out = MultiHeadAttention(self.num_heads, name="attention", **kw)(
            tokens, context.astype(tokens.dtype), text_mask)
        return x + rearrange(out, "b (t h w) c -> (b t) h w c", b=batch, h=height,
                             w=x.shape[2])
