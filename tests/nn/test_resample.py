"""Temporal resamplers against a NumPy reference filter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from einops import rearrange

from lumiere_jax.nn.resample import TemporalDownsample, TemporalUpsample

TAPS = np.array([0.25, 0.5, 0.25])


def numpy_smooth(seq: np.ndarray, stride: int) -> np.ndarray:
    """Reference: edge-padded [1/4, 1/2, 1/4] filter along axis 1, then stride."""
    padded = np.concatenate([seq[:, :1], seq, seq[:, -1:]], axis=1)
    out = [sum(TAPS[k] * padded[:, i + k] for k in range(3))
           for i in range(0, seq.shape[1], stride)]
    return np.stack(out, axis=1)


def run(module, clip):
    """clip: (B, T, H, W, C) -> module applied on (B*T, H, W, C) -> (B, T', H, W, C)."""
    x = rearrange(clip, "b t h w c -> (b t) h w c")
    params = module.init(jax.random.key(0), x)
    out = jax.jit(module.apply)(params, x)
    return rearrange(out, "(b t) h w c -> b t h w c", b=clip.shape[0])


@pytest.mark.parametrize("frames", [2, 4, 8])
def test_downsample_halves_and_matches_reference(frames):
    clip = np.random.default_rng(frames).normal(size=(2, frames, 3, 3, 4)).astype(np.float32)
    out = run(TemporalDownsample(batch=2), jnp.asarray(clip))
    assert out.shape == (2, frames // 2, 3, 3, 4)
    np.testing.assert_allclose(out, numpy_smooth(clip, stride=2), atol=1e-6)


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_upsample_doubles_and_matches_reference(frames):
    clip = np.random.default_rng(frames).normal(size=(2, frames, 3, 3, 4)).astype(np.float32)
    out = run(TemporalUpsample(batch=2), jnp.asarray(clip))
    assert out.shape == (2, 2 * frames, 3, 3, 4)
    np.testing.assert_allclose(out, numpy_smooth(np.repeat(clip, 2, axis=1), stride=1), atol=1e-6)


def test_constant_sequences_stay_constant():
    rng = np.random.default_rng(0)
    per_pixel = rng.normal(size=(2, 1, 3, 3, 4)).astype(np.float32)
    clip = jnp.asarray(np.repeat(per_pixel, 8, axis=1))
    down = run(TemporalDownsample(batch=2), clip)
    up = run(TemporalUpsample(batch=2), clip)
    np.testing.assert_allclose(down, np.repeat(per_pixel, 4, axis=1), atol=1e-6)
    np.testing.assert_allclose(up, np.repeat(per_pixel, 16, axis=1), atol=1e-6)


def test_odd_frame_count_is_refused():
    x = jnp.zeros((2 * 3, 2, 2, 4))
    with pytest.raises(ValueError, match="even frame count"):
        TemporalDownsample(batch=2).init(jax.random.key(0), x)
