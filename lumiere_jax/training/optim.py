"""optax AdamW with linear warmup + cosine decay, global-norm clipping and accumulation."""

from __future__ import annotations

from typing import Any, Callable

import optax


def make_lr_schedule(cfg: Any) -> Callable[[Any], Any]:
    """Warmup from 0 to `cfg.lr` over `cfg.warmup_steps` optimizer updates, then cosine to
    `cfg.lr * cfg.end_lr_factor` at `cfg.decay_steps` updates. One update = `accum_steps`
    micro-steps."""
    if cfg.lr <= 0:
        raise ValueError(f"optim.lr={cfg.lr}; must be > 0 (e.g. 1e-4)")
    if cfg.warmup_steps < 0 or cfg.decay_steps <= cfg.warmup_steps:
        raise ValueError(f"optim.warmup_steps={cfg.warmup_steps}, optim.decay_steps="
                         f"{cfg.decay_steps}: need 0 <= warmup_steps < decay_steps")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.lr, warmup_steps=cfg.warmup_steps,
        decay_steps=cfg.decay_steps, end_value=cfg.lr * cfg.end_lr_factor)


def make_optimizer(cfg: Any) -> tuple[optax.MultiSteps, Callable[[Any], Any]]:
    """`optax.MultiSteps(chain(clip_by_global_norm, adamw(schedule)), accum_steps)`.

    cfg: ConfigDict with lr, warmup_steps, decay_steps, end_lr_factor, b1, b2, eps,
      weight_decay, clip_norm (<= 0: no clipping), accum_steps (>= 1).
    Returns (tx, lr_schedule); the schedule is indexed by optimizer updates.
    """
    if cfg.accum_steps < 1:
        raise ValueError(f"optim.accum_steps={cfg.accum_steps}; must be >= 1")
    lr = make_lr_schedule(cfg)
    parts = [optax.clip_by_global_norm(cfg.clip_norm)] if cfg.clip_norm > 0 else []
    parts.append(optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                             weight_decay=cfg.weight_decay))
    return optax.MultiSteps(optax.chain(*parts), every_k_schedule=cfg.accum_steps), lr
