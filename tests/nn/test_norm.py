"""The fused GroupNorm (+ modulation + SiLU, hand-written gradient) against flax's
`nn.GroupNorm` followed by the same modulation and `nn.silu` under autodiff."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from lumiere_jax.nn.norm import GroupNorm, group_norm

CASES = {  # name: (x shape, groups, silu, modulated)
    "frames": ((6, 5, 7, 16), 4, True, True),
    "frames_plain": ((6, 5, 7, 16), 8, False, False),
    "pixel_sequences": ((10, 8, 12), 12, True, True),   # one channel per group
    "clips": ((2, 3, 4, 4, 8), 2, True, False),
}


def reference(params, x, mod_scale, mod_shift, groups, silu):
    """flax's GroupNorm, then `* (1 + mod_scale) + mod_shift` and SiLU, as the blocks did."""
    h = nn.GroupNorm(num_groups=groups, epsilon=1e-5).apply({"params": params}, x)
    expand = (slice(None),) + (None,) * (x.ndim - 2)
    if mod_scale is not None:
        h = h * (1.0 + mod_scale[expand]) + mod_shift[expand]
    return nn.silu(h) if silu else h


def fused(params, x, mod_scale, mod_shift, groups, silu):
    return GroupNorm(groups, silu=silu).apply({"params": params}, x, mod_scale, mod_shift)


def inputs(shape, modulated, seed=0):
    keys = jax.random.split(jax.random.key(seed), 6)
    channels = shape[-1]
    x = 1.5 * jax.random.normal(keys[0], shape) + 0.3
    params = {"scale": 1.0 + 0.2 * jax.random.normal(keys[1], (channels,)),
              "bias": 0.2 * jax.random.normal(keys[2], (channels,))}
    mods = (0.3 * jax.random.normal(keys[3], (shape[0], channels)),
            0.3 * jax.random.normal(keys[4], (shape[0], channels))) if modulated else (None, None)
    weights = jax.random.normal(keys[5], shape)
    return params, x, mods, weights


def value_and_grads(fn, params, x, mods, weights, groups, silu):
    """The op's output and the gradient of `sum(out * weights)` w.r.t. every input."""
    def loss(params, x, mods):
        out = fn(params, x, *mods, groups, silu)
        return jnp.sum(out * weights), out
    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(params, x, mods)
    return out, grads


@pytest.mark.parametrize("case", CASES)
def test_fused_norm_equals_flax_group_norm_modulation_and_silu(case):
    shape, groups, silu, modulated = CASES[case]
    params, x, mods, weights = inputs(shape, modulated)
    want = value_and_grads(reference, params, x, mods, weights, groups, silu)
    got = jax.jit(value_and_grads, static_argnums=(0, 5, 6))(
        fused, params, x, mods, weights, groups, silu)
    assert got[0].shape == x.shape
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


def test_bf16_compute_returns_bf16_close_to_the_float32_op():
    params, x, (scale, shift), _ = inputs((4, 6, 6, 16), True)
    out = GroupNorm(4, silu=True, dtype=jnp.bfloat16).apply({"params": params}, x, scale, shift)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32),
                               reference(params, x, scale, shift, 4, True), atol=3e-2)


def test_parameters_are_those_of_flax_group_norm_with_logical_names():
    x = jnp.zeros((2, 4, 4, 24))
    ours = group_norm(24, 32, name="norm", dtype=jnp.float32, param_dtype=jnp.float32)
    assert ours.num_groups == 24  # the largest count <= 32 dividing 24
    variables = ours.init(jax.random.key(0), x)
    flax_tree = nn.GroupNorm(num_groups=24).init(jax.random.key(0), x)
    assert (jax.tree.map(jnp.shape, nn.unbox(variables))
            == jax.tree.map(jnp.shape, flax_tree))
    np.testing.assert_array_equal(nn.unbox(variables)["params"]["scale"], 1.0)
    names = jax.tree.leaves(nn.get_partition_spec(variables))
    assert names == [P("norm"), P("norm")]


def test_sharded_over_eight_devices_equals_one_device():
    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    shape, groups, silu, modulated = (16, 4, 4, 16), 4, True, True
    params, x, mods, weights = inputs(shape, modulated, seed=1)
    batch = NamedSharding(mesh, P("batch"))
    x_s, w_s = jax.device_put(x, batch), jax.device_put(weights, batch)
    mods_s = jax.device_put(mods, batch)
    run = jax.jit(value_and_grads, static_argnums=(0, 5, 6))
    got = run(fused, params, x_s, mods_s, w_s, groups, silu)
    assert got[0].sharding.spec[0] == "batch"
    want = value_and_grads(reference, params, x, mods, weights, groups, silu)
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
