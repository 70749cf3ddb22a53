"""Train state: trainable weights, their EMA and optimizer state; frozen weights apart.

The state is a plain dict (orbax saves and restores it as is):
  step (int32), params (trainable subtree), ema (same structure), opt_state (optax, for
  the trainable subtree only), rng (typed threefry key), nonfinite (consecutive skipped
  steps), skipped (total skipped steps).
Frozen weights never enter the state: they are a separate argument of the step, not
differentiated and not updated (stunet: the whole T2I U-Net and text encoder).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lumiere_jax.parallel import DEFAULT_RULES, param_shardings

PyTree = Any


def split_params(params: PyTree, mask: PyTree) -> tuple[dict, dict]:
    """(trainable, frozen) nested dicts: leaves of `params` where `mask` is True / False.

    params: nested dict of arrays (or shardings / structs, or flax `Partitioned` boxes,
      which stay boxed); mask: same structure of bool.
    """
    flat = traverse_util.flatten_dict(params)
    flat_mask = traverse_util.flatten_dict(mask)
    if set(flat) != set(flat_mask):
        raise ValueError("mask and params have different structures: "
                         f"{sorted(set(flat) ^ set(flat_mask))[:5]}")
    train = {p: v for p, v in flat.items() if flat_mask[p]}
    frozen = {p: v for p, v in flat.items() if not flat_mask[p]}
    return traverse_util.unflatten_dict(train), traverse_util.unflatten_dict(frozen)


def merge_params(trainable: PyTree, frozen: PyTree) -> dict:
    """Inverse of `split_params`."""
    flat = dict(traverse_util.flatten_dict(frozen))
    flat.update(traverse_util.flatten_dict(trainable))
    return traverse_util.unflatten_dict(flat)


def ema_decay_at(decay: float, step: jax.Array, warmup: bool) -> jax.Array:
    """The EMA decay used at train step `step` (0-based): `decay`, or with `warmup`
    `min(decay, (1 + step) / (10 + step))` (as tf.train.ExponentialMovingAverage with
    num_updates), so a short run's EMA is not dominated by its initial weights (at
    decay 0.999 a plain EMA still holds 0.999**1000 = 37% of the init after 1000 steps)."""
    decay = jnp.float32(decay)
    if not warmup:
        return decay
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema: PyTree, params: PyTree, decay: float | jax.Array) -> PyTree:
    """`ema <- decay * ema + (1 - decay) * params`, leafwise (float32 accumulation)."""
    return jax.tree.map(
        lambda e, p: (decay * e.astype(jnp.float32)
                      + (1.0 - decay) * p.astype(jnp.float32)).astype(e.dtype), ema, params)


def init_state(trainable: PyTree, tx: optax.GradientTransformation, key: jax.Array) -> dict:
    """A fresh state for `trainable` weights; `key` (threefry) seeds every in-step draw."""
    return dict(step=jnp.zeros((), jnp.int32), params=trainable,
                ema=jax.tree.map(jnp.copy, trainable), opt_state=tx.init(trainable), rng=key,
                nonfinite=jnp.zeros((), jnp.int32), skipped=jnp.zeros((), jnp.int32))


def state_shardings(boxed_trainable: PyTree, tx: optax.GradientTransformation, mesh: Mesh,
                    rules=DEFAULT_RULES) -> dict:
    """Shardings of `init_state(...)`, read from the logical names the weights carry.

    boxed_trainable: the trainable weights as flax `LogicallyPartitioned` boxes (e.g. from
      `jax.eval_shape` of the model's init, before unboxing). optax builds its state with
      tree maps over the weights, so `tx.init` of the boxed tree keeps each moment in its
      weight's box: every optimizer leaf gets the sharding its names give, and what has no
      names (step counts) is replicated. Params and EMA follow the weights; the counters
      and the key are replicated. Returns shardings with the unboxed state's structure.
    """
    replicated = NamedSharding(mesh, P())
    weights = param_shardings(boxed_trainable, mesh, rules)
    opt_state = param_shardings(jax.eval_shape(tx.init, boxed_trainable), mesh, rules)
    return dict(step=replicated, params=weights, ema=weights, opt_state=opt_state,
                rng=replicated, nonfinite=replicated, skipped=replicated)
