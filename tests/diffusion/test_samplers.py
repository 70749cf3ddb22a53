"""Samplers against closed forms.

Gaussian data x0 ~ N(mu, diag(s^2)) has the optimal denoiser
E[x0 | x_t] = mu + a s^2 / (a^2 s^2 + sig^2) (x_t - a mu), and its probability-flow ODE maps
x_1 to mu + s (x_1 - a_1 mu) / sqrt(a_1^2 s^2 + sig_1^2) exactly.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.samplers import replacement_hook, sample, sampling_times
from lumiere_jax.diffusion.schedules import cosine_schedule, ddpm_betas, discrete_schedule

SCHEDULE = cosine_schedule()
D = 8
MU = np.linspace(-0.8, 0.8, D).astype(np.float32)
STD = np.linspace(0.3, 1.0, D).astype(np.float32)


def gaussian_denoiser(prediction, schedule=SCHEDULE):
    """The optimal denoiser for N(MU, diag(STD^2)) data, x: (B, D), as eps / v / x0 output."""
    def denoise(x, t):
        a, sig = schedule.alpha_sigma(t)
        a, sig = a[:, None], sig[:, None]
        x0 = MU + a * STD ** 2 / (a ** 2 * STD ** 2 + sig ** 2) * (x - a * MU)
        eps = (x - a * x0) / sig
        return {"x0": x0, "eps": eps, "v": a * eps - sig * x0}[prediction]
    return denoise


def point_oracle(point, prediction):
    """Exact denoiser for data that is a single point."""
    def denoise(x, t):
        a, sig = SCHEDULE.alpha_sigma(t)
        a, sig = a[:, None], sig[:, None]
        eps = (x - a * point) / sig
        x0 = jnp.broadcast_to(point, x.shape)
        return {"x0": x0, "eps": eps, "v": a * eps - sig * x0}[prediction]
    return denoise


def normal(seed, shape):
    """Test inputs from NumPy (no per-shape XLA compile of a JAX RNG)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def run(denoise_fn, x, key, **kw):
    return jax.jit(lambda x, k: sample(denoise_fn, x, k, schedule=SCHEDULE, **kw))(x, key)


N = 4096
# (sampler, prediction, steps, eta, tolerance on |std / s - 1|); mean tolerance 0.05 absolute
# (about 3 standard errors at N = 4096). The std tolerance covers sampling error (~1.1 %)
# plus the discretization error of that many steps.
CASES = [
    ("ddim", "x0", 100, 0.0, 0.05),
    ("ddim", "v", 100, 1.0, 0.08),
    ("ddpm", "eps", 100, 0.0, 0.08),
    ("dpmpp_2m", "v", 20, 0.0, 0.05),
]


@pytest.mark.parametrize("sampler,prediction,steps,eta,std_tol", CASES)
def test_gaussian_data_reproduces_mean_and_std(sampler, prediction, steps, eta, std_tol):
    x1 = normal(0, (N, D))
    out = np.asarray(run(gaussian_denoiser(prediction), x1, jax.random.key(1), sampler=sampler,
                         num_steps=steps, prediction=prediction, eta=eta))
    np.testing.assert_allclose(out.mean(0), MU, atol=0.05)
    np.testing.assert_allclose(out.std(0) / STD, 1.0, atol=std_tol)


def test_discrete_ddpm_schedule_and_bfloat16():
    """The DDPM linear-beta schedule drives the samplers too; bf16 inputs stay bf16."""
    schedule = discrete_schedule(ddpm_betas("linear", 1000))
    x1 = normal(20, (N, D)).astype(jnp.bfloat16)
    f = jax.jit(lambda x, k: sample(gaussian_denoiser("eps", schedule), x, k, schedule=schedule,
                                    sampler="dpmpp_2m", num_steps=50, prediction="eps"))
    out = f(x1, jax.random.key(21))
    assert out.dtype == jnp.bfloat16
    out = np.asarray(out, np.float32)
    np.testing.assert_allclose(out.mean(0), MU, atol=0.05)
    np.testing.assert_allclose(out.std(0) / STD, 1.0, atol=0.06)


