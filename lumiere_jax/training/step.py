"""The loss / update step and the sampling function the training loop jits.

A device batch is a dict:
  pixels: uint8 (B, H, W, 3) images (t2i) or (B, T, H, W, 3) videos (other stages),
  ids:    int32 (B, L) caption token ids, mask: bool (B, L),
  velocity: float32 (B, 2) mean object velocity, px per frame (only with motion_noise).
  tracks: float32 (B, N, 5) each object's (y0, x0, vy, vx, r) px (motion_layout 'objects').
Parameters are `{'unet': ..., 'text': ...}`, split into a trainable subtree (in the state,
differentiated) and a frozen subtree (a plain argument, never differentiated).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from einops import rearrange

from lumiere_jax.applications.conditioning import (TRAINING_KINDS, image_to_video_condition,
                                                   random_training_condition)
from lumiere_jax.diffusion.guidance import noise_augment
from lumiere_jax.diffusion.contrast import caption_contrast, swap_pairs
from lumiere_jax.diffusion.layout import pool
from lumiere_jax.diffusion.motion_noise import (MOTION_LAYOUTS, training_motion_noise,
                                                training_object_noise)
from lumiere_jax.diffusion.objectives import diffusion_loss, per_example_loss, sample_times
from lumiere_jax.diffusion.schedules import Schedule
from lumiere_jax.models import UNet
from lumiere_jax.sampling import sample_unet, to_uint8
from lumiere_jax.text.cache import drop_to_null
from lumiere_jax.training.state import ema_decay_at, ema_update, merge_params

STAGES = ("t2i", "stunet", "ssr", "conditional", "layout")


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static options of the train step (hashable).

    stage: 't2i' | 'stunet' | 'ssr' | 'conditional' (a STUNet with the `<C, M>` input, fed
      a `random_training_condition` per clip) | 'layout' (a video U-Net trained from scratch
      on clips mean-pooled by `layout_factor`, `diffusion.layout`). prediction / weighting:
      see `diffusion_loss`.
    text_dropout: probability of replacing a caption by the null caption (CFG training).
    ema_decay: EMA of the trainable weights, applied on every optimizer update.
    ema_warmup: ramp the decay up as min(ema_decay, (1 + step) / (10 + step)).
    ssr_low_res: the SSR's conditioning is the clip resized to this size and back.
    ssr_max_aug: noise augmentation level of that conditioning, t_aug ~ U(0, max).
    t_power: training times t = 1 - (1 - u)^t_power (`sample_times`); 1 is uniform, > 1
      spends more of training at high noise, where the noisy clip no longer shows what the
      prompt must decide (e.g. the direction of motion).
    min_t: training times are mapped onto [min_t, 1] (`min_t + (1 - min_t) t`): a layout
      expert learns only the steps it will take.
    layout_factor: stage 'layout': the batch's clips are mean-pooled by this factor
      (`diffusion.layout.pool`) before noising; 1 for every other stage.
    condition_kinds: the conditional stage's training conditions, drawn uniformly per clip
      (a kind listed twice is drawn twice as often); see `random_training_condition`.
    reversal_pairs: rows `2i, 2i + 1` of every batch are a clip and the same clip played
      backwards with its directions reversed (`data.make_dataset(time_reversal_pairs=True)`);
      each pair shares its time, its caption dropout and its noise (played backwards too).
      Each row is still a plain training example, so the loss's expectation is unchanged,
      but within a pair everything that does not depend on the direction of motion (the
      background, the object's look) meets the same noise and cancels from the part of the
      gradient that tells the two captions apart (antithetic sampling).
    caption_contrast: weight of the pairs' caption contrast (`diffusion.contrast`; needs
      reversal_pairs, stage 'stunet'): each clip is denoised with its own caption and with
      its pair's (directions reversed), and `softplus(contrast_sharpness * (own loss -
      swapped loss))` at `t >= contrast_min_t` joins the loss; 0 (default) is off.
    motion_noise: > 0 (stages 'stunet' / 'conditional'; the batch carries 'velocity' (B, 2),
      each clip's mean object velocity in px per frame): the noise's shared part moves with
      the clip, correlation ~ U(0, motion_noise) per clip (`training_motion_noise`), the
      noise the sampler starts from with `SamplingConfig.motion_noise`; 0 (default): plain.
    motion_layout: 'field' (default: the whole shared field moves with 'velocity') or
      'objects' (`training_object_noise`: the batch carries 'tracks' (B, N, 5), each
      object's (y0, x0, vy, vx, r) in px; the shared field stays put but for each object's
      disc, which moves with it), as `SamplingConfig.motion_layout`.
    """

    stage: str
    schedule: Schedule
    prediction: str = "v"
    weighting: str = "plain"
    text_dropout: float = 0.1
    ema_decay: float = 0.999
    ema_warmup: bool = False
    ssr_low_res: int = 8
    ssr_max_aug: float = 0.3
    t_power: float = 1.0
    min_t: float = 0.0
    layout_factor: int = 1
    condition_kinds: tuple[str, ...] = TRAINING_KINDS
    reversal_pairs: bool = False
    caption_contrast: float = 0.0
    contrast_sharpness: float = 500.0
    contrast_min_t: float = 0.8
    motion_noise: float = 0.0
    motion_layout: str = "field"

    def __post_init__(self):
        bad = [k for k in self.condition_kinds if k not in TRAINING_KINDS]
        if not self.condition_kinds or bad:
            raise ValueError(f"condition_kinds={self.condition_kinds!r}; choose a non-empty "
                             f"list from {TRAINING_KINDS}")
        if self.stage not in STAGES:
            raise ValueError(f"stage={self.stage!r}; valid: {STAGES}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"text_dropout={self.text_dropout}; must be in [0, 1)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}; must be in [0, 1)")
        if not self.t_power > 0.0:
            raise ValueError(f"t_power={self.t_power}; must be > 0 (1: uniform t)")
        if not 0.0 <= self.min_t < 1.0:
            raise ValueError(f"min_t={self.min_t}; must be in [0, 1) (0: every noise level)")
        if self.layout_factor < 1 or (self.layout_factor > 1) != (self.stage == "layout"):
            raise ValueError(f"layout_factor={self.layout_factor}: an int > 1 for stage "
                             f"'layout' (got stage {self.stage!r}), 1 for every other stage")
        if self.reversal_pairs and self.stage == "t2i":
            raise ValueError("reversal_pairs pairs clips with their time reversal; the 't2i' "
                             "stage trains on single frames")
        if not self.caption_contrast >= 0.0:
            raise ValueError(f"caption_contrast={self.caption_contrast}; must be >= 0 (0: off)")
        if self.caption_contrast and (self.stage != "stunet" or not self.reversal_pairs):
            raise ValueError(f"caption_contrast={self.caption_contrast} contrasts the captions "
                             f"of time-reversal pairs: it needs stage 'stunet' (got "
                             f"{self.stage!r}) and reversal_pairs=True")
        if not self.contrast_sharpness > 0.0:
            raise ValueError(f"contrast_sharpness={self.contrast_sharpness}; must be > 0")
        if not 0.0 <= self.motion_noise < 1.0:
            raise ValueError(f"motion_noise={self.motion_noise}; must be in [0, 1) (0: plain)")
        if self.motion_noise and (self.stage not in ("stunet", "conditional")
                                  or self.reversal_pairs):
            raise ValueError(f"motion_noise={self.motion_noise} moves the noise with each "
                             f"clip: it needs stage 'stunet' or 'conditional' (got "
                             f"{self.stage!r}) and reversal_pairs=False")
        if self.motion_layout not in MOTION_LAYOUTS:
            raise ValueError(f"motion_layout={self.motion_layout!r}; valid: {MOTION_LAYOUTS}")
        if not 0.0 <= self.contrast_min_t < 1.0:
            raise ValueError(f"contrast_min_t={self.contrast_min_t}; must be in [0, 1)")


