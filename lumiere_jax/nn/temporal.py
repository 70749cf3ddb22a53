"""Temporal mixing blocks of the STUNet: (2+1)D temporal convolution and attention.

Both are residual with a zero-initialised output projection, so at init they are the
identity and an inflated STUNet reproduces its T2I model frame by frame.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from einops import rearrange, repeat

from lumiere_jax.nn.attention import MultiHeadAttention
from lumiere_jax.nn.embeddings import sinusoidal_embedding, space_time_features
from lumiere_jax.nn.layers import (Dtype, conv, dense, from_pixel_sequences, to_pixel_sequences,
                                   zeros_init)
from lumiere_jax.nn.norm import group_norm


class TemporalConvBlock(nn.Module):
    """Residual 1D convolutions along time (the "1D" of a factorised (2+1)D block).

    `x: (B*T, H, W, C)` -> same. GroupNorm runs per pixel sequence over (T, C) groups.
    `emb: (B, E) | None`: a (time + text) embedding applied as a scale / shift after the
    second norm, through a zero-initialised projection (so the block stays the identity
    at init with or without it).
    `spatial_conv`: a trainable 3x3 convolution per frame first (the "2" of a factorised
    (2+1)D block, as in Pseudo-3D and lumiere-pytorch's `ConvolutionInflationBlock`),
    residual and zero-initialised: `u = x + conv3x3(silu(norm(x)))` feeds the temporal
    convs, the block returns `x + temporal(u)`. Without it every trainable temporal
    weight acts on one pixel's sequence, so content can move between pixels only through
    the frozen spatial layers.
    `text_layout` (needs `emb`): the scale / shift also varies over frames and pixels,
    by a one-hidden-layer field of (emb, frame, row, column) (`TextLayoutField`); a
    global scale / shift cannot say where an object should be in which frame.
    """

    batch: int
    kernel_size: int = 3
    norm_groups: int = 32
    spatial_conv: bool = False
    text_layout: bool = False
    layout_width: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array | None = None) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        channels = x.shape[-1]
        u = x
        if self.spatial_conv:
            s = group_norm(channels, self.norm_groups, name="spatial_norm", silu=True, **kw)(x)
            u = x + conv(channels, (3, 3), name="spatial_conv", kernel_init=zeros_init, **kw)(s)
        seq = to_pixel_sequences(u, self.batch)
        h = group_norm(channels, self.norm_groups, name="norm_0", silu=True, **kw)(seq)
        h = conv(channels, (self.kernel_size,), name="conv_0", **kw)(h)
        h = self._norm_modulate_silu(h, emb, x.shape[1], x.shape[2])
        h = conv(channels, (self.kernel_size,), name="conv_1", kernel_init=zeros_init, **kw)(h)
        return x + from_pixel_sequences(h, self.batch, x.shape[1], x.shape[2])

    def _norm_modulate_silu(self, h: jax.Array, emb: jax.Array | None, height: int,
                            width: int) -> jax.Array:
        """`silu(norm_1(h) * (1 + scale) + shift)` on `h: (B*H*W, T, C)`; the scale / shift
        from `emb` per clip (folded into the fused norm) or, with `text_layout`, per clip,
        frame and pixel (applied after it)."""
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        channels = h.shape[-1]
        norm = functools.partial(group_norm, channels, self.norm_groups, name="norm_1", **kw)
        if emb is None:
            return norm(silu=True)(h)
        scale_shift = dense(2 * channels, name="emb_proj", kernel_init=zeros_init, **kw)(
            nn.silu(emb))
        if not self.text_layout:
            scale, shift = jnp.split(repeat(scale_shift, "b c -> (b n) c", n=height * width),
                                     2, axis=-1)
            return norm(silu=True)(h, scale, shift)
        field = TextLayoutField(h.shape[1], height, width, 2 * channels, self.layout_width,
                                name="layout", **kw)(emb)
        scale_shift = (repeat(scale_shift, "b c -> (b n) 1 c", n=height * width)
                       + rearrange(field, "b t h w c -> (b h w) t c"))
        scale, shift = jnp.split(scale_shift.astype(h.dtype), 2, axis=-1)
        return nn.silu(norm()(h) * (1.0 + scale) + shift)


class TextLayoutField(nn.Module):
    """A conditioned field over a clip: `emb: (B, E)` -> `(B, T, H, W, features)`.

    `dense(silu(dense(silu(emb)) + dense(space_time_features)))`, the output projection
    zero-initialised: what the text says about each frame and place (e.g. where a shape
    moving right should be in frame t), which a per-channel scale / shift cannot say.
    """

    frames: int
    height: int
    width: int
    features: int
    hidden: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, emb: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        positions = space_time_features(self.frames, self.height, self.width).astype(self.dtype)
        h = (dense(self.hidden, name="text", **kw)(nn.silu(emb))[:, None, None, None]
             + dense(self.hidden, name="position", batched=False, use_bias=False, **kw)(
                 positions)[None])
        return dense(self.features, name="out", kernel_init=zeros_init, **kw)(nn.silu(h))


class TemporalAttention(nn.Module):
    """Residual self-attention along time for every pixel, with sinusoidal frame positions.

    `x: (B*T, H, W, C)` -> same.
    """

    batch: int
    num_heads: int
    norm_groups: int = 32
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        channels = x.shape[-1]
        seq = to_pixel_sequences(x, self.batch)
        h = group_norm(channels, self.norm_groups, name="norm", **kw)(seq)
        frames = seq.shape[1]
        positions = sinusoidal_embedding(jnp.arange(frames), channels)[None].astype(h.dtype)
        out = MultiHeadAttention(self.num_heads, name="attention", **kw)(
            h, h, query_bias=positions)
        return x + from_pixel_sequences(out, self.batch, x.shape[1], x.shape[2])