def test_sdedit_start_from_noisy_data():
    """Starting at t_start = 0.5 from noised real samples also lands on N(mu, s^2)."""
    x0 = MU + STD * normal(2, (N, D))
    a, sig = (float(v) for v in SCHEDULE.alpha_sigma(0.5))
    x_start = a * x0 + sig * normal(102, (N, D))
    out = np.asarray(run(gaussian_denoiser("eps"), x_start, jax.random.key(3), sampler="ddpm",
                         num_steps=50, prediction="eps", t_start=0.5))
    np.testing.assert_allclose(out.mean(0), MU, atol=0.05)
    np.testing.assert_allclose(out.std(0) / STD, 1.0, atol=0.08)
    # It is an edit, not a fresh sample. Ancestral sampling from x_t draws from p(x0 | x_t),
    # so output and original are independent given x_t and corr = Var(E[x0|x_t]) / s^2
    # = a^2 s^2 / (a^2 s^2 + sig^2). (Independent outputs would give |corr| ~ 0.016.)
    corr = np.array([np.corrcoef(out[:, i], np.asarray(x0)[:, i])[0, 1] for i in range(D)])
    np.testing.assert_allclose(corr, a ** 2 * STD ** 2 / (a ** 2 * STD ** 2 + sig ** 2), atol=0.06)


@pytest.fixture(scope="module")
def ode_solutions():
    x1 = normal(4, (512, D))
    a1, s1 = (float(v) for v in SCHEDULE.alpha_sigma(1.0))
    exact = MU + STD * (np.asarray(x1) - a1 * MU) / np.sqrt(a1 ** 2 * STD ** 2 + s1 ** 2)
    f = jax.jit(lambda x, k, sampler, steps: sample(
        gaussian_denoiser("v"), x, k, schedule=SCHEDULE, sampler=sampler, num_steps=steps),
        static_argnums=(2, 3))
    rmse = {}
    for sampler, steps in (("ddim", 20), ("ddim", 40), ("ddim", 80), ("dpmpp_2m", 20)):
        out = np.asarray(f(x1, jax.random.key(5), sampler, steps))
        rmse[sampler, steps] = float(np.sqrt(np.mean((out - exact) ** 2)))
    return rmse


def test_deterministic_samplers_converge_to_exact_ode_map(ode_solutions):
    rmse = ode_solutions
    # DDIM is a first-order ODE solver: doubling the steps halves the error.
    assert 1.7 < rmse["ddim", 40] / rmse["ddim", 80] < 2.3
    assert 1.7 < rmse["ddim", 20] / rmse["ddim", 40] < 2.3
    assert rmse["ddim", 80] < 0.02
    # DPM-Solver++(2M) is second order: far more accurate at the same step count.
    assert rmse["dpmpp_2m", 20] < 0.1 * rmse["ddim", 20]


@pytest.mark.parametrize("sampler,steps", [("ddim", 1), ("ddim", 7), ("dpmpp_2m", 7)])
@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_deterministic_sampler_with_exact_oracle_returns_point(sampler, steps, prediction):
    point = jnp.array([0.7, -0.2, 0.05, -0.9])
    x = normal(6, (3, 4))
    f = jax.jit(lambda x, t_start: sample(point_oracle(point, prediction), x, jax.random.key(7),
                                          schedule=SCHEDULE, sampler=sampler, num_steps=steps,
                                          prediction=prediction, t_start=t_start, eta=0.0))
    for t_start in (1.0, 0.3):
        # eps-prediction at t = 1 divides by alpha(1) = 5.5e-4: allow for float32 cancellation.
        np.testing.assert_allclose(f(x, t_start), np.broadcast_to(point, (3, 4)), atol=2e-3)


def test_ddim_eta_one_equals_ddpm_posterior():
    x1 = normal(8, (64, D))
    kw = dict(num_steps=30, prediction="v")
    a = run(gaussian_denoiser("v"), x1, jax.random.key(9), sampler="ddim", eta=1.0, **kw)
    b = run(gaussian_denoiser("v"), x1, jax.random.key(9), sampler="ddpm", **kw)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_compiles_once_per_shape():
    traces = []

    def denoise(x, t):
        traces.append(x.shape)  # Python side effect: runs once per trace
        return 0.5 * x * (1.0 - t[:, None, None, None, None])

    @functools.partial(jax.jit, static_argnames="sampler")
    def f(x, key, t_start, eta, sampler):
        return sample(denoise, x, key, schedule=SCHEDULE, sampler=sampler, num_steps=12,
                      t_start=t_start, eta=eta)

    x = jnp.ones((2, 4, 8, 8, 3))
    for i, (t_start, eta) in enumerate([(1.0, 0.0), (0.6, 0.0), (0.3, 1.0), (1.0, 0.5)]):
        f(x + i, jax.random.key(i), t_start, eta, "ddim").block_until_ready()
    assert len(traces) == 1 and f._cache_size() == 1
    f(jnp.ones((2, 8, 8, 8, 3)), jax.random.key(0), 1.0, 0.0, "ddim")
    assert len(traces) == 2 and f._cache_size() == 2


