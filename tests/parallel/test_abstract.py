"""Abstract compilation: sharded ShapeDtypeStructs in, per-device memory out."""

from __future__ import annotations

import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import tiny_model  # noqa: E402

from lumiere_jax.parallel import (DEFAULT_RULES, abstract_batch, abstract_sharded,  # noqa: E402
                                  compile_abstract, make_mesh, memory_report,
                                  param_shardings, remat_compiler_options,
                                  tree_bytes_per_device)

BATCH = 16


@pytest.fixture(scope="module")
def compiled():
    mesh = make_mesh({"data": 2, "fsdp": 4})
    params = abstract_sharded(tiny_model.init_fn, mesh, DEFAULT_RULES, jax.random.key(0))["params"]
    batch = abstract_batch({"x": ((BATCH, 8, 8, tiny_model.C_IN), jnp.float32),
                            "t": ((BATCH,), jnp.float32),
                            "y": ((BATCH, 8, 8, tiny_model.C_IN), jnp.float32)}, mesh)
    out_shardings = (jax.tree.map(lambda s: s.sharding, params), None, None)
    step = compile_abstract(tiny_model.sgd_step, params, batch, mesh=mesh,
                            out_shardings=out_shardings, donate_argnums=(0,))
    return mesh, params, batch, step


def test_abstract_params_are_structs_with_rule_shardings(compiled):
    mesh, params, _, _ = compiled
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(params))
    expected = param_shardings(jax.eval_shape(tiny_model.init_fn, jax.random.key(0)), mesh)
    jax.tree.map(lambda x, s: (x.sharding == s) or pytest.fail(f"{x.sharding} != {s}"),
                 params, expected["params"])
    assert params["mlp_in"]["kernel"].shape == (tiny_model.WIDTH, tiny_model.HIDDEN)


def test_memory_report_counts_per_device_arguments(compiled):
    mesh, params, batch, step = compiled
    report = memory_report(step)
    # Independent count: materialize the same shardings and add up device 0's buffers.
    concrete = jax.device_put(
        jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), (params, batch)),
        jax.tree.map(lambda x: x.sharding, (params, batch)))
    dev0 = mesh.devices.flat[0]
    on_dev0 = sum(s.data.nbytes for a in jax.tree.leaves(concrete)
                  for s in a.addressable_shards if s.device == dev0)
    assert report["argument_bytes"] == on_dev0 == tree_bytes_per_device((params, batch))
    full = sum(int(np.prod(x.shape)) * 4 for x in jax.tree.leaves((params, batch)))
    assert on_dev0 < full / 4  # batch over 8 devices, kernels over fsdp = 4
    assert report["alias_bytes"] > 0  # donated params are reused for the new params
    assert report["total_bytes"] == (report["argument_bytes"] + report["output_bytes"]
                                     - report["alias_bytes"] + report["temp_bytes"]
                                     + report["generated_code_bytes"])
    assert report["total_gib"] == pytest.approx(report["total_bytes"] / 2**30)


def test_compiled_abstract_step_runs_on_real_sharded_inputs(compiled):
    # The executable built from structs alone accepts real arrays with those shardings.
    mesh, params, batch, step = compiled
    init = jax.device_get(nn.meta.unbox(jax.jit(tiny_model.init_fn)(jax.random.key(0)))["params"])
    data = tiny_model.make_batch(BATCH)
    ref = jax.jit(tiny_model.loss_fn)(init, data)
    real_params = jax.device_put(init, jax.tree.map(lambda x: x.sharding, params))
    real_batch = jax.device_put(data, jax.tree.map(lambda x: x.sharding, batch))
    _, loss, _ = step(real_params, real_batch)  # donates real_params
    np.testing.assert_allclose(float(loss), float(ref), rtol=1e-5)


def test_compile_abstract_keeps_rematerialization():
    """A checkpointed 6-layer MLP's gradient needs less temp memory than the plain one
    (XLA:CPU would CSE the recomputation away without `remat_compiler_options()`)."""
    def loss(ws, x, remat):
        layer = lambda w, h: jnp.tanh(jnp.tanh(h @ w) @ w)
        layer = jax.checkpoint(layer) if remat else layer
        for w in ws:
            x = layer(w, x)
        return jnp.sum(x ** 2)

    assert remat_compiler_options("gpu") == remat_compiler_options("tpu") == {}
    assert remat_compiler_options("cpu") == {"xla_disable_hlo_passes": "cse_barrier_expander"}
    ws = [jax.ShapeDtypeStruct((64, 64), jnp.float32)] * 6
    x = jax.ShapeDtypeStruct((4096, 64), jnp.float32)
    temp = {r: compile_abstract(jax.grad(lambda w, h, r=r: loss(w, h, r)), ws, x)
            .memory_analysis().temp_size_in_bytes for r in (False, True)}
    activation = 4096 * 64 * 4
    # Plain: both tanh outputs of every layer live until the backward pass (12 activations).
    assert temp[False] >= 12 * activation
    # Remat: the 6 layer inputs plus a few working buffers.
    assert temp[True] <= 9 * activation, (temp, activation)
