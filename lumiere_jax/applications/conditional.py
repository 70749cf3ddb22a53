"""Conditional sampling: a model `model_fn(x, t, cond)` plus the `<C, M>` condition.

`sample_conditional` draws J from noise and denoises it with the conditional model; with
`replace_known=True` it also applies replacement conditioning (`replacement_hook`): after
every step the known region (M = 1) is overwritten by C noised to the step's level, and
on the last step (t = 0) by C itself. That is inpainting with an *unconditional* model
(RePaint without resampling jumps) and, for the conditional model, a guarantee that the
output equals the given content exactly where M = 1.

`unet_model_fn` turns a `UNet` (3-channel or 7-channel) and a prompt into such a model_fn,
with classifier-free guidance (the null pass drops the text, keeps the condition).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.applications.conditioning import split_condition
from lumiere_jax.diffusion.guidance import classifier_free_guidance
from lumiere_jax.diffusion.samplers import replacement_hook, sample
from lumiere_jax.diffusion.schedules import Schedule
from lumiere_jax.models import UNet, UNetConfig

ModelFn = Callable[[jax.Array, jax.Array, Any], jax.Array]

__all__ = ["sample_conditional", "unet_model_fn"]


def unet_model_fn(config: UNetConfig, params: Any, text: jax.Array, text_mask: jax.Array, *,
                  guidance_scale: float = 1.0, null_text: jax.Array | None = None,
                  null_mask: jax.Array | None = None,
                  cond_level: jax.Array | None = None) -> ModelFn:
    """`model_fn(x, t, cond)` for a `UNet` under a prompt, with optional guidance.

    The one UNet + classifier-free-guidance wrapper: the cascade's base and SSR stages and
    the applications all sample through it.
    config: any UNet config. With `cond_channels` 0 the condition is ignored (a base model:
      use replacement, `replace_known=True`); otherwise `cond` is fed to the model (K + 1
      channels `<C, M>` for a conditional base model, the low-res video for an SSR one).
    text: (B, L, D) float, text_mask: (B, L) bool. guidance_scale != 1 needs null_text
      (1 or B, L, D) and null_mask (1 or B, L), the empty prompt's encoding; the null pass
      drops the text and keeps the condition.
    cond_level: (B,) noise-augmentation level, required iff `config.cond_level_embedding`.
    The returned function maps x (B, T, H, W, K), t (B,), cond (B, T, H, W, cond_channels)
    or None to the model's prediction, x's shape, float32.
    """
    if config.cond_level_embedding and cond_level is None:
        raise ValueError("config.cond_level_embedding=True (an SSR network): pass cond_level "
                         "(B,), the noise-augmentation level of its conditioning video.")
    if isinstance(guidance_scale, (int, float)) and guidance_scale != guidance_scale:
        raise ValueError("guidance_scale is NaN; use a finite scale (1.0 = no guidance).")
    if np.ndim(text) != 3 or np.shape(text_mask) != np.shape(text)[:2]:
        raise ValueError(f"text must be (B, L, D) and text_mask (B, L); got {np.shape(text)} "
                         f"and {np.shape(text_mask)}.")
    model, params = UNet(config), nn.meta.unbox(params)
    conditional = config.cond_channels > 0

    def apply(x, t, c):
        cond = c["cond"] if conditional else None
        if conditional and cond is None:
            raise ValueError(f"config.cond_channels={config.cond_channels}: pass cond "
                             f"(B, T, H, W, {config.cond_channels}); for <C, M> build it with "
                             "the lumiere_jax.applications conditioning helpers.")
        return model.apply({"params": params}, x, t, c["text"], c["mask"], cond=cond,
                           cond_level=c["cond_level"])

    level = cond_level if config.cond_level_embedding else None

    def pack(text_, mask_, cond):  # batched together for the guided pass
        return dict(text=text_, mask=mask_, cond=cond if conditional else None, cond_level=level)

    if isinstance(guidance_scale, (int, float)) and guidance_scale == 1.0:
        return lambda x, t, cond: apply(x, t, pack(text, text_mask, cond))
    if null_text is None or null_mask is None:
        raise ValueError(f"guidance_scale={guidance_scale} needs null_text and null_mask (the "
                         "empty prompt's encoding); pass them or use guidance_scale=1.0.")
    guided = classifier_free_guidance(apply, guidance_scale)
    return lambda x, t, cond: guided(x, t, pack(text, text_mask, cond),
                                     pack(null_text, null_mask, cond))


def sample_conditional(model_fn: ModelFn, cond: jax.Array, key: jax.Array, *,
                       schedule: Schedule, num_steps: int, sampler: str = "ddim",
                       prediction: str = "v", eta: float | jax.Array = 0.0,
                       clip: str | None = None, replace_known: bool = True,
                       x_start: jax.Array | None = None, progress=None) -> jax.Array:
    """Sample J given `cond = <C * M, M>`, from t = 1 to 0 (one `lax.scan`; jit the caller).

    model_fn(x (B, T, H, W, K), t (B,), cond) -> `prediction`-type output (a conditional
      model reads cond; an unconditional one may ignore it).
    cond: (B, T, H, W, K + 1) from `make_condition` and friends (K = 3: the paper's 7-channel
      input together with J).
    replace_known: overwrite the M = 1 region after each step with C noised to that
      step's level, so the output equals C exactly there (for a soft M, the M-weighted
      blend of C and the sample).
    x_start: (B, T, H, W, K) noise at t = 1; None draws it from `key`.
    progress: host callback per finished step (see `samplers.sample`).
    Returns J at t = 0, (B, T, H, W, K) float32 (x_start's dtype when given).
    """
    if not isinstance(replace_known, bool):
        raise ValueError(f"replace_known={replace_known!r} must be a bool.")
    known, mask = split_condition(cond)
    shape = tuple(known.shape)
    key_noise, key_sample = jax.random.split(key)
    if x_start is None:
        x_start = jax.random.normal(key_noise, shape, jnp.float32)
    elif tuple(np.shape(x_start)) != shape:
        raise ValueError(f"x_start has shape {np.shape(x_start)}; cond {tuple(cond.shape)} "
                         f"needs {shape} (cond's channels minus the mask channel).")
    hook = replacement_hook(known, mask) if replace_known else None
    return sample(lambda x, t: model_fn(x, t, cond), x_start, key_sample, schedule=schedule,
                  sampler=sampler, num_steps=num_steps, prediction=prediction, eta=eta,
                  clip=clip, step_hook=hook, progress=progress)
