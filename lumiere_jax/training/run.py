"""`build_run(config, mesh)`: everything a training run is, built once from its config.

    run = build_run(config, mesh)         # nothing is computed: shapes and shardings only
    step = run.compile()                  # the jitted train step, compiled for run.batch
    state, frozen = run.fresh_state()     # or restore into (run.state, run.frozen)
    state, metrics = step(state, frozen, batch)

`train.py`, `benchmarks/train_step.py` and the abstract-memory tests read the same
description instead of each rewiring params -> trainable mask -> split -> shardings ->
jit. The chain, in order: config -> model / encoder / tokenizer (`runs`) -> abstract
parameters and their shardings (logical-axis rules) -> trainable mask (stage) -> the
trainable / frozen split -> optimizer state shardings -> batch shardings -> jitted step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lumiere_jax.models import UNet, UNetConfig
from lumiere_jax.parallel import batch_sharding, param_shardings, with_shardings
from lumiere_jax.parallel.mesh import mesh_rules
from lumiere_jax.text import TextEncoder, Tokenizer
from lumiere_jax.training import setup
from lumiere_jax.training.optim import make_optimizer
from lumiere_jax.training.state import init_state, split_params, state_shardings
from lumiere_jax.training.step import StepConfig, make_train_step

PyTree = Any


def _state_key(config: Any) -> jax.Array:
    """The key a run's train state starts from (the step's own random draws)."""
    return jax.random.key(config.seed + 1, impl="threefry2x32")


@dataclasses.dataclass(frozen=True)
class Run:
    """A training run's parts. `state`, `frozen` and `batch` are sharded
    `ShapeDtypeStruct` trees (restore targets, compile arguments); the `*_shardings` are
    their `NamedSharding` trees; `mask` says which parameters train."""

    config: Any
    mesh: Mesh
    model_config: UNetConfig
    model: UNet
    encoder: TextEncoder
    tokenizer: Tokenizer
    step_config: StepConfig
    tx: optax.MultiSteps
    lr_schedule: Callable[[Any], Any]
    rules: tuple                     # logical-axis rules (config.mesh.rules or the default)
    xla_options: dict | None
    mask: PyTree
    param_shardings: PyTree
    state_shardings: PyTree
    frozen_shardings: PyTree
    batch_shardings: PyTree
    state: PyTree
    frozen: PyTree
    batch: PyTree
    null_ids: np.ndarray
    null_mask: np.ndarray
    train_step: Callable[..., Any]   # jitted (state, frozen, batch) -> (state, metrics)
    make_state: Callable[..., Any]   # jitted (trainable, key) -> state

    def state_key(self) -> jax.Array:
        """The key the train state starts from (the step's own random draws)."""
        return _state_key(self.config)

    def compile(self):
        """The train step compiled for `batch` (donates the state argument)."""
        with mesh_rules(self.mesh, self.rules):
            return self.train_step.lower(self.state, self.frozen, self.batch).compile(
                self.xla_options)

    def fresh_state(self) -> tuple[PyTree, PyTree]:
        """(train state, frozen weights) from scratch, born sharded; stunet / conditional
        runs inflate `config.train.init_from`."""
        params, _ = setup.init_params(self.config, self.model, self.encoder, self.mesh,
                                      self.rules)
        return self.state_from_params(params)

    def state_from_params(self, params: PyTree) -> tuple[PyTree, PyTree]:
        """(fresh train state, frozen weights) around the full `{'unet', 'text'}` tree
        `params` (sharded as `fresh_state` makes it): optimizer and EMA start anew."""
        trainable, frozen = split_params(params, self.mask)
        key = self.state_key()
        state = self.make_state.lower(trainable, key).compile(self.xla_options)(trainable, key)
        return state, frozen


def build_run(config: Any, mesh: Mesh) -> Run:
    """The `Run` of a checked train config on `mesh` (abstract: nothing is computed)."""
    model_config = setup.unet_config(config)
    model, encoder = UNet(model_config), TextEncoder(setup.text_config(config))
    tok = setup.tokenizer(config)
    step_config = setup.step_config(config, model_config)
    tx, lr_schedule = make_optimizer(config.optim)

    rules = setup.axis_rules(config)
    boxed = setup.abstract_params(config, model, encoder, mesh, rules)
    param_sh = param_shardings(boxed, mesh, rules)
    abstract = with_shardings(nn.meta.unbox(boxed), param_sh)
    mask = setup.trainable_tree(config, abstract)
    abstract_trainable, frozen = split_params(abstract, mask)
    _, frozen_sh = split_params(param_sh, mask)
    state_sh = state_shardings(split_params(boxed, mask)[0], tx, mesh, rules)
    make_state = jax.jit(lambda t, k: init_state(t, tx, k), out_shardings=state_sh)
    state = with_shardings(jax.eval_shape(make_state, abstract_trainable, _state_key(config)),
                           state_sh)

    batch_shapes = setup.abstract_batch_shapes(config, model_config)
    batch_sh = jax.tree.map(lambda _: batch_sharding(mesh), batch_shapes)
    null_ids, null_mask = (a[0] for a in tok.encode([""]))
    step_fn = make_train_step(model, encoder, tx, lr_schedule, step_config, null_ids, null_mask)
    with mesh_rules(mesh, rules):
        train_step = jax.jit(step_fn, in_shardings=(state_sh, frozen_sh, batch_sh),
                             out_shardings=(state_sh, NamedSharding(mesh, P())),
                             donate_argnums=(0,))
    return Run(config=config, mesh=mesh, model_config=model_config, model=model,
               encoder=encoder, tokenizer=tok, step_config=step_config, tx=tx,
               lr_schedule=lr_schedule, rules=rules, xla_options=setup.compiler_options(config),
               mask=mask,
               param_shardings=param_sh, state_shardings=state_sh, frozen_shardings=frozen_sh,
               batch_shardings=batch_sh, state=state, frozen=frozen,
               batch=with_shardings(batch_shapes, batch_sh), null_ids=null_ids,
               null_mask=null_mask, train_step=train_step, make_state=make_state)
