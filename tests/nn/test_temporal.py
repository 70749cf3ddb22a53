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
