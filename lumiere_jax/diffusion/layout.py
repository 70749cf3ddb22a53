"""The layout expert: a small low-resolution video model for the high-noise steps.

Why: at high noise the base stage decides a clip's layout (where the object is, which way
it moves). The demo STUNet, trained on 2 cores with its T2I weights frozen, never learnt
to take the direction of motion from the prompt, yet it keeps the motion a clip already
shows: a held-out clip noised to t = 0.8 and denoised under its own prompt keeps its
direction 0.97 of the time (pretrained/moving_shapes/README.md). So the first steps,
t >= `until`, go to an expert that only has to draw the layout, at 1 / `factor` of the
resolution, where a step costs about factor^2 less and many more clips fit in training
(eDiff-I's ensemble of expert denoisers, split by noise level; here the experts also
differ in resolution).

The expert is a plain diffusion model of mean-pooled clips. With
`x_t = alpha x0 + sigma eps` at H px, `pool(x_t) = alpha pool(x0) + (sigma / factor) eps'`
with eps' ~ N(0, I) at H / factor px: the pooled clip at log-SNR + 2 log factor, which is
the shifted cosine schedule `cosine_schedule(H / factor, H)` at the *same* t, once scaled
by `1 / sqrt(alpha^2 + sigma^2 / factor^2)` into variance-preserving form. So the expert
trains on pooled clips with that schedule (no full-resolution noise needed), and at
sampling time `layout_denoiser` pools the base's noisy clip, asks the expert for the
pooled clean clip, repeats it back to H px, and answers in the base's parametrization.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from einops import reduce, repeat

from lumiere_jax.diffusion.objectives import bcast, from_x0_eps, to_x0_eps
from lumiere_jax.diffusion.schedules import Schedule

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]


def pool(x: jax.Array, factor: int) -> jax.Array:
    """Mean over `factor x factor` pixel blocks: (..., H, W, C) -> (..., H/f, W/f, C)."""
    return reduce(x, "... (h fh) (w fw) c -> ... h w c", "mean", fh=factor, fw=factor)


def unpool(x: jax.Array, factor: int) -> jax.Array:
    """Each pixel repeated into a `factor x factor` block (pool(unpool(x)) == x)."""
    return repeat(x, "... h w c -> ... (h fh) (w fw) c", fh=factor, fw=factor)


def pooled_input_scale(base_schedule: Schedule, t: jax.Array, factor: int) -> jax.Array:
    """(B,) scale that turns `pool(x_t)` into the expert's variance-preserving input."""
    alpha, sigma = base_schedule.alpha_sigma(t)
    return jax.lax.rsqrt(alpha**2 + (sigma / factor) ** 2)


def layout_denoiser(expert_fn: DenoiseFn, factor: int, base_schedule: Schedule,
                    expert_schedule: Schedule, expert_prediction: str,
                    base_prediction: str) -> DenoiseFn:
    """The expert as a denoiser of full-resolution clips, in the base's parametrization.

    expert_fn(y (B, T, H/f, W/f, C), t (B,)) -> its `expert_prediction` output on the
    pooled clip; `expert_schedule` must be the base schedule shifted by 2 log factor
    (`cosine_schedule(H / factor, H)` for a cosine base at H px). Returns
    `fn(x_t (B, T, H, W, C), t (B,))` -> `base_prediction` output whose x0 is the expert's
    pooled clean clip repeated to H px.
    """
    def fn(x_t, t):
        y = pool(x_t, factor) * bcast(pooled_input_scale(base_schedule, t, factor), x_t)
        a_e, s_e = expert_schedule.alpha_sigma(t)
        x0_low = to_x0_eps(expert_fn(y, t), y, a_e, s_e, expert_prediction)[0]
        x0 = unpool(x0_low, factor)
        a, s = base_schedule.alpha_sigma(t)
        eps = (x_t - bcast(a, x_t) * x0) / bcast(s, x_t)
        return from_x0_eps(x0, eps, a, s, base_prediction)

    return fn


def switch_at(until: float, high: DenoiseFn, low: DenoiseFn) -> DenoiseFn:
    """`high(x, t)` while t >= until (one t per call: the sampler's steps share it), else
    `low(x, t)`; only the chosen network runs (`lax.cond`)."""
    return lambda x, t: jax.lax.cond(t[0] >= until, high, low, x, t)
