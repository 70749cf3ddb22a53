"""Schedules against closed forms: VP identity, monotone finite log-SNR, cosine, DDPM betas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.schedules import (Schedule, cosine_schedule, ddpm_betas,
                                             discrete_schedule, discrete_timesteps)

SCHEDULES = {
    "cosine": cosine_schedule(),
    "cosine_shift_1024_128": cosine_schedule(image_size=1024, base_size=128),
    "cosine_shift_32_64": cosine_schedule(image_size=32, base_size=64),
    "ddpm_linear": discrete_schedule(ddpm_betas("linear", 1000)),
    "ddpm_cosine": discrete_schedule(ddpm_betas("cosine", 1000)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_variance_preserving_monotone_finite(name):
    schedule = SCHEDULES[name]
    t = jnp.linspace(0.0, 1.0, 4001)
    alpha, sigma = schedule.alpha_sigma(t)
    np.testing.assert_allclose(np.asarray(alpha ** 2 + sigma ** 2), 1.0, atol=1e-6)
    lsnr = np.asarray(schedule.log_snr(t), np.float64)
    assert np.all(np.isfinite(lsnr)) and np.all(np.isfinite(alpha)) and np.all(np.isfinite(sigma))
    assert np.all(np.diff(lsnr) < 0), "log-SNR must be strictly decreasing in t"
    # Endpoints: nearly clean at t = 0, nearly pure noise at t = 1.
    assert float(alpha[0]) > 0.99 and float(sigma[-1]) > 0.99


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_time_of_log_snr_inverts_log_snr(name):
    schedule = SCHEDULES[name]
    t = np.linspace(0.002, 0.998, 301, dtype=np.float32)
    back = np.asarray(schedule.time_of_log_snr(schedule.log_snr(t)))
    np.testing.assert_allclose(back, t, atol=2e-4)
    lo, hi = schedule.log_snr(jnp.array([1.0, 0.0]))  # beyond the range: clipped to [0, 1]
    assert float(schedule.time_of_log_snr(lo - 5.0)) == 1.0
    assert float(schedule.time_of_log_snr(hi + 5.0)) == 0.0


def test_cosine_matches_closed_form():
    schedule = cosine_schedule()
    t = np.linspace(0.02, 0.98, 49)
    # alpha = cos(phi), sigma = sin(phi), phi running linearly over [atan(e^-7.5), atan(e^7.5)]
    # (the log-SNR range [-15, 15]); that is pi t / 2 up to ~1e-3.
    lo, hi = math.atan(math.exp(-7.5)), math.atan(math.exp(7.5))
    phi = lo + t * (hi - lo)
    alpha, sigma = schedule.alpha_sigma(jnp.asarray(t))
    np.testing.assert_allclose(np.asarray(alpha), np.cos(phi), atol=2e-6)
    np.testing.assert_allclose(np.asarray(sigma), np.sin(phi), atol=2e-6)
    np.testing.assert_allclose(np.asarray(alpha), np.cos(np.pi * t / 2), atol=1e-3)
    # Endpoints are exactly the clipping range.
    np.testing.assert_allclose(np.asarray(schedule.log_snr(jnp.array([0.0, 1.0]))), [15.0, -15.0],
                               rtol=1e-5)


def test_resolution_shift_is_constant_offset():
    t = jnp.linspace(0.0, 1.0, 101)
    base = cosine_schedule(64, 64).log_snr(t)
    shifted = cosine_schedule(image_size=1024, base_size=128).log_snr(t)
    np.testing.assert_allclose(np.asarray(shifted - base), 2 * math.log(128 / 1024), atol=1e-4)


def test_ddpm_linear_betas_and_alpha_bar():
    betas = ddpm_betas("linear", 1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    alpha_bar, acc = [], 1.0
    for b in betas:  # plain loop reference for alpha_bar_i = prod_{j<=i} (1 - beta_j)
        acc *= 1.0 - b
        alpha_bar.append(acc)
    alpha_bar = np.array(alpha_bar)
    schedule = discrete_schedule(betas)
    idx = np.array([0, 1, 10, 250, 500, 999])
    alpha, _ = schedule.alpha_sigma(jnp.asarray(idx / 999.0))
    np.testing.assert_allclose(np.asarray(alpha) ** 2, alpha_bar[idx], rtol=2e-4, atol=1e-7)
    assert schedule.num_timesteps == 1000


def test_ddpm_cosine_betas_closed_form():
    n, s = 1000, 8e-3
    betas = ddpm_betas("cosine", n)
    f = lambda t: np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    alpha_bar = np.cumprod(1.0 - betas)
    i = np.array([0, 100, 500, 900])
    np.testing.assert_allclose(alpha_bar[i], f((i + 1) / n) / f(0.0), rtol=1e-6)
    assert betas.max() <= 0.999


def test_discrete_timesteps_round_trip():
    idx = np.arange(0, 1000, 37)
    np.testing.assert_array_equal(
        np.asarray(discrete_timesteps(jnp.asarray(idx / 999.0), 1000)), idx)


def test_schedule_is_hashable_static_arg():
    a, b = cosine_schedule(128, 64), cosine_schedule(128, 64)
    assert a == b and hash(a) == hash(b)
    assert hash(discrete_schedule(ddpm_betas("linear", 100)))
    calls = []

    def f(x, schedule):
        calls.append(1)
        return schedule.alpha_sigma(x)[0]

    g = jax.jit(f, static_argnames="schedule")
    g(jnp.float32(0.5), schedule=a)
    g(jnp.float32(0.2), schedule=b)
    assert len(calls) == 1


@pytest.mark.parametrize("make", [
    lambda: Schedule(kind="sigmoid"),
    lambda: Schedule(logsnr_min=5.0, logsnr_max=-5.0),
    lambda: cosine_schedule(image_size=0),
    lambda: ddpm_betas("quadratic", 10),
    lambda: ddpm_betas("linear", 1),
    lambda: ddpm_betas("linear", 10),  # scaled beta_end = 2 > 1
    lambda: discrete_schedule(np.array([0.5, 1.5])),
])
def test_bad_input_raises(make):
    with pytest.raises(ValueError):
        make()
