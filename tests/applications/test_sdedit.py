"""SDEdit against closed forms: an exact oracle, strength -> 0, Gaussian-data correlation.

Gaussian data x0 ~ N(mu, diag(s^2)) has the exact denoiser
E[x0 | x_t] = mu + a s^2 / (a^2 s^2 + sig^2) (x_t - a mu). Every DDIM (eta = 0) step with it
is an increasing affine map per pixel, so the edit is an increasing affine function of
x_t = a x0 + sig eps and corr(edit, x0) = corr(x_t, x0) = a s / sqrt(a^2 s^2 + sig^2)
exactly, at any step count; it falls as the strength (t) grows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.applications import noise_to_strength, sdedit
from lumiere_jax.diffusion.schedules import cosine_schedule

SCHEDULE = cosine_schedule()
SHAPE = (2, 2, 2, 3)                                   # (T, H, W, C) of one tiny video
RNG = np.random.default_rng(0)
MU = RNG.uniform(-0.5, 0.5, SHAPE).astype(np.float32)
STD = RNG.uniform(0.2, 0.6, SHAPE).astype(np.float32)


def gaussian_denoiser(x, t):
    """x0-prediction of the exact denoiser for N(MU, STD^2) videos, x: (B, T, H, W, C)."""
    a, sig = SCHEDULE.alpha_sigma(t)
    a, sig = a[:, None, None, None, None], sig[:, None, None, None, None]
    return MU + a * STD ** 2 / (a ** 2 * STD ** 2 + sig ** 2) * (x - a * MU)


def edit_fn(denoise, prediction="x0", num_steps=8):
    return jax.jit(lambda video, key, strength: sdedit(
        denoise, video, key, strength=strength, schedule=SCHEDULE, num_steps=num_steps,
        sampler="ddim", prediction=prediction, eta=0.0))


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_exact_oracle_returns_its_video_for_any_strength(prediction):
    target = jnp.asarray(RNG.uniform(-1, 1, (3,) + SHAPE).astype(np.float32))

    def oracle(x, t):
        a, sig = SCHEDULE.alpha_sigma(t)
        a, sig = a[:, None, None, None, None], sig[:, None, None, None, None]
        if prediction == "x0":
            return jnp.broadcast_to(target, x.shape)
        return a * (x - a * target) / sig - sig * target       # v = a eps - sig x0

    video = jnp.asarray(RNG.uniform(-1, 1, (3,) + SHAPE).astype(np.float32))
    f = edit_fn(oracle, prediction, num_steps=5)
    for strength in (0.05, 0.4, 1.0):
        np.testing.assert_allclose(f(video, jax.random.key(1), strength), target, atol=1e-4)


def test_small_strength_keeps_the_input():
    video = jnp.asarray(MU + STD * RNG.standard_normal((4,) + SHAPE, dtype=np.float32))
    f = edit_fn(gaussian_denoiser)
    near = np.asarray(f(video, jax.random.key(2), 1e-3))
    far = np.asarray(f(video, jax.random.key(2), 0.9))
    assert np.max(np.abs(near - np.asarray(video))) < 1e-2
    assert np.max(np.abs(far - np.asarray(video))) > 0.2    # the check can fail


def test_gaussian_correlation_falls_with_strength_as_closed_form():
    n = 4096
    x0 = MU + STD * RNG.standard_normal((n,) + SHAPE, dtype=np.float32)
    f = edit_fn(gaussian_denoiser, num_steps=4)
    x0_flat = x0.reshape(n, -1)
    s = STD.reshape(-1)
    mean_corr = []
    for i, strength in enumerate((0.3, 0.6, 0.8, 0.95)):
        out = np.asarray(f(jnp.asarray(x0), jax.random.key(10 + i), strength)).reshape(n, -1)
        corr = np.array([np.corrcoef(out[:, d], x0_flat[:, d])[0, 1] for d in range(s.size)])
        a, sig = (float(v) for v in SCHEDULE.alpha_sigma(strength))
        np.testing.assert_allclose(corr, a * s / np.sqrt(a ** 2 * s ** 2 + sig ** 2), atol=0.03)
        mean_corr.append(corr.mean())
    assert all(hi > lo + 0.05 for hi, lo in zip(mean_corr, mean_corr[1:])), mean_corr


def test_noise_to_strength_is_alpha_x0_plus_sigma_eps():
    video = jnp.asarray(np.broadcast_to(MU, (4096,) + SHAPE))
    x_t = np.asarray(noise_to_strength(video, jax.random.key(3), 0.5, SCHEDULE))
    a, sig = (float(v) for v in SCHEDULE.alpha_sigma(0.5))
    eps = (x_t - a * MU) / sig
    np.testing.assert_allclose(eps.mean(0), 0.0, atol=0.06)
    np.testing.assert_allclose(eps.std(0), 1.0, atol=0.05)


@pytest.mark.parametrize("strength", [0.0, -0.2, 1.5, float("nan"), np.ones(2), "0.5"])
def test_bad_strength(strength):
    video = jnp.zeros((1,) + SHAPE)
    with pytest.raises(ValueError, match="strength"):
        sdedit(gaussian_denoiser, video, jax.random.key(0), strength=strength,
               schedule=SCHEDULE, num_steps=2)
    with pytest.raises(ValueError, match="strength"):
        noise_to_strength(video, jax.random.key(0), strength, SCHEDULE)


def test_bad_video():
    with pytest.raises(ValueError, match="video"):
        sdedit(gaussian_denoiser, jnp.zeros(3), jax.random.key(0), strength=0.5,
               schedule=SCHEDULE, num_steps=2)
