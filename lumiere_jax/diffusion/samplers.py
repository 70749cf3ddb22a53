"""Samplers as one `lax.scan` over steps: DDPM ancestral, DDIM (eta), DPM-Solver++(2M).

`sample` is a pure function, meant to be called inside `jax.jit`; the denoiser is traced
once (the scan body), so a jitted sampler compiles once per input shape. `num_steps` and
the string options are static; `t_start`, `eta` and every array may be traced, so SDEdit
strengths or eta values change without recompiling.

Time grid: `t_i = t_start * (1 - i / num_steps)`, i = 0..num_steps. The last grid point
t = 0 is treated as clean data (alpha = 1, sigma = 0), so the last step returns the
denoised sample itself, as in DDPM / DDIM / k-diffusion's DPM-Solver++.
"""

from __future__ import annotations

import math

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lumiere_jax.diffusion.guidance import CLIP_MODES, clip_x0
from lumiere_jax.diffusion.objectives import DenoiseFn, bcast, check_prediction, to_x0_eps
from lumiere_jax.diffusion.progress import report_step
from lumiere_jax.diffusion.schedules import Schedule

SAMPLERS = ("ddim", "ddpm", "dpmpp_2m")


class StepInfo(NamedTuple):
    """What a step hook sees about the step that produced `x_next`.

    step: int32 scalar, 0-based step index; t: (B,) time of x_next (0 on the last step);
    alpha, sigma: (B,) noise levels of x_next (1 and 0 on the last step);
    x0: the (clipped) clean-data prediction of this step, x's shape.
    """

    step: jax.Array
    t: jax.Array
    alpha: jax.Array
    sigma: jax.Array
    x0: jax.Array


StepHook = Callable[[jax.Array, StepInfo, jax.Array], jax.Array]


def sampling_times(schedule: Schedule, num_steps: int, t_start: float | jax.Array = 1.0,
                   time_shift: float = 0.0) -> jax.Array:
    """The `num_steps + 1` times a sampler visits, from `t_start` down to 0: `t_start * u`
    for u evenly spaced in [1, 0], each interior u first moved to the time whose log-SNR
    is `log_snr(u) + time_shift` (the grid of a schedule shifted by `time_shift`, read on
    this one). A video's frames share their content, so at a given t a clip shows far
    more of it than one frame does; a negative shift spends more steps at the high noise
    levels where the motion is still undecided."""
    if not math.isfinite(time_shift):
        raise ValueError(f"time_shift={time_shift} must be finite (0: evenly spaced steps).")
    u = jnp.linspace(1.0, 0.0, num_steps + 1, dtype=jnp.float32)
    if time_shift:
        shifted = schedule.time_of_log_snr(schedule.log_snr(u) + time_shift)
        u = jnp.concatenate([u[:1], shifted[1:-1], u[-1:]])
    return jnp.asarray(t_start, jnp.float32) * u


