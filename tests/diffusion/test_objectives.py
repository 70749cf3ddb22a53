"""Parametrization conversions and the loss, against closed forms for Gaussian data."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.objectives import (PREDICTIONS, convert, diffusion_loss, eps_to_x0,
                                              from_x0_eps, loss_weight, to_x0_eps, v_to_eps,
                                              v_to_x0, x0_eps_to_v, x0_to_eps)
from lumiere_jax.diffusion.schedules import cosine_schedule

SCHEDULE = cosine_schedule()


@jax.jit
def _setup_jit(x0, eps, t):
    alpha, sigma = SCHEDULE.alpha_sigma(t)
    a, s = alpha[:, None, None, None], sigma[:, None, None, None]
    return x0, eps, a * x0 + s * eps, alpha, sigma, a, s


def _setup(seed=0, shape=(6, 3, 4, 2)):
    rng = np.random.default_rng(seed)
    x0, eps = (rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    return _setup_jit(x0, eps, rng.uniform(0.05, 0.95, shape[:1]).astype(np.float32))


def test_to_x0_eps_closed_forms():
    x0, eps, x_t, alpha, sigma, a, s = _setup()
    v = a * eps - s * x0  # definition of v (Salimans & Ho 2022)
    both = jax.jit(to_x0_eps, static_argnames="prediction")
    for prediction, output in (("eps", eps), ("v", v), ("x0", x0)):
        x0_hat, eps_hat = both(output, x_t, alpha, sigma, prediction=prediction)
        np.testing.assert_allclose(x0_hat, x0, atol=2e-4, err_msg=prediction)
        np.testing.assert_allclose(eps_hat, eps, atol=2e-4, err_msg=prediction)
        np.testing.assert_allclose(from_x0_eps(x0, eps, alpha, sigma, prediction), output,
                                   atol=1e-6, err_msg=prediction)
    np.testing.assert_allclose(eps_to_x0(eps, x_t, alpha, sigma), x0, atol=2e-4)
    np.testing.assert_allclose(x0_to_eps(x0, x_t, alpha, sigma), eps, atol=2e-4)
    np.testing.assert_allclose(v_to_x0(v, x_t, alpha, sigma), x0, atol=2e-4)
    np.testing.assert_allclose(v_to_eps(v, x_t, alpha, sigma), eps, atol=2e-4)
    np.testing.assert_allclose(x0_eps_to_v(x0, eps, alpha, sigma), v, atol=1e-6)


@pytest.mark.parametrize("src,dst", list(itertools.permutations(PREDICTIONS, 2)))
def test_conversions_round_trip(src, dst):
    x0, eps, x_t, alpha, sigma, a, s = _setup(seed=1)
    output = from_x0_eps(x0, eps, alpha, sigma, src)
    conv = jax.jit(convert, static_argnames=("source", "target"))
    there = conv(output, x_t, alpha, sigma, source=src, target=dst)
    back = conv(there, x_t, alpha, sigma, source=dst, target=src)
    np.testing.assert_allclose(back, output, atol=5e-4)


def test_min_snr_weights_closed_form():
    log_snr = jnp.array([-6.0, 0.0, np.log(5.0), 3.0, 8.0])
    snr = np.exp(np.asarray(log_snr, np.float64))
    m = np.minimum(snr, 5.0)
    np.testing.assert_allclose(loss_weight(log_snr, "x0", "min_snr"), m, rtol=1e-5)
    np.testing.assert_allclose(loss_weight(log_snr, "eps", "min_snr"), m / snr, rtol=1e-5)
    np.testing.assert_allclose(loss_weight(log_snr, "v", "min_snr"), m / (snr + 1), rtol=1e-5)
    np.testing.assert_allclose(loss_weight(log_snr, "v", "plain"), 1.0)


# Gaussian data x0 ~ N(mu, diag(s^2)): E[x0 | x_t] = mu + a s^2 / (a^2 s^2 + sig^2) (x_t - a mu),
# posterior variance s^2 sig^2 / (a^2 s^2 + sig^2). The optimal denoiser's x0-MSE is the
# posterior variance; its eps-MSE is snr times that, its v-MSE (snr + 1) times that.
MU = jnp.linspace(-0.5, 0.5, 8)
STD = jnp.linspace(0.3, 1.0, 8)


def _gaussian_denoiser(prediction):
    def denoise(x_t, t):
        a, sig = SCHEDULE.alpha_sigma(t)
        a, sig = a[:, None], sig[:, None]
        x0 = MU + a * STD ** 2 / (a ** 2 * STD ** 2 + sig ** 2) * (x_t - a * MU)
        eps = (x_t - a * x0) / sig
        return {"x0": x0, "eps": eps, "v": a * eps - sig * x0}[prediction]
    return denoise


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("weighting", ["plain", "min_snr"])
def test_loss_of_optimal_denoiser_is_posterior_variance(prediction, weighting):
    t0 = 0.4
    a, sig = (float(v) for v in SCHEDULE.alpha_sigma(t0))
    snr = a ** 2 / sig ** 2
    post_var = float(np.mean(np.asarray(STD) ** 2 * sig ** 2
                             / (a ** 2 * np.asarray(STD) ** 2 + sig ** 2)))
    factor = {"x0": 1.0, "eps": snr, "v": snr + 1.0}[prediction]
    expected = post_var * (min(snr, 5.0) if weighting == "min_snr" else factor)

    x0 = MU + STD * np.random.default_rng(3).standard_normal((8192, 8), dtype=np.float32)

    @jax.jit
    def run(key_loss):
        return diffusion_loss(_gaussian_denoiser(prediction), x0, key_loss, SCHEDULE, prediction,
                              weighting, gamma=5.0, t=jnp.full((8192,), t0))

    loss = run(jax.random.key(3))
    assert float(loss) == pytest.approx(expected, rel=0.04)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_loss_zero_for_exact_oracle(prediction):
    point = jnp.array([0.3, -0.7, 0.1])

    def oracle(x_t, t):
        a, sig = SCHEDULE.alpha_sigma(t)
        a, sig = a[:, None], sig[:, None]
        eps = (x_t - a * point) / sig
        return {"x0": jnp.broadcast_to(point, x_t.shape), "eps": eps,
                "v": a * eps - sig * point}[prediction]

    x0 = jnp.broadcast_to(point, (64, 3))
    loss = jax.jit(lambda k: diffusion_loss(oracle, x0, k, SCHEDULE, prediction))(jax.random.key(0))
    assert float(loss) < 1e-6
    # ... and a wrong denoiser has a clearly positive loss.
    wrong = jax.jit(lambda k: diffusion_loss(lambda x, t: jnp.zeros_like(x), x0, k, SCHEDULE,
                                             prediction))(jax.random.key(0))
    assert float(wrong) > 1e-2


def test_loss_gradient_flows():
    x0 = jnp.asarray(np.random.default_rng(0).standard_normal((4, 2, 4, 4, 3), dtype=np.float32))

    @jax.jit
    @jax.grad
    def loss(w):
        return diffusion_loss(lambda x, t: w * x, x0, jax.random.key(1), SCHEDULE, "v", "min_snr")

    g = loss(1.0)
    assert np.isfinite(float(g)) and float(g) != 0.0


@pytest.mark.parametrize("kwargs", [dict(prediction="score"), dict(weighting="p2"),
                                    dict(weighting="min_snr", gamma=0.0)])
def test_loss_bad_input(kwargs):
    with pytest.raises(ValueError):
        diffusion_loss(lambda x, t: x, jnp.zeros((2, 3)), jax.random.key(0), SCHEDULE, **kwargs)


@pytest.mark.parametrize("power", [1.0, 3.0])
def test_sample_times_follow_their_closed_form_cdf(power):
    """t = 1 - (1 - u)^p has CDF 1 - (1 - x)^(1/p); Kolmogorov-Smirnov distance of 20000
    draws well under the 1% critical value 1.63 / sqrt(n)."""
    from lumiere_jax.diffusion.objectives import sample_times

    n = 20000
    t = np.sort(np.asarray(sample_times(jax.random.key(0), n, power), np.float64))
    cdf = 1.0 - (1.0 - t) ** (1.0 / power)
    ecdf = np.arange(1, n + 1) / n
    assert np.max(np.abs(ecdf - cdf)) < 1.63 / np.sqrt(n)
    assert 0.0 <= t.min() and t.max() <= 1.0
    if power > 1:  # most of the mass at high noise: P(t > 0.7) = 0.3^(1/3) ~ 0.67
        assert abs(np.mean(t > 0.7) - 0.3 ** (1.0 / power)) < 0.02