def test_replacement_hook_keeps_known_region():
    known_value = 0.25
    x1 = normal(10, (256, D))
    mask = jnp.zeros((D,)).at[0].set(1.0)
    known = jnp.full((256, D), known_value)
    kw = dict(sampler="ddim", num_steps=40, prediction="x0")
    hooked = np.asarray(run(gaussian_denoiser("x0"), x1, jax.random.key(11),
                            step_hook=replacement_hook(known, mask), **kw))
    plain = np.asarray(run(gaussian_denoiser("x0"), x1, jax.random.key(11), **kw))
    np.testing.assert_allclose(hooked[:, 0], known_value, atol=1e-5)
    # The denoiser is independent per dimension, so the other dimensions are untouched.
    np.testing.assert_allclose(hooked[:, 1:], plain[:, 1:], atol=1e-5)


def test_static_and_dynamic_clipping_of_x0():
    point = jnp.array([2.0, 0.5, -3.0])
    x = normal(12, (2, 3))
    kw = dict(sampler="ddim", num_steps=5, prediction="x0")
    static = run(point_oracle(point, "x0"), x, jax.random.key(0), clip="static", **kw)
    np.testing.assert_allclose(static, np.broadcast_to([1.0, 0.5, -1.0], (2, 3)), atol=1e-5)
    dynamic = run(point_oracle(point, "x0"), x, jax.random.key(0), clip="dynamic", **kw)
    s = max(np.quantile(np.abs([2.0, 0.5, -3.0]), 0.995), 1.0)
    np.testing.assert_allclose(dynamic,
                               np.broadcast_to(np.clip([2.0, 0.5, -3.0], -s, s) / s, (2, 3)),
                               atol=1e-5)


def numpy_cosine_log_snr(t, logsnr_min=-15.0, logsnr_max=15.0):
    """The unshifted cosine log-SNR, written out in NumPy (float64)."""
    t_min, t_max = np.arctan(np.exp(-0.5 * logsnr_max)), np.arctan(np.exp(-0.5 * logsnr_min))
    return -2.0 * np.log(np.tan(t_min + np.asarray(t, np.float64) * (t_max - t_min)))


@pytest.mark.parametrize("time_shift", [-2.0, -2 * np.log(4.0), 1.5])
def test_shifted_step_times_have_the_shifted_log_snr(time_shift):
    steps = 16
    ts = np.asarray(sampling_times(SCHEDULE, steps, 1.0, time_shift), np.float64)
    u = np.linspace(1.0, 0.0, steps + 1)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and np.all(np.diff(ts) < 0)
    np.testing.assert_allclose(numpy_cosine_log_snr(ts[1:-1]),
                               numpy_cosine_log_snr(u[1:-1]) + time_shift, atol=2e-3)
    np.testing.assert_array_equal(np.asarray(sampling_times(SCHEDULE, steps)), u.astype(np.float32))
    # a negative shift puts more of the steps at high noise, a positive one fewer
    assert (np.sum(ts > 0.9) > np.sum(u > 0.9)) == (time_shift < 0)


def test_sampler_visits_the_shifted_times():
    seen = []
    def denoise(x, t):
        jax.debug.callback(lambda v: seen.append(float(v[0])), t)
        return jnp.zeros_like(x)
    run(denoise, jnp.zeros((1, 2)), jax.random.key(0), num_steps=6, time_shift=-3.0)
    expected = np.asarray(sampling_times(SCHEDULE, 6, 1.0, -3.0))[:-1]
    np.testing.assert_allclose(sorted(seen, reverse=True), expected, rtol=1e-6)


@pytest.mark.parametrize("kwargs", [
    dict(sampler="euler"), dict(prediction="score"), dict(clip="soft"), dict(num_steps=0),
    dict(num_steps=2.0), dict(t_start=0.0), dict(t_start=1.5), dict(eta=-1.0),
    dict(time_shift=float("nan")),
])
def test_bad_input_raises(kwargs):
    kw = dict(schedule=SCHEDULE, num_steps=4) | kwargs
    with pytest.raises(ValueError):
        sample(lambda x, t: x, jnp.zeros((2, 3)), jax.random.key(0), **kw)
