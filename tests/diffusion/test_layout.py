"""The layout expert's arithmetic (`diffusion.layout`), against NumPy and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.layout import (layout_denoiser, pool, pooled_input_scale,
                                          switch_at, unpool)
from lumiere_jax.diffusion.schedules import cosine_schedule


def test_pool_and_unpool_match_numpy_loops():
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 12, 3)).astype(np.float32)
    want = np.zeros((2, 3, 2, 3, 3), np.float32)
    for i in range(2):
        for j in range(3):
            want[:, :, i, j] = x[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].mean(axis=(2, 3))
    np.testing.assert_allclose(pool(jnp.asarray(x), 4), want, rtol=1e-5, atol=1e-6)
    up = np.asarray(unpool(jnp.asarray(want), 4))
    for i in range(8):
        for j in range(12):
            np.testing.assert_array_equal(up[:, :, i, j], want[:, :, i // 4, j // 4])


@pytest.mark.parametrize("factor", [2, 4])
def test_pooled_noisy_clip_is_the_shifted_schedules_input(factor):
    """scale * pool(alpha x0 + sigma eps) = alpha_e pool(x0) + sigma_e eps_e, eps_e ~ N(0, I),
    with (alpha_e, sigma_e) the base schedule shifted by 2 log factor, at the same t."""
    base, expert = cosine_schedule(32, 32), cosine_schedule(32 // factor, 32)
    t = jnp.linspace(0.05, 1.0, 9)
    a, s = (np.asarray(v, np.float64) for v in base.alpha_sigma(t))
    a_e, s_e = (np.asarray(v, np.float64) for v in expert.alpha_sigma(t))
    scale = np.asarray(pooled_input_scale(base, t, factor), np.float64)
    np.testing.assert_allclose(scale * a, a_e, rtol=2e-5)
    np.testing.assert_allclose(scale * s / factor, s_e, rtol=2e-5)
    # The mean of factor^2 iid N(0, 1) pixels has standard deviation 1 / factor.
    eps = jax.random.normal(jax.random.key(0), (64, 32, 32, 3))
    assert abs(float(jnp.std(pool(eps, factor))) * factor - 1.0) < 0.02


def test_layout_denoiser_with_an_exact_expert_gives_the_base_target():
    """An expert that returns the true pooled v-target makes the wrapped denoiser return the
    base's true v-target, for a clip that is constant on the pooled blocks."""
    factor, base, expert = 4, cosine_schedule(16, 16), cosine_schedule(4, 16)
    k0, k1 = jax.random.split(jax.random.key(1))
    x0 = unpool(jax.random.uniform(k0, (2, 5, 4, 4, 3), minval=-1, maxval=1), factor)
    eps = jax.random.normal(k1, x0.shape)
    t = jnp.full((2,), 0.87)
    a, s = base.alpha_sigma(t)
    x_t = a[:, None, None, None, None] * x0 + s[:, None, None, None, None] * eps

    def exact_expert(y, t_):
        a_e, s_e = expert.alpha_sigma(t_)
        x0_low = pool(x0, factor)
        eps_e = (y - a_e[:, None, None, None, None] * x0_low) / s_e[:, None, None, None, None]
        return a_e[:, None, None, None, None] * eps_e - s_e[:, None, None, None, None] * x0_low

    out = layout_denoiser(exact_expert, factor, base, expert, "v", "v")(x_t, t)
    want = a[:, None, None, None, None] * eps - s[:, None, None, None, None] * x0
    np.testing.assert_allclose(out, want, atol=2e-5)
    # and in eps form, the base's own noise
    out_eps = layout_denoiser(exact_expert, factor, base, expert, "v", "eps")(x_t, t)
    np.testing.assert_allclose(out_eps, eps, atol=2e-5)


def test_switch_at_runs_the_expert_only_at_or_above_the_threshold():
    high = lambda x, t: x + 1.0
    low = lambda x, t: x - 1.0
    fn = jax.jit(switch_at(0.8, high, low))
    x = jnp.zeros((3, 2))
    for t, want in ((1.0, 1.0), (0.8, 1.0), (0.79, -1.0), (0.1, -1.0)):
        np.testing.assert_array_equal(fn(x, jnp.full((3,), t)), np.full((3, 2), want))
