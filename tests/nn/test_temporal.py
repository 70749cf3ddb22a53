"""`TemporalConvBlock`'s spatial reach, read off its Jacobian: without `spatial_conv` every
output pixel depends on its own pixel's sequence only; with it, on the 3x3 neighbourhood
of one spatial conv."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from lumiere_jax.nn.temporal import TemporalConvBlock

BATCH, FRAMES, SIZE, CHANNELS = 1, 6, 12, 8


def perturbed_params(block, x, seed):
    """Init, then Gaussian noise on every weight (the zero-initialised ones included)."""
    params = nn.meta.unbox(block.init(jax.random.key(0), x))
    rng = np.random.default_rng(seed)
    flat = {p: v + 0.3 * rng.standard_normal(v.shape).astype(v.dtype)
            for p, v in traverse_util.flatten_dict(params).items()}
    return traverse_util.unflatten_dict(flat)


def reach(spatial_conv: bool, out_frame: int, out_pixel: tuple[int, int]) -> np.ndarray:
    """`(T, H, W)`: max |d out[out_frame, out_pixel, :] / d x[t, h, w, :]|."""
    block = TemporalConvBlock(BATCH, kernel_size=3, norm_groups=4, spatial_conv=spatial_conv)
    x = jax.random.normal(jax.random.key(1), (BATCH * FRAMES, SIZE, SIZE, CHANNELS))
    params = perturbed_params(block, x, seed=2)
    i, j = out_pixel
    jac = jax.jacrev(lambda v: block.apply(params, v)[out_frame, i, j])(x)  # (C, BT, H, W, C)
    return np.asarray(jnp.abs(jac).max(axis=(0, 4)))


@pytest.mark.parametrize("spatial_conv", [False, True])
def test_block_reaches_its_pixel_or_its_3x3_neighbourhood(spatial_conv):
    out_frame, (i, j) = 2, (5, 6)
    spatial = reach(spatial_conv, out_frame, (i, j)).max(axis=0)  # (H, W), over all frames
    hh, ww = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    own = (hh == i) & (ww == j)
    near = (np.abs(hh - i) <= 1) & (np.abs(ww - j) <= 1)
    assert spatial[own] > 0.1
    if not spatial_conv:  # per-pixel sequences: no other pixel enters at all
        assert spatial[~own].max() == 0.0
    else:  # the conv reaches the 3x3 neighbourhood; beyond it only the per-frame
        # GroupNorm statistics couple pixels, far more weakly
        assert spatial[near].min() > 10 * spatial[~near].max(), (spatial[near].min(),
                                                                 spatial[~near].max())


def test_space_time_features_match_a_numpy_loop():
    from lumiere_jax.nn.embeddings import space_time_features
    frames, height, width, freqs = 3, 4, 5, 2
    got = np.asarray(space_time_features(frames, height, width, freqs))
    assert got.shape == (frames, height, width, 3 + 6 * freqs)
    for t in range(frames):
        for h in range(height):
            for w in range(width):
                c = [(t + 0.5) / frames * 2 - 1, (h + 0.5) / height * 2 - 1,
                     (w + 0.5) / width * 2 - 1]
                angles = [np.pi * 2 ** k * v for v in c for k in range(freqs)]
                want = c + [np.sin(a) for a in angles] + [np.cos(a) for a in angles]
                np.testing.assert_allclose(got[t, h, w], want, atol=1e-5)


def test_text_layout_field_says_where_and_when_not_just_what():
    """Zero at init; trained (perturbed), the change a different text makes varies over
    frames and pixels, which a per-channel scale / shift cannot do."""
    from lumiere_jax.nn.temporal import TextLayoutField
    field = TextLayoutField(FRAMES, SIZE, SIZE, features=2 * CHANNELS, hidden=16)
    emb = jax.random.normal(jax.random.key(3), (2, 32))
    init = nn.meta.unbox(field.init(jax.random.key(0), emb))
    assert float(jnp.abs(field.apply(init, emb)).max()) == 0.0
    params = perturbed_params(field, emb, seed=4)
    out = np.asarray(field.apply(params, emb))  # (2, T, H, W, 2C)
    assert out.shape == (2, FRAMES, SIZE, SIZE, 2 * CHANNELS)
    change = out[1] - out[0]
    spread_over_frames = change.std(axis=0).mean()
    spread_over_pixels = change.std(axis=(1, 2)).mean()
    assert spread_over_frames > 0.1 * np.abs(change).mean()
    assert spread_over_pixels > 0.1 * np.abs(change).mean()

