"""Mesh, logical rules and sharded execution on 8 fake CPU devices vs one device."""

from __future__ import annotations

import os
import sys

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

sys.path.insert(0, os.path.dirname(__file__))
import tiny_model  # noqa: E402

from lumiere_jax.parallel import (DEFAULT_RULES, batch_sharding, check_rules,  # noqa: E402
                                  init_sharded, initialize_distributed, logical_sharding,
                                  make_mesh, mesh_rules, param_shardings, shard_batch)
from lumiere_jax.training.optim import make_optimizer  # noqa: E402
from lumiere_jax.training.state import split_params, state_shardings  # noqa: E402

MESHES = [(8, 1, 1), (4, 2, 1), (2, 2, 2), (1, 8, 1), (1, 1, 8)]
NUM_STEPS = 3
BATCH = 8


def _mesh(shape):
    return make_mesh(dict(zip(("data", "fsdp", "tensor"), shape)))


@pytest.fixture(scope="module")
def reference():
    """Losses and params after NUM_STEPS SGD steps, all on one device, no mesh."""
    dev = jax.devices()[0]
    init = jax.device_get(nn.meta.unbox(jax.jit(tiny_model.init_fn)(jax.random.key(0))))
    params = jax.device_put(init["params"], dev)
    step = jax.jit(tiny_model.sgd_step)
    losses, grads0 = [], None
    for i in range(NUM_STEPS):
        batch = jax.device_put(tiny_model.make_batch(BATCH, seed=i), dev)
        params, loss, grads = step(params, batch)
        grads0 = grads if grads0 is None else grads0
        losses.append(float(loss))
    return {"init": init, "losses": np.array(losses), "params": jax.device_get(params),
            "grads0": jax.device_get(grads0)}


def test_eight_devices_available():
    assert jax.device_count() == 8, "tests/conftest.py should give 8 fake CPU devices"


def test_make_mesh_shapes_and_rest():
    assert dict(_mesh((2, 2, 2)).shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert dict(make_mesh({"data": -1}).shape) == {"data": 8, "fsdp": 1, "tensor": 1}
    assert dict(make_mesh({"data": 2, "fsdp": -1}).shape) == {"data": 2, "fsdp": 4, "tensor": 1}
    cfg = ml_collections.ConfigDict({"data": 1, "fsdp": 4, "tensor": 2})
    mesh = make_mesh(cfg)
    assert mesh.axis_names == ("data", "fsdp", "tensor")
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize("shape, match", [
    ({"data": 3}, "8 are available"),
    ({"data": 2, "fsdp": 2, "tensor": 1}, "8 are available"),
    ({"data": -1, "fsdp": -1}, "at most one"),
    ({"data": -1, "tensor": 3}, "does not divide"),
    ({"model": 8}, "unknown axes"),
    ({"data": 0, "fsdp": 8}, "'data' = 0"),
])
def test_make_mesh_rejects_bad_shapes(shape, match):
    with pytest.raises(ValueError, match=match):
        make_mesh(shape)


def _specs(shardings):
    return {"/".join(k.key for k in path): s.spec
            for path, s in jax.tree_util.tree_leaves_with_path(shardings)}


def test_param_shardings_follow_rules_and_replicate_indivisible_dims():
    abstract = jax.eval_shape(tiny_model.init_fn, jax.random.key(0))
    # Expected specs written out by hand from the rules: embed->fsdp, mlp->tensor, norm->None.
    specs = _specs(param_shardings(abstract, _mesh((2, 2, 2)), DEFAULT_RULES))
    assert specs["params/conv_in/kernel"] == P(None, None, "fsdp", "tensor")
    assert specs["params/conv_in/bias"] == P("tensor")
    assert specs["params/norm/scale"] == P()
    assert specs["params/time/kernel"] == P("fsdp", "tensor")
    assert specs["params/mlp_in/kernel"] == P("fsdp", "tensor")
    assert specs["params/conv_out/kernel"] == P(None, None, "fsdp", "tensor")
    # fsdp = 8: conv_in's 4 input channels do not divide by 8 -> that dim replicated
    # (size-1 mesh axes such as 'tensor' here stay named; they shard nothing).
    specs = _specs(param_shardings(abstract, _mesh((1, 8, 1)), DEFAULT_RULES))
    assert specs["params/conv_in/kernel"] == P(None, None, None, "tensor")
    assert specs["params/time/kernel"] == P("fsdp", "tensor")
    assert specs["params/conv_out/kernel"] == P(None, None, "fsdp", "tensor")
    assert specs["params/conv_out/bias"] == P("tensor")
    # tensor = 8: conv_out's 4 output channels (and its bias) replicated.
    specs = _specs(param_shardings(abstract, _mesh((1, 1, 8)), DEFAULT_RULES))
    assert specs["params/conv_out/kernel"] == P(None, None, "fsdp")
    assert specs["params/conv_out/bias"] == P()
    assert specs["params/mlp_in/bias"] == P("tensor")


def test_logical_sharding_drops_axes_until_divisible():
    mesh = _mesh((2, 2, 2))
    assert logical_sharding((8, 3), ("batch", None), mesh).spec == P(("data", "fsdp"))
    assert logical_sharding((6, 3), ("batch", None), mesh).spec == P("data")
    assert logical_sharding((5, 3), ("batch", None), mesh).spec == P()
    assert logical_sharding((4,), None, mesh).spec == P()
    with pytest.raises(ValueError, match="rank"):
        logical_sharding((4, 4), ("embed",), mesh)


def test_init_sharded_is_sharded_and_equals_plain_init(reference):
    mesh = _mesh((2, 2, 2))
    variables = init_sharded(tiny_model.init_fn, mesh, DEFAULT_RULES, jax.random.key(0))
    plain = reference["init"]
    kernel = variables["params"]["mlp_in"]["kernel"]
    assert kernel.shape == (16, 32)
    assert kernel.sharding.spec == P("fsdp", "tensor")
    assert {s.data.shape for s in kernel.addressable_shards} == {(8, 16)}
    # Same key, same values (jit vs eager may differ in the last ulp).
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                                         rtol=1e-6, atol=1e-7),
                 variables, plain)


