"""Spatial and temporal down/up-sampling.

Temporal resamplers are learned temporal convolutions initialised as a [1/4, 1/2, 1/4]
smoothing filter (times identity across channels) with replicate ("edge") padding, so
at init a constant sequence stays exactly constant (down: strided smoothing; up: frame
repetition then smoothing = linear interpolation with half-frame centres).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import repeat

from lumiere_jax.nn.layers import (Dtype, conv, frames_per_item, from_pixel_sequences,
                                   to_pixel_sequences)

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
            seq = repeat(seq, "n t c -> n (t two) c", two=2)
        seq = jnp.pad(seq, ((0, 0), (1, 1), (0, 0)), mode="edge")
        seq = conv(x.shape[-1], (3,), strides=1 if self.factor_up else 2, padding="VALID",
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
