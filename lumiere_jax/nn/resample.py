"""Spatial and temporal down/up-sampling.

Temporal resamplers are learned temporal convolutions initialised as a [1/4, 1/2, 1/4]
smoothing filter (times identity across channels) with replicate ("edge") padding, so
at init a constant sequence stays exactly constant (down: strided smoothing; up: frame
repetition then smoothing = linear interpolation with half-frame centres).

The upsampler computes "repeat each frame twice, then the 3-tap convolution" in
polyphase form: with `u[2t] = u[2t+1] = x[t]`, output frame 2t is `w0 x[t-1] + (w1+w2) x[t]`
and frame 2t+1 is `(w0+w1) x[t] + w2 x[t+1]`, two 2-tap convolutions on the sequence as
it is. Same parameters and function (edge padding of `u` is edge padding of `x`), no
repeated copy, two thirds of the multiply-adds. At the matched step's top level, forward +
backward on XLA:CPU: 22 -> 9 ms under a linear loss, about the same (40-47 ms) under
`sum(sin(.))` (`benchmarks/temporal_layout.py`); in the step's profile the upsampler's
share outside convolutions fell from 2.0% to 1.5%.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange, repeat
from flax.linen.dtypes import promote_dtype

from lumiere_jax.nn.layers import (Dtype, batch_constraint, conv, frames_per_item,
                                   from_pixel_sequences, to_pixel_sequences, zeros_init)

SMOOTHING_TAPS = (0.25, 0.5, 0.25)


def smoothing_filter_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Kernel `(3, C, C)` = taps[k] * identity: channel-wise [1/4, 1/2, 1/4] smoothing."""
    del key
    taps, c_in, c_out = shape
    if taps != len(SMOOTHING_TAPS) or c_in != c_out:
        raise ValueError(f"smoothing init needs shape (3, C, C), got {shape}")
    eye = jnp.eye(c_in, dtype=dtype)
    return jnp.asarray(SMOOTHING_TAPS, dtype)[:, None, None] * eye[None]


class SpatialDownsample(nn.Module):
    """Stride-2 3x3 convolution: `(N, H, W, C)` -> `(N, H/2, W/2, C)`."""

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return conv(x.shape[-1], (3, 3), strides=2, padding=((1, 1), (1, 1)), name="conv",
                    dtype=self.dtype, param_dtype=self.param_dtype)(x)


class SpatialUpsample(nn.Module):
    """Nearest 2x then 3x3 convolution: `(N, H, W, C)` -> `(N, 2H, 2W, C)`."""

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = repeat(x, "n h w c -> n (h h2) (w w2) c", h2=2, w2=2)
        return conv(x.shape[-1], (3, 3), name="conv", dtype=self.dtype,
                    param_dtype=self.param_dtype)(x)


def upsample_sequences(seq: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """`(N, T, C)` -> `(N, 2T, C)`: frames repeated twice, edge-padded, then the 3-tap
    convolution `kernel: (3, C, C)` + `bias: (C,)`, computed in polyphase form."""
    w0, w1, w2 = kernel
    padded = jnp.pad(seq, ((0, 0), (1, 1), (0, 0)), mode="edge")       # (N, T+2, C)
    numbers = ("NWC", "WIO", "NWC")
    even = jax.lax.conv_general_dilated(padded[:, :-1], jnp.stack([w0, w1 + w2]), (1,),
                                        "VALID", dimension_numbers=numbers)
    odd = jax.lax.conv_general_dilated(padded[:, 1:], jnp.stack([w0 + w1, w2]), (1,),
                                       "VALID", dimension_numbers=numbers)
    return rearrange([even, odd], "two n t c -> n (t two) c") + bias


class _UpsampleConv(nn.Module):
    """The upsampler's convolution: parameters exactly those of `conv(C, (3,))` (kernel
    `(3, C, C)` named `(None, 'embed', 'mlp')`, bias `('mlp',)`), applied by
    `upsample_sequences`: `(N, T, C)` -> `(N, 2T, C)`."""

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, seq: jax.Array) -> jax.Array:
        channels = seq.shape[-1]
        kernel = self.param("kernel", nn.with_logical_partitioning(
            smoothing_filter_init, (None, "embed", "mlp")), (3, channels, channels),
            self.param_dtype)
        bias = self.param("bias", nn.with_logical_partitioning(zeros_init, ("mlp",)),
                          (channels,), self.param_dtype)
        seq, kernel, bias = promote_dtype(batch_constraint(seq), kernel, bias,
                                          dtype=self.dtype)
        return upsample_sequences(seq, kernel, bias)


class _TemporalResample(nn.Module):
    """Shared body: `x: (B*T, H, W, C)` with `batch` clips -> resampled along T."""

    batch: int
    factor_up: bool
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        frames = frames_per_item(x, self.batch)
        height, width = x.shape[1], x.shape[2]
        seq = to_pixel_sequences(x, self.batch)
        if self.factor_up:
            seq = _UpsampleConv(self.dtype, self.param_dtype, name="conv")(seq)
        else:
            seq = jnp.pad(seq, ((0, 0), (1, 1), (0, 0)), mode="edge")
            seq = conv(x.shape[-1], (3,), strides=2, padding="VALID",
                       kernel_init=smoothing_filter_init, name="conv", dtype=self.dtype,
                       param_dtype=self.param_dtype)(seq)
        out_frames = frames * 2 if self.factor_up else frames // 2
        assert seq.shape[1] == out_frames, (seq.shape, out_frames)
        return from_pixel_sequences(seq, self.batch, height, width)


class TemporalDownsample(nn.Module):
    """Halves the frame count: `(B*T, H, W, C)` -> `(B*T/2, H, W, C)` (T even)."""

    batch: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if frames_per_item(x, self.batch) % 2:
            raise ValueError(f"temporal downsampling needs an even frame count, got "
                             f"{frames_per_item(x, self.batch)}")
        return _TemporalResample(self.batch, False, self.dtype, self.param_dtype,
                                 name="resample")(x)


class TemporalUpsample(nn.Module):
    """Doubles the frame count: `(B*T, H, W, C)` -> `(B*2T, H, W, C)`."""

    batch: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _TemporalResample(self.batch, True, self.dtype, self.param_dtype, name="resample")(x)
