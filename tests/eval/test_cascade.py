"""SSR consistency figures against plain NumPy loops and hand-made videos."""

import numpy as np
import pytest

from lumiere_jax.eval.cascade import (box_downsample, boundary_transitions, psnr, seam_ratio,
                                      ssr_consistency)


def test_psnr_matches_the_textbook_formula():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 3, 4, 4, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-5, 6, a.shape), 0, 255).astype(np.uint8)
    mse = sum((int(x) - int(y)) ** 2 for x, y in zip(a.ravel(), b.ravel())) / a.size
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / mse), rel=1e-12)
    assert psnr(a, a) == float("inf")


def test_box_downsample_is_the_mean_of_each_block():
    rng = np.random.default_rng(1)
    v = rng.integers(0, 256, (2, 3, 8, 6, 3)).astype(np.uint8)
    out = box_downsample(v, (4, 3))
    for n, t, i, j, c in np.ndindex(out.shape):
        assert out[n, t, i, j, c] == pytest.approx(v[n, t, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c].mean())
    with pytest.raises(ValueError, match="whole multiple"):
        box_downsample(v, (3, 3))


def test_boundary_transitions_of_windows_of_4_with_stride_2():
    # windows [0-3] [2-5] [4-7]: starts at 2, 4 (t = 1, 3) and ends at 3, 5 (t = 3, 5)
    across, inside = boundary_transitions(8, 4, 2)
    assert across.tolist() == [1, 3, 5]
    assert inside.tolist() == [0, 2, 4, 6]


def test_seam_ratio_sees_a_jump_at_the_window_boundaries():
    t = 8
    smooth = np.zeros((1, t, 4, 4, 3))
    for f in range(t):
        smooth[0, f] = 10 * f  # the same change at every transition
    assert seam_ratio(smooth, 4, 2) == pytest.approx(1.0)
    jumps = np.array([10, 40, 10, 40, 10, 40, 10])  # +30 at transitions 1, 3, 5
    seams = np.zeros((1, t, 4, 4, 3)) + np.concatenate([[0], np.cumsum(jumps)])[None, :, None,
                                                                             None, None]
    assert seam_ratio(seams, 4, 2) == pytest.approx(4.0)
    assert seam_ratio(seams, 4, 4) == pytest.approx(40 / 20)  # windows [0-3] [4-7]: t = 3
    assert np.isnan(seam_ratio(smooth, 8, 8))  # one window: no boundary


def test_ssr_consistency_of_an_exact_2x_upsampling():
    rng = np.random.default_rng(2)
    low = rng.integers(0, 256, (2, 8, 4, 4, 3)).astype(np.uint8)
    high = low.repeat(2, axis=2).repeat(2, axis=3)
    c = ssr_consistency(low, high, 4, 2)
    assert c["psnr_downsampled_vs_base"] == float("inf")
    assert c["seam_ratio"] == pytest.approx(c["base_seam_ratio"])
    noisy = np.clip(high.astype(int) + rng.integers(-8, 9, high.shape), 0, 255).astype(np.uint8)
    assert 30 < ssr_consistency(low, noisy, 4, 2)["psnr_downsampled_vs_base"] < 60
    with pytest.raises(ValueError, match="same N and T"):
        ssr_consistency(low, high[:, :4], 4, 2)