def to_float(pixels: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return pixels.astype(jnp.float32) / 127.5 - 1.0


def low_res_cond(x: jax.Array, size: int) -> jax.Array:
    """SSR conditioning: `x (B, T, H, W, C)` resized to `size` px and back (bilinear)."""
    lead, (h, w, c) = x.shape[:-3], x.shape[-3:]
    small = jax.image.resize(x, lead + (size, size, c), "linear")
    return jax.image.resize(small, lead + (h, w, c), "linear")


def _model_kwargs(cfg: StepConfig, x0: jax.Array, key: jax.Array) -> dict:
    if cfg.stage == "conditional":
        return dict(cond=random_training_condition(x0, key, cfg.condition_kinds))
    if cfg.stage != "ssr":
        return {}
    cond, level = noise_augment(low_res_cond(x0, cfg.ssr_low_res), key, cfg.schedule,
                                cfg.ssr_max_aug)
    return dict(cond=cond, cond_level=level)


def reversal_pair_noise(key: jax.Array, x0: jax.Array, t_power: float
                        ) -> tuple[jax.Array, jax.Array]:
    """`(t (B,), eps (B, T, ...))` for a batch of reversal pairs: rows `2i, 2i + 1` share
    their time, and row `2i + 1`'s noise is row `2i`'s played backwards."""
    if x0.shape[0] % 2:
        raise ValueError(f"reversal_pairs needs an even batch, got {x0.shape[0]} clips")
    half = x0.shape[0] // 2
    key_t, key_eps = jax.random.split(key)
    t = sample_times(key_t, half, t_power)
    eps = jax.random.normal(key_eps, (half,) + x0.shape[1:], x0.dtype)
    return (jnp.repeat(t, 2),
            rearrange(jnp.stack([eps, eps[:, ::-1]], axis=1), "b pair ... -> (b pair) ..."))


def make_train_step(model: UNet, encoder: Any, tx: optax.MultiSteps,
                    lr_schedule: Callable[[Any], Any], cfg: StepConfig,
                    null_ids: np.ndarray, null_mask: np.ndarray
                    ) -> Callable[[dict, dict, dict], tuple[dict, dict]]:
    """`step(state, frozen, batch) -> (state, metrics)`, pure; jit it with shardings.

    Gradients flow only into `state['params']`; a non-finite loss or gradient norm leaves
    params, EMA and optimizer state untouched and bumps `nonfinite` (consecutive) and
    `skipped` (total). null_ids / null_mask: (L,) tokens of the empty caption.
    metrics: loss, grad_norm, lr, finite, nonfinite, skipped (scalars); with caption_contrast
    also diffusion_loss, caption_contrast and caption_gap (mean swapped - own loss at t >=
    contrast_min_t, counted 0 below it).
    """
    null_ids, null_mask = np.asarray(null_ids, np.int32), np.asarray(null_mask, bool)

    def loss_fn(trainable, frozen, batch, key):
        params = merge_params(trainable, frozen)
        k_drop, k_loss, k_cond, k_dropout = jax.random.split(key, 4)
        states, mask = encoder.apply({"params": params["text"]}, batch["ids"], batch["mask"])
        null_states, null_m = encoder.apply({"params": params["text"]}, null_ids[None],
                                            null_mask[None])
        states, mask = drop_to_null(states, mask, null_states[0], null_m[0], k_drop,
                                    cfg.text_dropout, group=2 if cfg.reversal_pairs else 1)
        x0 = to_float(batch["pixels"])
        if cfg.layout_factor > 1:
            x0 = pool(x0, cfg.layout_factor)
        extra = _model_kwargs(cfg, x0, k_cond)

        def unet(x_t, t, text, text_mask):
            return model.apply({"params": params["unet"]}, x_t, t, text, text_mask, train=True,
                               rngs={"dropout": k_dropout}, **extra)

        denoise = lambda x_t, t: unet(x_t, t, states, mask)

        t = eps = None  # uniform t and fresh noise, drawn inside diffusion_loss
        if cfg.reversal_pairs:
            t, eps = reversal_pair_noise(jax.random.fold_in(k_loss, 2), x0, cfg.t_power)
        elif cfg.t_power != 1.0 or cfg.min_t:
            t = sample_times(jax.random.fold_in(k_loss, 1), x0.shape[0], cfg.t_power)
        if cfg.motion_noise:  # never with reversal_pairs (StepConfig refuses the two)
            k_motion = jax.random.fold_in(k_loss, 3)
            eps = (training_object_noise(k_motion, x0.shape, batch["tracks"], cfg.motion_noise,
                                         x0.dtype) if cfg.motion_layout == "objects" else
                   training_motion_noise(k_motion, x0.shape, batch["velocity"],
                                         cfg.motion_noise, x0.dtype))
        if cfg.min_t:
            t = cfg.min_t + (1.0 - cfg.min_t) * t
        if not cfg.caption_contrast:
            return diffusion_loss(denoise, x0, k_loss, cfg.schedule, cfg.prediction,
                                  cfg.weighting, t=t, eps=eps), {}

        # (2B, ...): every clip with its own caption, then with its pair's.
        both = lambda a: jnp.concatenate([a, swap_pairs(a)])
        denoise_both = lambda x_t, t: unet(x_t, t, both(states), both(mask))
        twice = lambda a: jnp.concatenate([a, a])
        per_row = per_example_loss(denoise_both, twice(x0), k_loss, cfg.schedule,
                                   cfg.prediction, cfg.weighting, t=twice(t), eps=twice(eps))
        own, swapped = jnp.split(per_row, 2)
        contrast = caption_contrast(own, swapped, t, cfg.contrast_sharpness, cfg.contrast_min_t)
        diffusion = jnp.mean(own)
        return diffusion + cfg.caption_contrast * jnp.mean(contrast), dict(
            diffusion_loss=diffusion, caption_contrast=jnp.mean(contrast),
            caption_gap=jnp.mean(jnp.where(t >= cfg.contrast_min_t, swapped - own, 0.0)))

    def step(state: dict, frozen: dict, batch: dict) -> tuple[dict, dict]:
        key = jax.random.fold_in(state["rng"], state["step"])
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], frozen,
                                                                      batch, key)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        ema = jax.tree.map(lambda new, old: jnp.where(tx.has_updated(opt_state), new, old),
                           ema_update(state["ema"], params,
                                      ema_decay_at(cfg.ema_decay, state["step"], cfg.ema_warmup)),
                           state["ema"])
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
        new_state = dict(
            step=state["step"] + 1,
            params=keep(params, state["params"]),
            ema=keep(ema, state["ema"]),
            opt_state=keep(opt_state, state["opt_state"]),
            rng=state["rng"],
            nonfinite=jnp.where(finite, 0, state["nonfinite"] + 1).astype(jnp.int32),
            skipped=(state["skipped"] + (~finite).astype(jnp.int32)).astype(jnp.int32),
        )
        metrics = dict(loss=loss, grad_norm=grad_norm,
                       lr=jnp.asarray(lr_schedule(state["opt_state"].gradient_step), jnp.float32),
                       finite=finite, nonfinite=new_state["nonfinite"],
                       skipped=new_state["skipped"], **aux)
        return new_state, metrics

    return step


