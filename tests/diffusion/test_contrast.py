"""Caption contrast of time-reversal pairs against NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.contrast import caption_contrast, swap_pairs
from lumiere_jax.diffusion.objectives import per_example_loss
from lumiere_jax.diffusion.schedules import cosine_schedule


def test_swap_pairs_exchanges_rows_two_i_and_two_i_plus_one():
    x = np.arange(6 * 2 * 3).reshape(6, 2, 3)
    want = x[[1, 0, 3, 2, 5, 4]]
    np.testing.assert_array_equal(np.asarray(swap_pairs(jnp.asarray(x))), want)


def test_caption_contrast_is_the_two_way_cross_entropy_above_min_t():
    rng = np.random.default_rng(0)
    own, swapped = rng.uniform(0, 0.1, 8), rng.uniform(0, 0.1, 8)
    t = np.array([0.1, 0.5, 0.79, 0.8, 0.85, 0.9, 0.99, 1.0])
    got = np.asarray(caption_contrast(jnp.asarray(own), jnp.asarray(swapped), jnp.asarray(t),
                                      sharpness=300.0, min_t=0.8))
    p_own = 1.0 / (1.0 + np.exp(-300.0 * (swapped - own)))  # the classifier's P(own caption)
    want = np.where(t >= 0.8, -np.log(p_own), 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_per_example_loss_matches_a_numpy_loop():
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (3, 2, 4, 4, 3)).astype(np.float32)
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    t = np.array([0.2, 0.6, 0.95], np.float32)
    schedule = cosine_schedule(4)
    got = np.asarray(per_example_loss(lambda x, tt: 0.5 * x, jnp.asarray(x0), jax.random.key(0), schedule,
                                      "v", t=jnp.asarray(t), eps=jnp.asarray(eps)))
    alpha, sigma = (np.asarray(a) for a in schedule.alpha_sigma(jnp.asarray(t)))
    for i in range(3):
        x_t = alpha[i] * x0[i] + sigma[i] * eps[i]
        v = alpha[i] * eps[i] - sigma[i] * x0[i]
        assert got[i] == pytest.approx(np.mean((0.5 * x_t - v) ** 2), rel=1e-5)
