"""Classifier-free and critic guidance, x0 clipping / dynamic thresholding, noise-conditioning
augmentation.

Classifier-free guidance (Ho & Salimans 2022) runs the conditional and the null pass as
one batch of 2B and combines `out = null + scale * (cond - null)`; `rescale` (Lin et al.
2023, "Common diffusion noise schedules and sample steps are flawed", eq. 15-16) pulls the
per-example std of the guided output back to that of the conditional output:
`out = rescale * out * std(cond) / std(out) + (1 - rescale) * out`.

Critic guidance is classifier guidance (Dhariwal & Nichol 2021, eq. 14) with a noised
critic's score in place of log p(y | x_t), as GLIDE's noised-CLIP guidance: the score
function of p(x_t | y) is that of p(x_t) plus the score's gradient, so
`eps -> eps - scale * sigma * grad`, i.e. `x0 -> x0 + scale * sigma^2 / alpha * grad`.
"""

from __future__ import annotations

from typing import Any, Callable

import einops
import jax
import jax.numpy as jnp

from lumiere_jax.diffusion.objectives import bcast, from_x0_eps, to_x0_eps
from lumiere_jax.diffusion.schedules import Schedule

CLIP_MODES = (None, "static", "dynamic")

ModelFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def classifier_free_guidance(model_fn: ModelFn, scale: float | jax.Array,
                             rescale: float | jax.Array = 0.0
                             ) -> Callable[[jax.Array, jax.Array, Any, Any], jax.Array]:
    """Wrap `model_fn(x, t, cond)` into `guided(x, t, cond, null_cond)`, one model call on 2B.

    x: (B, ...) float; t: (B,) float; cond / null_cond: pytrees whose leaves have a leading
    batch axis of B (null_cond leaves may have batch 1, broadcast to B). Returns the guided
    output, x's shape. `scale` = 1 gives the conditional model; `rescale` in [0, 1].
    The output space is whatever model_fn predicts (eps, v or x0); guidance is linear, so
    for `scale` it does not matter which, while `rescale` is meant for v / x0 outputs.
    """
    for name, v in (("scale", scale), ("rescale", rescale)):
        if isinstance(v, (int, float)) and not v == v:  # NaN
            raise ValueError(f"classifier_free_guidance: {name} is NaN.")
    if isinstance(rescale, (int, float)) and not 0.0 <= rescale <= 1.0:
        raise ValueError(f"classifier_free_guidance: rescale={rescale} must be in [0, 1].")

    def guided(x: jax.Array, t: jax.Array, cond: Any, null_cond: Any) -> jax.Array:
        batch = x.shape[0]
        t = jnp.broadcast_to(jnp.asarray(t), (batch,))

        def pair(c, n):
            c, n = jnp.asarray(c), jnp.asarray(n)
            if c.shape[:1] != (batch,):
                raise ValueError(f"cond leaf has shape {c.shape}; expected batch {batch} first.")
            n = jnp.broadcast_to(n, c.shape) if n.shape[:1] == (1,) else n
            if n.shape != c.shape:
                raise ValueError(f"null_cond leaf shape {n.shape} does not match cond {c.shape} "
                                 "(null leaves may also have batch 1).")
            return jnp.concatenate([c, n], axis=0)

        both = jax.tree.map(pair, cond, null_cond)
        out = model_fn(jnp.concatenate([x, x], axis=0), jnp.concatenate([t, t], axis=0), both)
        out_cond, out_null = out[:batch], out[batch:]
        guided_out = out_null + scale * (out_cond - out_null)
        if isinstance(rescale, (int, float)) and rescale == 0.0:
            return guided_out
        std_cond = _per_example_std(out_cond)
        std_guided = _per_example_std(guided_out)
        rescaled = guided_out * bcast(std_cond / jnp.maximum(std_guided, 1e-12), x)
        return rescale * rescaled + (1.0 - rescale) * guided_out

    return guided


