"""Sampling one U-Net stage under a prompt, with no training code in the way.

    model_fn = unet_model_fn(config, params, text, mask, guidance_scale=3.0,
                             null_text=null_text, null_mask=null_mask)
    video = sample_unet(config, params, text, mask, noise, key, schedule=schedule,
                        num_steps=16, guidance_scale=3.0, null_text=..., null_mask=...)

`unet_model_fn` is the one UNet + classifier-free-guidance wrapper: the cascade's base
and SSR stages, the applications, training's sample previews and the benchmarks all
sample through it. `sample_unet` is the plain text-to-sample loop (one `lax.scan` over
steps) that training previews, the cascade's text mode and the benchmarks share;
`to_uint8` turns its [-1, 1] output into pixels.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.diffusion.guidance import classifier_free_guidance
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import Schedule
from lumiere_jax.models import UNet, UNetConfig

ModelFn = Callable[[jax.Array, jax.Array, Any], jax.Array]
# prompts -> (states (B, L, D), mask (B, L)), e.g. `runs.text_encode_fn`
TextEncoderFn = Callable[[Sequence[str]], tuple[Any, Any]]

__all__ = ["ModelFn", "TextEncoderFn", "sample_unet", "to_uint8", "unet_model_fn"]


def is_positive_int(value: Any) -> bool:
    """Whether `value` is an int >= 1 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def unet_model_fn(config: UNetConfig, params: Any, text: jax.Array, text_mask: jax.Array, *,
                  guidance_scale: float = 1.0, null_text: jax.Array | None = None,
                  null_mask: jax.Array | None = None,
                  cond_level: jax.Array | None = None,
                  clips_per_call: int | None = None) -> ModelFn:
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
    clips_per_call: the network sees at most this many items (clips or images) per call
      (`in_chunks`; the guided pass counts 2B); None: the whole batch at once.
    The returned function maps x (B, T, H, W, K), t (B,), cond (B, T, H, W, cond_channels)
    or None to the model's prediction, x's shape, float32.
    """
    if clips_per_call is not None and not is_positive_int(clips_per_call):
        raise ValueError(f"clips_per_call={clips_per_call!r} must be an int >= 1 or None (the "
                         "whole batch at once).")
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
    if clips_per_call is not None:
        apply = in_chunks(apply, clips_per_call)

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


def in_chunks(fn: Callable[..., jax.Array], size: int) -> Callable[..., jax.Array]:
    """`fn(x, t, c)` on at most `size` items at a time: the batch (the leading axis of x, t
    and every leaf of c) is split into chunks, the last padded with copies of the final
    item, `lax.map`ped through `fn` and joined again; the same values as one call.

    On XLA:CPU a big batch leaves the cache: the shipped base STUNet's forward costs 0.214 s
    a clip at 64 clips a call and 0.174-0.190 s in chunks of 4-16
    (`benchmarks/clips_per_call.py`)."""
    def chunked(x: jax.Array, t: jax.Array, c: Any) -> jax.Array:
        batch = x.shape[0]
        if batch <= size:
            return fn(x, t, c)
        num = -(-batch // size)

        def split(a: jax.Array) -> jax.Array:  # (B, ...) -> (num, size, ...)
            a = jnp.asarray(a)
            if num * size > batch:
                a = jnp.concatenate([a, jnp.repeat(a[-1:], num * size - batch, axis=0)])
            return a.reshape((num, size) + a.shape[1:])

        out = jax.lax.map(lambda args: fn(*args), jax.tree.map(split, (x, t, c)))
        return out.reshape((num * size,) + out.shape[2:])[:batch]

    return chunked


def sample_unet(config: UNetConfig, params: Any, text: jax.Array, text_mask: jax.Array,
                noise: jax.Array, key: jax.Array, *, schedule: Schedule, num_steps: int,
                guidance_scale: float = 1.0, null_text: jax.Array | None = None,
                null_mask: jax.Array | None = None, cond: jax.Array | None = None,
                cond_level: jax.Array | None = None, sampler: str = "ddim",
                prediction: str = "v", clip: str | None = None, progress=None,
                time_shift: float = 0.0) -> jax.Array:
    """Denoise `noise` (B, [T,] H, W, 3) at t = 1 to a sample at t = 0 under the prompt.

    The model and guidance arguments are `unet_model_fn`'s (cond: (B, [T,] H, W,
    cond_channels) or None); the rest are `diffusion.samplers.sample`'s. Returns float32 of
    noise's shape, roughly [-1, 1] (`to_uint8` for pixels). Jit the caller.
    """
    model_fn = unet_model_fn(config, params, text, text_mask, guidance_scale=guidance_scale,
                             null_text=null_text, null_mask=null_mask, cond_level=cond_level)
    return sample(lambda x, t: model_fn(x, t, cond), noise, key, schedule=schedule,
                  sampler=sampler, num_steps=num_steps, prediction=prediction, clip=clip,
                  progress=progress, time_shift=time_shift)


def to_uint8(video: jax.Array) -> jax.Array:
    """[-1, 1] float -> uint8 [0, 255], rounded and clipped; any shape."""
    return jnp.clip(jnp.round((video.astype(jnp.float32) + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
