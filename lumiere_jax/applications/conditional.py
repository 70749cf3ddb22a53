"""Conditional sampling: a model `model_fn(x, t, cond)` plus the `<C, M>` condition.

`sample_conditional` draws J from noise and denoises it with the conditional model; with
`replace_known=True` it also applies replacement conditioning (`replacement_hook`): after
every step the known region (M = 1) is overwritten by C noised to the step's level, and
on the last step (t = 0) by C itself. That is inpainting with an *unconditional* model
(RePaint without resampling jumps) and, for the conditional model, a guarantee that the
output equals the given content exactly where M = 1.

`lumiere_jax.sampling.unet_model_fn` turns a `UNet` (3-channel or 7-channel) and a prompt
into such a model_fn, with classifier-free guidance (the null pass drops the text, keeps
the condition).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.applications.conditioning import split_condition
from lumiere_jax.diffusion.samplers import replacement_hook, sample
from lumiere_jax.diffusion.schedules import Schedule
from lumiere_jax.sampling import ModelFn

__all__ = ["sample_conditional"]


def sample_conditional(model_fn: ModelFn, cond: jax.Array, key: jax.Array, *,
                       schedule: Schedule, num_steps: int, sampler: str = "ddim",
                       prediction: str = "v", eta: float | jax.Array = 0.0,
                       clip: str | None = None, replace_known: bool = True,
                       x_start: jax.Array | None = None, t_start: float = 1.0,
                       progress=None, time_shift: float = 0.0) -> jax.Array:
    """Sample J given `cond = <C * M, M>`, from t = 1 to 0 (one `lax.scan`; jit the caller).

    model_fn(x (B, T, H, W, K), t (B,), cond) -> `prediction`-type output (a conditional
      model reads cond; an unconditional one may ignore it).
    cond: (B, T, H, W, K + 1) from `make_condition` and friends (K = 3: the paper's 7-channel
      input together with J).
    replace_known: overwrite the M = 1 region after each step with C noised to that
      step's level, so the output equals C exactly there (for a soft M, the M-weighted
      blend of C and the sample).
    x_start: (B, T, H, W, K), x at t = t_start (noise at t = 1); None draws N(0, I) from
      `key` (then t_start must be 1).
    t_start: where sampling starts, in (0, 1] (below 1: SDEdit of a guess at J).
    progress: host callback per finished step (see `samplers.sample`).
    Returns J at t = 0, (B, T, H, W, K) float32 (x_start's dtype when given).
    """
    if not isinstance(replace_known, bool):
        raise ValueError(f"replace_known={replace_known!r} must be a bool.")
    known, mask = split_condition(cond)
    shape = tuple(known.shape)
    key_noise, key_sample = jax.random.split(key)
    if x_start is None:
        if t_start != 1.0:
            raise ValueError(f"t_start={t_start} needs x_start (x at that time).")
        x_start = jax.random.normal(key_noise, shape, jnp.float32)
    elif tuple(np.shape(x_start)) != shape:
        raise ValueError(f"x_start has shape {np.shape(x_start)}; cond {tuple(cond.shape)} "
                         f"needs {shape} (cond's channels minus the mask channel).")
    hook = replacement_hook(known, mask) if replace_known else None
    return sample(lambda x, t: model_fn(x, t, cond), x_start, key_sample, schedule=schedule,
                  sampler=sampler, num_steps=num_steps, prediction=prediction, eta=eta,
                  t_start=t_start, clip=clip, step_hook=hook, progress=progress,
                  time_shift=time_shift)