def critic_guidance(denoise_fn: Callable[[jax.Array, jax.Array], jax.Array],
                    score_fn: Callable[[jax.Array, jax.Array], jax.Array],
                    schedule: Schedule, scale: float | jax.Array, prediction: str,
                    min_alpha: float = 0.05) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Wrap `denoise_fn(x, t)` so its prediction follows `score_fn(x, t) -> (B,)` uphill.

    x: (B, ...) float; t: (B,). The output is `denoise_fn`'s, in its `prediction`
    parameterisation, with `x0 + scale * sigma^2 / max(alpha, min_alpha) * grad_x score`
    and the matching eps: classifier guidance with the score as log p(y | x_t). Near
    t = 1 (alpha -> 0) the exact rule's 1 / alpha would blow up a gradient that carries
    no information there; `min_alpha` caps it. `scale` = 0 returns the model's output.
    """
    if isinstance(scale, (int, float)) and not (scale == scale and scale >= 0.0):
        raise ValueError(f"critic_guidance: scale={scale} must be >= 0 (0 = no guidance).")
    if not 0.0 < min_alpha <= 1.0:
        raise ValueError(f"critic_guidance: min_alpha={min_alpha} must be in (0, 1].")

    def guided(x: jax.Array, t: jax.Array) -> jax.Array:
        out = denoise_fn(x, t).astype(jnp.float32)
        x = x.astype(jnp.float32)
        alpha, sigma = schedule.alpha_sigma(t)
        x0, _ = to_x0_eps(out, x, alpha, sigma, prediction)
        grad = jax.grad(lambda z: jnp.sum(score_fn(z, t)))(x)
        x0 = x0 + bcast(scale * sigma ** 2 / jnp.maximum(alpha, min_alpha), x) * grad
        eps = (x - bcast(alpha, x) * x0) / bcast(sigma, x)
        return from_x0_eps(x0, eps, alpha, sigma, prediction)

    return guided


def _per_example_std(x: jax.Array) -> jax.Array:
    """x: (B, ...) -> (B,) std over all non-batch axes (float32)."""
    return jnp.std(einops.rearrange(x.astype(jnp.float32), "b ... -> b (...)"), axis=1)


def static_clip(x0: jax.Array) -> jax.Array:
    """Clip a pixel-space x0 prediction to [-1, 1]."""
    return jnp.clip(x0, -1.0, 1.0)


def dynamic_threshold(x0: jax.Array, percentile: float = 0.995) -> jax.Array:
    """Imagen's dynamic thresholding (Saharia et al. 2022), x0: (B, ...) -> same shape.

    Per example, s = max(quantile(|x0|, percentile), 1); x0 -> clip(x0, -s, s) / s.
    """
    if not 0.0 < percentile <= 1.0:
        raise ValueError(f"dynamic_threshold: percentile={percentile} must be in (0, 1].")
    flat = einops.rearrange(jnp.abs(x0).astype(jnp.float32), "b ... -> b (...)")
    s = jnp.maximum(jnp.quantile(flat, percentile, axis=1), 1.0).astype(x0.dtype)
    s = bcast(s, x0)
    return jnp.clip(x0, -s, s) / s


def clip_x0(x0: jax.Array, clip: str | None) -> jax.Array:
    """Apply `clip` in {None, 'static', 'dynamic'} to an x0 prediction."""
    if clip is None:
        return x0
    if clip == "static":
        return static_clip(x0)
    if clip == "dynamic":
        return dynamic_threshold(x0)
    raise ValueError(f"clip={clip!r}; expected one of {CLIP_MODES}.")


def noise_augment(x: jax.Array, key: jax.Array, schedule: Schedule, max_t: float = 1.0, *,
                  t: jax.Array | float | None = None) -> tuple[jax.Array, jax.Array]:
    """Noise-conditioning augmentation for a super-resolution model's low-res input.

    x: (B, ...) float conditioning (e.g. the upsampled low-res video (B, T, H, W, C)).
    Training: t_aug ~ U(0, max_t) per example. Sampling: pass a fixed `t` (scalar or (B,)).
    Returns (alpha(t_aug) x + sigma(t_aug) eps, t_aug (B,) float32); feed t_aug to the
    model as its `cond_level`.
    """
    if isinstance(max_t, (int, float)) and not 0.0 <= max_t <= 1.0:
        raise ValueError(f"noise_augment: max_t={max_t} must be in [0, 1].")
    if x.ndim < 1:
        raise ValueError(f"noise_augment: x needs a leading batch axis, got shape {x.shape}.")
    batch = x.shape[0]
    key_t, key_eps = jax.random.split(key)
    if t is None:
        t_aug = jax.random.uniform(key_t, (batch,), jnp.float32, 0.0, max_t)
    else:
        t_aug = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch,))
    alpha, sigma = schedule.alpha_sigma(t_aug)
    eps = jax.random.normal(key_eps, x.shape, jnp.float32)
    noisy = bcast(alpha, x) * x.astype(jnp.float32) + bcast(sigma, x) * eps
    return noisy.astype(x.dtype), t_aug