def test_shard_batch_places_rows_and_validates():
    mesh = _mesh((2, 2, 2))
    local = tiny_model.make_batch(8)
    batch = shard_batch(local, mesh)
    assert batch["x"].sharding == batch_sharding(mesh)
    assert batch["x"].sharding.spec == P(("data", "fsdp"))
    # 4 batch shards of 2 rows each, each shard replicated over 'tensor'.
    assert {s.data.shape for s in batch["x"].addressable_shards} == {(2, 8, 8, 4)}
    for s in batch["x"].addressable_shards:
        np.testing.assert_array_equal(np.asarray(s.data), local["x"][s.index])
    with pytest.raises(ValueError, match="not divisible by data\\*fsdp = 4"):
        shard_batch({"x": np.zeros((6, 2), np.float32)}, mesh)
    with pytest.raises(ValueError, match="caption"):
        shard_batch({"caption": np.array(["a", "b", "c", "d"])}, mesh)


@pytest.mark.parametrize("shape", MESHES)
def test_sharded_training_matches_one_device(shape, reference):
    mesh = _mesh(shape)
    # Params placed by param_shardings (init_sharded itself is tested above; one init
    # compile per mesh would double this test's time).
    abstract = jax.eval_shape(tiny_model.init_fn, jax.random.key(0))
    pshard = param_shardings(abstract, mesh, DEFAULT_RULES)["params"]
    params = jax.device_put(reference["init"]["params"], pshard)
    bshard = batch_sharding(mesh)
    replicated = NamedSharding(mesh, P())
    step = jax.jit(tiny_model.sgd_step, in_shardings=(pshard, bshard),
                   out_shardings=(pshard, replicated, pshard), donate_argnums=(0,))
    losses = []
    with mesh_rules(mesh, DEFAULT_RULES):
        for i in range(NUM_STEPS):
            batch = shard_batch(tiny_model.make_batch(BATCH, seed=i), mesh)
            params, loss, grads = step(params, batch)
            if i == 0:
                jax.tree.map(lambda a, b: np.testing.assert_allclose(
                    np.asarray(a), b, rtol=1e-5, atol=1e-6), grads, reference["grads0"])
            losses.append(float(loss))
    # Stated tolerance: fp32, reductions reordered across shards -> rtol 1e-5.
    np.testing.assert_allclose(losses, reference["losses"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6),
                 params, reference["params"])
    assert params["mlp_in"]["kernel"].sharding.spec == pshard["mlp_in"]["kernel"].spec


