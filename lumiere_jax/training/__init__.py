"""Training: optimizer, train state (trainable / frozen split, EMA), loss step, metrics.

    tx, lr = make_optimizer(config.optim)
    state, frozen = init_state(params, mask, tx, key)          # see state.py
    step = make_train_step(model, encoder, tx, lr, schedule, ...)
    state, metrics = step(state, frozen, batch)                # jit it with shardings
"""

from lumiere_jax.training.optim import make_lr_schedule, make_optimizer
from lumiere_jax.training.state import (ema_decay_at, ema_update, init_state, merge_params,
                                        split_params, state_shardings)
from lumiere_jax.training.step import StepConfig, make_sample_fn, make_train_step
from lumiere_jax.training.metrics import MetricWriter

__all__ = ["MetricWriter", "StepConfig", "ema_decay_at", "ema_update", "init_state",
           "make_lr_schedule",
           "make_optimizer", "make_sample_fn", "make_train_step", "merge_params",
           "split_params", "state_shardings"]