def make_sample_fn(model: UNet, encoder: Any, cfg: StepConfig, *, num_steps: int,
                   guidance: float, sampler: str = "ddim") -> Callable[..., jax.Array]:
    """`fn(params, ids, mask, null_ids, null_mask, noise, key, pixels) -> uint8 samples`.

    params: merged `{'unet', 'text'}` (e.g. EMA weights); ids / mask: (B, L) prompts;
    null_ids / null_mask: (L,); noise: (B, [T,] H, W, 3) float start; pixels: uint8 batch
    used by 'ssr' (its low-res version is the conditioning) and 'conditional' (its first
    frames are animated). Classifier-free guidance
    with `guidance` (1 = conditional only). Returns uint8 of noise's shape.
    """

    def fn(params, ids, mask, null_ids, null_mask, noise, key, pixels):
        states, smask = encoder.apply({"params": params["text"]}, ids, mask)
        nstates, nmask = encoder.apply({"params": params["text"]}, null_ids[None], null_mask[None])
        cond = cond_level = None
        if cfg.stage == "ssr":
            cond = low_res_cond(to_float(pixels), cfg.ssr_low_res)
            cond_level = jnp.zeros((noise.shape[0],), jnp.float32)
        if cfg.stage == "conditional":  # animate the batch's first frames (image-to-video)
            cond = image_to_video_condition(to_float(pixels)[:, 0], noise.shape[1])
        out = sample_unet(model.config, params["unet"], states, smask, noise, key,
                          schedule=cfg.schedule, num_steps=num_steps, guidance_scale=guidance,
                          null_text=nstates, null_mask=nmask, cond=cond, cond_level=cond_level,
                          sampler=sampler, prediction=cfg.prediction, clip="static")
        return to_uint8(out)

    return fn