def test_initialize_distributed_single_process_is_noop(monkeypatch):
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    assert initialize_distributed() is False
    assert initialize_distributed(num_processes=1) is False
    assert jax.process_count() == 1


def test_initialize_distributed_validates(monkeypatch):
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="coordinator"):
        initialize_distributed(num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="process_id=2"):
        initialize_distributed("127.0.0.1:1", num_processes=2, process_id=2)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES"):
        initialize_distributed()


def test_train_state_shardings_come_from_the_boxed_weights():
    """Adam moments and the accumulated gradients carry their weight's logical names
    through optax (`tx.init` of the boxed tree); counts and the key are replicated. The
    expected specs are the rules applied by hand: ('embed', 'mlp') -> ('fsdp', 'tensor')."""
    mesh = _mesh((2, 2, 2))
    boxed = jax.eval_shape(tiny_model.init_fn, jax.random.key(0))["params"]
    cfg = ml_collections.ConfigDict(dict(
        lr=1e-3, warmup_steps=1, decay_steps=10, end_lr_factor=0.1, b1=0.9, b2=0.99,
        eps=1e-8, weight_decay=0.0, clip_norm=1.0, accum_steps=2))
    tx, _ = make_optimizer(cfg)
    mask = jax.tree.map(lambda _: True, nn.meta.unbox(boxed))
    mask["norm"] = {"scale": False, "bias": False}  # frozen weights get no state
    trainable, frozen = split_params(boxed, mask)
    assert isinstance(trainable["mlp_in"]["kernel"], nn.LogicallyPartitioned)
    assert set(frozen) == {"norm"}
    sh = state_shardings(trainable, tx, mesh)
    assert sh["params"]["mlp_in"]["kernel"].spec == P("fsdp", "tensor")
    assert sh["ema"]["conv_in"]["kernel"].spec == P(None, None, "fsdp", "tensor")
    adam = sh["opt_state"].inner_opt_state[1][0]
    for tree in (adam.mu, adam.nu, sh["opt_state"].acc_grads):
        assert tree["mlp_in"]["kernel"].spec == P("fsdp", "tensor")
        assert tree["conv_out"]["kernel"].spec == P(None, None, "fsdp", "tensor")
        assert tree["conv_in"]["bias"].spec == P("tensor")
        assert "norm" not in tree
    assert adam.count.spec == P() and sh["opt_state"].mini_step.spec == P()
    assert sh["step"].spec == sh["rng"].spec == P()
    # The state that tx.init builds on the unboxed weights has exactly this structure.
    plain = jax.eval_shape(tx.init, nn.meta.unbox(trainable))
    assert jax.tree.structure(plain) == jax.tree.structure(sh["opt_state"])


def test_check_rules_from_a_config_and_its_errors():
    as_json = [["batch", ["data", "fsdp"]], ["embed", "fsdp"], ["norm", None]]
    assert check_rules(as_json) == (("batch", ("data", "fsdp")), ("embed", "fsdp"),
                                    ("norm", None))
    assert check_rules(DEFAULT_RULES) == DEFAULT_RULES
    with pytest.raises(ValueError, match=r"config.mesh.rules\[1\] \('embed'\): mesh axis 'model'"):
        check_rules([("batch", "data"), ("embed", "model")])
    with pytest.raises(ValueError, match="'embed' is given twice"):
        check_rules([("embed", "fsdp"), ("embed", None)])
    with pytest.raises(ValueError, match=r"config.mesh.rules\[0\]='embed'"):
        check_rules(["embed"])


def test_param_shardings_plain_partitioned_and_unboxed_leaves():
    mesh = _mesh((2, 2, 2))
    tree = {"a": nn.Partitioned(jax.ShapeDtypeStruct((4, 6), np.float32), names=("tensor", "data")),
            "odd": nn.Partitioned(jax.ShapeDtypeStruct((3, 6), np.float32),
                                  names=("tensor", "data")),
            "b": jax.ShapeDtypeStruct((3,), np.float32)}
    s = param_shardings(tree, mesh)
    assert s["a"].spec == P("tensor", "data")
    assert s["odd"].spec == P(None, "data")
    assert s["b"].spec == P()