def sample(denoise_fn: DenoiseFn, x_start: jax.Array, key: jax.Array, *, schedule: Schedule,
           sampler: str = "ddim", num_steps: int, prediction: str = "v",
           t_start: float | jax.Array = 1.0, eta: float | jax.Array = 0.0,
           clip: str | None = None, step_hook: StepHook | None = None,
           progress: Callable[[int], None] | None = None,
           time_shift: float = 0.0) -> jax.Array:
    """Run a sampler from `x_start` at time `t_start` down to t = 0; returns the x0 sample.

    denoise_fn(x_t, t) -> output, x_t: (B, ...) float, t: (B,) float32; `prediction`
    says whether output is 'eps', 'v' or 'x0'.
    x_start: (B, ...) float, a sample of x at t_start (N(0, I) for t_start = 1; for SDEdit
      `alpha(t_start) x0 + sigma(t_start) eps`).
    sampler: 'ddim' (eta = 0 deterministic, eta = 1 ancestral), 'ddpm' (ancestral posterior
      sampling), 'dpmpp_2m' (DPM-Solver++ 2M, second order multistep, deterministic).
    clip: None, 'static' ([-1, 1]) or 'dynamic' (Imagen thresholding) on each x0 prediction.
    step_hook(x_next, info: StepInfo, key) -> x_next: called after every step, e.g. for
      replacement conditioning (see `replacement_hook`).
    progress(step) -> None: a host function called once each step has finished, with the
      step index 0 .. num_steps - 1 (e.g. to drive a progress bar; `progress.report_step`:
      the program stays cacheable on a one-device CPU host).
    time_shift: where the steps go (`sampling_times`): 0 spaces them evenly in t; < 0 moves
      them towards high noise (each interior step's log-SNR shifted by this much).
    Returns (B, ...) in x_start's dtype.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r}; expected one of {SAMPLERS}.")
    check_prediction(prediction)
    if clip not in CLIP_MODES:
        raise ValueError(f"clip={clip!r}; expected one of {CLIP_MODES}.")
    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"num_steps={num_steps!r} must be a Python int >= 1 (it is static).")
    if isinstance(t_start, (int, float)) and not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start={t_start} must be in (0, 1] (1 = start from pure noise).")
    if isinstance(eta, (int, float)) and not eta >= 0.0:
        raise ValueError(f"eta={eta} must be >= 0 (0 = deterministic DDIM, 1 = DDPM-like).")
    if x_start.ndim < 1:
        raise ValueError(f"x_start needs a leading batch axis, got shape {x_start.shape}.")

    batch, dtype = x_start.shape[0], x_start.dtype
    ts = sampling_times(schedule, num_steps, t_start, time_shift)      # (S+1,)
    alphas, sigmas = schedule.alpha_sigma(ts)
    alphas = alphas.at[-1].set(1.0)                                     # t = 0: clean data
    sigmas = sigmas.at[-1].set(0.0)
    half_lsnr = 0.5 * schedule.log_snr(ts)                              # lambda = log(a / s)
    h = jnp.maximum(half_lsnr[1:] - half_lsnr[:-1], 1e-12)              # (S,), last unused
    h_prev = jnp.concatenate([h[:1], h[:-1]])
    # A Python eta of 0 is known at trace time: DDIM then draws no noise at all.
    deterministic = isinstance(eta, (int, float)) and eta == 0.0
    eta = jnp.asarray(eta, jnp.float32)

    steps = dict(step=jnp.arange(num_steps, dtype=jnp.int32), t_cur=ts[:-1], t_next=ts[1:],
                 a_cur=alphas[:-1], s_cur=sigmas[:-1], a_next=alphas[1:], s_next=sigmas[1:],
                 h=h, r=h_prev / h, key=jax.random.split(key, num_steps))

    def body(carry, p):
        x, x0_prev = carry
        key_noise, key_hook = jax.random.split(p["key"])
        a_cur, s_cur, a_next, s_next = p["a_cur"], p["s_cur"], p["a_next"], p["s_next"]
        out = denoise_fn(x, jnp.full((batch,), p["t_cur"], jnp.float32))
        x0, eps = to_x0_eps(out.astype(jnp.float32), x.astype(jnp.float32), a_cur, s_cur,
                            prediction)
        if clip is not None:
            x0 = clip_x0(x0, clip)
            eps = (x - a_cur * x0) / s_cur
        if sampler == "ddim":
            # Song et al. 2021, eq. 12 / 16 with alpha_bar = alpha^2.
            c = eta * (s_next / s_cur) * jnp.sqrt(jnp.maximum(1.0 - (a_cur / a_next) ** 2, 0.0))
            x_next = a_next * x0 + jnp.sqrt(jnp.maximum(s_next ** 2 - c ** 2, 0.0)) * eps
            if not deterministic:
                x_next = x_next + c * jax.random.normal(key_noise, x.shape, jnp.float32)
        elif sampler == "ddpm":
            # Posterior q(x_s | x_t, x0) (Kingma et al. 2021, eq. 33-34), x0 predicted.
            a_ts = a_cur / a_next
            s2_ts = jnp.maximum(s_cur ** 2 - a_ts ** 2 * s_next ** 2, 0.0)
            mean = (a_ts * s_next ** 2 / s_cur ** 2) * x + (a_next * s2_ts / s_cur ** 2) * x0
            noise = jax.random.normal(key_noise, x.shape, jnp.float32)
            x_next = mean + jnp.sqrt(s2_ts * s_next ** 2 / s_cur ** 2) * noise
        else:
            # DPM-Solver++(2M) (Lu et al. 2022, alg. 2); first order on the first and last step.
            first_order = (p["step"] == 0) | (p["step"] == num_steps - 1)
            half_r = 0.5 / p["r"]
            d = jnp.where(first_order, x0, (1.0 + half_r) * x0 - half_r * x0_prev)
            x_next = (s_next / s_cur) * x - a_next * jnp.expm1(-p["h"]) * d
            x_next = jnp.where(p["step"] == num_steps - 1, x0, x_next)
        x_next = x_next.astype(dtype)
        if step_hook is not None:
            info = StepInfo(step=p["step"], t=jnp.full((batch,), p["t_next"], jnp.float32),
                            alpha=jnp.full((batch,), a_next), sigma=jnp.full((batch,), s_next),
                            x0=x0.astype(dtype))
            x_next = step_hook(x_next, info, key_hook)
            if x_next.shape != x.shape:
                raise ValueError(f"step_hook returned shape {x_next.shape}; expected {x.shape}.")
            x_next = x_next.astype(dtype)
        if progress is not None:  # the first element ties the call to the finished step
            report_step(progress, p["step"], x_next.reshape(-1)[0])
        # Only the multistep solver carries the previous x0 (float32); the others carry a
        # scalar, so no second video-sized buffer lives across steps.
        return (x_next, x0 if multistep else x0_prev), None

    multistep = sampler == "dpmpp_2m"
    x0_init = jnp.zeros(x_start.shape, jnp.float32) if multistep else jnp.zeros((), jnp.float32)
    (x_final, _), _ = jax.lax.scan(body, (x_start, x0_init), steps)
    return x_final


def replacement_hook(known: jax.Array, mask: jax.Array) -> StepHook:
    """Replacement conditioning: after each step, overwrite the `mask` region with `known`
    noised to the step's level, `mask * (alpha known + sigma eps) + (1 - mask) * x_next`.

    known: x's shape, clean data; mask: broadcastable to x, 1 where `known` is kept.
    """

    def hook(x_next: jax.Array, info: StepInfo, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, x_next.shape, jnp.float32)
        noised = bcast(info.alpha, x_next) * known + bcast(info.sigma, x_next) * noise
        m = jnp.asarray(mask, jnp.float32)
        return (m * noised + (1.0 - m) * x_next).astype(x_next.dtype)

    return hook
