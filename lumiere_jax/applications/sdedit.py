"""Video-to-video editing with SDEdit (Meng et al. 2022), as in Lumiere.

A real video x0 is noised part way, `x_t = alpha(t) x0 + sigma(t) eps` with t = `strength`,
and denoised from there under a (new) prompt: small strengths keep the input's layout and
motion, strength 1 is a fresh sample. The denoiser carries the prompt (and guidance):
build it with `unet_model_fn(...)` and close over `cond=None`.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.diffusion.objectives import DenoiseFn
from lumiere_jax.diffusion.samplers import StepHook, sample
from lumiere_jax.diffusion.schedules import Schedule

__all__ = ["check_strength", "noise_to_strength", "sdedit"]


def check_strength(strength: float | jax.Array) -> None:
    """ValueError unless a concrete `strength` is a scalar in (0, 1] (tracers pass)."""
    if isinstance(strength, jax.core.Tracer):
        return
    if isinstance(strength, bool) or not isinstance(strength,
                                                    (numbers.Real, np.ndarray, jax.Array)):
        raise ValueError(f"strength={strength!r} must be a real scalar in (0, 1].")
    value = np.asarray(strength)
    if value.ndim != 0 or not np.isfinite(value) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"strength={strength!r} must be a scalar in (0, 1] (the diffusion "
                         "time the video is noised to: small keeps more of it, 1 ignores it).")


def noise_to_strength(video: jax.Array, key: jax.Array, strength: float | jax.Array,
                      schedule: Schedule) -> jax.Array:
    """`x_t = alpha(strength) video + sigma(strength) eps`, eps ~ N(0, I).

    video: (B, T, H, W, C) float in [-1, 1] (any (B, ...) works). Returns video's shape
    and dtype.
    """
    check_strength(strength)
    video = jnp.asarray(video)
    alpha, sigma = schedule.alpha_sigma(jnp.asarray(strength, jnp.float32))
    eps = jax.random.normal(key, video.shape, jnp.float32)
    return (alpha * video.astype(jnp.float32) + sigma * eps).astype(video.dtype)


def sdedit(denoise_fn: DenoiseFn, video: jax.Array, key: jax.Array, *,
           strength: float | jax.Array, schedule: Schedule, num_steps: int,
           sampler: str = "ddim", prediction: str = "v", eta: float | jax.Array = 0.0,
           clip: str | None = None, step_hook: StepHook | None = None,
           progress=None, time_shift: float = 0.0) -> jax.Array:
    """Edit `video`: noise it to t = `strength`, then sample from there to t = 0.

    denoise_fn(x_t (B, T, H, W, C), t (B,)) -> `prediction`-type output (the prompt lives
    inside it). video: (B, T, H, W, C) float in [-1, 1]. strength: in (0, 1], may be traced
    (one compile serves every strength). num_steps: static; the steps are spread over
    [0, strength], so a smaller strength takes finer steps (scale it yourself for a fixed
    cost per unit time). Other arguments as in `lumiere_jax.diffusion.samplers.sample`.
    Returns the edited video, video's shape and dtype.
    """
    if np.ndim(video) < 2:
        raise ValueError(f"video must be (B, T, H, W, C), got shape {np.shape(video)}.")
    check_strength(strength)
    key_noise, key_sample = jax.random.split(key)
    x_t = noise_to_strength(video, key_noise, strength, schedule)
    return sample(denoise_fn, x_t, key_sample, schedule=schedule, sampler=sampler,
                  num_steps=num_steps, prediction=prediction, t_start=strength, eta=eta,
                  clip=clip, step_hook=step_hook, progress=progress, time_shift=time_shift)
