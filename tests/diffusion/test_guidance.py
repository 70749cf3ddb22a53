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


# --- critic guidance: exact on a two-class Gaussian, where every quantity has a closed form


def _two_class_gaussian(x_t, alpha, sigma, mus, tau):
    """NumPy: for x0 | y ~ N(mus[y], tau^2 I), y uniform on {0, 1}: E[x0 | x_t],
    E[x0 | x_t, y = 1] and log p(y = 1 | x_t), per example. x_t: (B, D); alpha, sigma: (B,)."""
    a, s = alpha[:, None], sigma[:, None]
    var = a ** 2 * tau ** 2 + s ** 2                                    # (B, 1)
    post = [mu + a * tau ** 2 / var * (x_t - a * mu) for mu in mus]     # E[x0 | x_t, y]
    loglik = np.stack([-0.5 * np.sum((x_t - a * mu) ** 2, -1) / var[:, 0] for mu in mus])
    p1 = np.exp(loglik[1] - np.logaddexp(loglik[0], loglik[1]))
    uncond = (1 - p1)[:, None] * post[0] + p1[:, None] * post[1]
    return uncond, post[1], np.log(p1)


def test_critic_guidance_turns_the_exact_denoiser_into_the_exact_conditional_one():
    # Tweedie: E[x0 | x_t, y] = E[x0 | x_t] + sigma^2 / alpha * grad log p(y | x_t), so the
    # unconditional posterior mean guided (scale 1) by the exact log p(y = 1 | x_t) must be
    # the class-1 posterior mean, in every prediction parameterisation.
    from lumiere_jax.diffusion.guidance import critic_guidance
    from lumiere_jax.diffusion.objectives import from_x0_eps, to_x0_eps

    schedule = cosine_schedule(32, 32)
    rng = np.random.default_rng(3)
    mus = [rng.standard_normal(6), rng.standard_normal(6) + 1.0]
    tau = 0.5
    t = np.array([0.2, 0.5, 0.7], np.float32)
    alpha, sigma = (np.asarray(v, np.float64) for v in schedule.alpha_sigma(jnp.asarray(t)))
    x_t = rng.standard_normal((3, 6))

    def exact(x, tt):  # E[x0 | x_t] in JAX, the same closed form as the NumPy one
        a, s = schedule.alpha_sigma(tt)
        a, s = a[:, None], s[:, None]
        var = a ** 2 * tau ** 2 + s ** 2
        post = [mu + a * tau ** 2 / var * (x - a * mu) for mu in map(jnp.asarray, mus)]
        ll = jnp.stack([-0.5 * jnp.sum((x - a * mu) ** 2, -1) / var[:, 0]
                        for mu in map(jnp.asarray, mus)])
        return post, ll

    def log_p1(x, tt):
        _, ll = exact(x, tt)
        return ll[1] - jnp.logaddexp(ll[0], ll[1])

    want_uncond, want_cond, _ = _two_class_gaussian(x_t, alpha, sigma, mus, tau)
    for prediction in ("eps", "v", "x0"):
        def denoise(x, tt):
            post, ll = exact(x, tt)
            p1 = jnp.exp(ll[1] - jnp.logaddexp(ll[0], ll[1]))[:, None]
            x0 = (1 - p1) * post[0] + p1 * post[1]
            a, s = schedule.alpha_sigma(tt)
            return from_x0_eps(x0, (x - a[:, None] * x0) / s[:, None], a, s, prediction)

        x = jnp.asarray(x_t, jnp.float32)
        tt = jnp.asarray(t)
        a, s = schedule.alpha_sigma(tt)
        plain = to_x0_eps(denoise(x, tt), x, a, s, prediction)[0]
        np.testing.assert_allclose(plain, want_uncond, rtol=1e-4, atol=1e-4)
        guided = critic_guidance(denoise, log_p1, schedule, 1.0, prediction, min_alpha=1e-3)
        got = to_x0_eps(guided(x, tt), x, a, s, prediction)[0]
        np.testing.assert_allclose(got, want_cond, rtol=1e-3, atol=1e-3)
        assert np.abs(want_cond - want_uncond).max() > 0.1  # the guidance had work to do
        none = critic_guidance(denoise, log_p1, schedule, 0.0, prediction)
        np.testing.assert_allclose(none(x, tt), denoise(x, tt), rtol=1e-5, atol=1e-5)


def test_critic_guidance_caps_the_step_near_pure_noise_and_checks_its_arguments():
    from lumiere_jax.diffusion.guidance import critic_guidance

    schedule = cosine_schedule(32, 32)
    x = jnp.zeros((1, 4))
    t = jnp.ones((1,))
    guided = critic_guidance(lambda x, t: jnp.zeros_like(x), lambda x, t: jnp.sum(x, -1),
                             schedule, 2.0, "x0", min_alpha=0.05)
    alpha, sigma = (float(v[0]) for v in schedule.alpha_sigma(t))
    assert alpha < 0.05
    np.testing.assert_allclose(guided(x, t), 2.0 * sigma ** 2 / 0.05 * np.ones((1, 4)),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="scale"):
        critic_guidance(None, None, schedule, -1.0, "v")
    with pytest.raises(ValueError, match="min_alpha"):
        critic_guidance(None, None, schedule, 1.0, "v", min_alpha=0.0)
