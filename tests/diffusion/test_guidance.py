"""Classifier-free guidance, clipping / dynamic thresholding and noise augmentation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.guidance import (classifier_free_guidance, clip_x0, dynamic_threshold,
                                            noise_augment, static_clip)
from lumiere_jax.diffusion.schedules import cosine_schedule

B, T, H, W, C, L, D = 2, 3, 4, 4, 3, 5, 6


def _model(x, t, cond):
    """A nonlinear, per-example model of (x, t, cond={'text', 'mask'})."""
    text = jnp.sum(cond["text"] * cond["mask"][..., None], axis=(1, 2))       # (B',)
    return (jnp.tanh(x * (1.0 + t[:, None, None, None, None]) + text[:, None, None, None, None])
            + x ** 2)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, H, W, C), dtype=np.float32)
    t = rng.uniform(size=(B,)).astype(np.float32)
    mask = np.ones((B, L), np.float32)
    mask[:, -2:] = 0
    cond = {"text": rng.standard_normal((B, L, D), dtype=np.float32), "mask": mask}
    null = {"text": np.zeros((1, L, D), np.float32), "mask": np.zeros((1, L), np.float32)}
    return x, t, cond, null


def test_scale_one_is_conditional_model(inputs):
    x, t, cond, null = inputs
    guided = jax.jit(classifier_free_guidance(_model, 1.0))
    np.testing.assert_allclose(guided(x, t, cond, null), jax.jit(_model)(x, t, cond), atol=1e-6)


@pytest.mark.parametrize("scale", [0.0, 3.0, 7.5])
def test_guidance_formula_and_single_batched_call(inputs, scale):
    x, t, cond, null = inputs
    calls = []

    def counting_model(x, t, c):
        calls.append(x.shape[0])
        return _model(x, t, c)

    out = jax.jit(classifier_free_guidance(counting_model, scale))(x, t, cond, null)
    assert calls == [2 * B]  # one traced call on the doubled batch
    null_b = jax.tree.map(lambda n: np.broadcast_to(n, (B,) + n.shape[1:]), null)
    c, u = jax.jit(_model)(x, t, cond), jax.jit(_model)(x, t, null_b)
    np.testing.assert_allclose(out, u + scale * (c - u), atol=1e-5)


def test_guidance_rescale_reference(inputs):
    x, t, cond, null = inputs
    scale, phi = 5.0, 0.7
    out = jax.jit(classifier_free_guidance(_model, scale, rescale=phi))(x, t, cond, null)
    null_b = jax.tree.map(lambda n: np.broadcast_to(n, (B,) + n.shape[1:]), null)
    c, u = (np.asarray(jax.jit(_model)(x, t, c_), np.float64) for c_ in (cond, null_b))
    g = u + scale * (c - u)
    expected = np.empty_like(g)
    for i in range(B):  # Lin et al. 2023, eq. 15-16, per example
        expected[i] = phi * g[i] * c[i].std() / g[i].std() + (1 - phi) * g[i]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_guidance_bad_input(inputs):
    x, t, cond, null = inputs
    with pytest.raises(ValueError):
        classifier_free_guidance(_model, 2.0, rescale=1.5)
    bad_null = {"text": jnp.zeros((3, L, D)), "mask": jnp.zeros((3, L))}
    with pytest.raises(ValueError, match="null_cond"):
        classifier_free_guidance(_model, 2.0)(x, t, cond, bad_null)


def test_static_and_dynamic_threshold_reference():
    x0 = 1.8 * np.random.default_rng(1).standard_normal((3, 4, 8, 8, 3), dtype=np.float32)
    x0[2] *= 0.2  # example 2 mostly inside [-1, 1]: s clamps to 1
    x0 = jnp.asarray(x0)
    np.testing.assert_array_equal(jax.jit(static_clip)(x0), np.clip(np.asarray(x0), -1, 1))
    ref = np.empty(x0.shape, np.float32)
    for i, xi in enumerate(np.asarray(x0)):
        s = max(np.quantile(np.abs(xi), 0.995), 1.0)
        ref[i] = np.clip(xi, -s, s) / s
    out = jax.jit(dynamic_threshold)(x0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(out))) <= 1.0 + 1e-6
    with pytest.raises(ValueError):
        clip_x0(x0, "soft")


def test_noise_augment_levels_and_statistics():
    schedule = cosine_schedule()
    x = jnp.asarray(np.broadcast_to(
        np.linspace(-1, 1, 16, dtype=np.float32)[:, None, None, None, None], (16, 2, 8, 8, 3)))
    augment = jax.jit(lambda x, k, t=None: noise_augment(x, k, schedule, 0.6, t=t))
    noisy, t_aug = augment(x, jax.random.key(2))
    assert t_aug.shape == (16,) and noisy.shape == x.shape
    t_aug = np.asarray(t_aug)
    assert t_aug.min() >= 0.0 and t_aug.max() <= 0.6
    assert t_aug.std() > 0.05  # levels differ per example
    # Closed-form cosine: alpha ~ cos(pi t / 2), sigma ~ sin(pi t / 2) (within 1e-3).
    a, s = np.cos(np.pi * t_aug / 2), np.sin(np.pi * t_aug / 2)
    xs = np.asarray(x[:, 0, 0, 0, 0])
    resid = np.asarray(noisy).reshape(16, -1) - (a * xs)[:, None]
    np.testing.assert_allclose(resid.mean(1), 0.0, atol=5 * s.max() / np.sqrt(384) + 2e-3)
    np.testing.assert_allclose(resid.std(1), s, rtol=0.2, atol=2e-3)
    # A fixed level at sampling time.
    noisy_fixed, t_fixed = augment(x, jax.random.key(3), 0.25)
    np.testing.assert_allclose(t_fixed, 0.25)
    with pytest.raises(ValueError):
        noise_augment(x, jax.random.key(3), schedule, max_t=1.5)
