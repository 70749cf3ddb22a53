"""Style interpolation against a NumPy closed form on tiny STUNet / T2I trees.

Weights are NumPy random arrays on `jax.eval_shape` structures: no model is compiled.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from lumiere_jax.applications import interpolate_spatial_weights
from lumiere_jax.models import UNet, dummy_inputs, presets

STUNET = presets.tiny_stunet(cond_channels=4)
T2I = presets.tiny_t2i()


def random_params(config, seed):
    """NumPy-random leaves on the abstract param tree of `UNet(config)`."""
    inputs = dummy_inputs(config, batch=1)
    shapes = jax.eval_shape(lambda: nn.meta.unbox(
        UNet(config).init(jax.random.key(0), **inputs)["params"]))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)


def flat(tree):
    return traverse_util.flatten_dict(tree)


def trains(path):
    return any(part.startswith(("temporal_", "cond_")) for part in path)


@pytest.fixture(scope="module")
def trees():
    return random_params(STUNET, 0), random_params(T2I, 1)


def test_endpoints_and_untouched_temporal_weights(trees):
    stunet, style = trees
    orig, sty = flat(stunet), flat(style)
    assert any(trains(p) for p in orig) and any(p[0] == "cond_input_conv" for p in orig)
    for alpha in (0.0, 0.5, 0.7, 1.0):
        out = flat(interpolate_spatial_weights(stunet, style, alpha))
        assert out.keys() == orig.keys()
        for path, leaf in orig.items():
            got = np.asarray(out[path])
            assert got.dtype == leaf.dtype and got.shape == leaf.shape, path
            if trains(path):
                np.testing.assert_array_equal(got, leaf, err_msg=str(path))
            elif alpha == 0.0:
                np.testing.assert_array_equal(got, leaf, err_msg=str(path))
            elif alpha == 1.0:
                np.testing.assert_array_equal(got, sty[path], err_msg=str(path))


def test_linear_in_alpha_matches_numpy(trees):
    stunet, style = trees
    orig, sty = flat(stunet), flat(style)
    alpha = 0.7
    out = flat(interpolate_spatial_weights(stunet, style, alpha))
    spatial = [p for p in orig if not trains(p)]
    assert len(spatial) > 10
    for path in spatial:
        o, s = orig[path].astype(np.float64), sty[path].astype(np.float64)
        expected = alpha * s + (1 - alpha) * o
        np.testing.assert_allclose(np.asarray(out[path]), expected, rtol=1e-6, atol=1e-6,
                                   err_msg=str(path))
    # Traced alpha (one jit serves every alpha) gives the same result.
    traced = flat(jax.jit(lambda a: interpolate_spatial_weights(stunet, style, a))(
        jnp.float32(alpha)))
    for path in spatial:
        np.testing.assert_allclose(np.asarray(traced[path]), np.asarray(out[path]), rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), np.ones(2), "0.5", True])
def test_bad_alpha(trees, alpha):
    with pytest.raises(ValueError, match="alpha"):
        interpolate_spatial_weights(*trees, alpha)


def test_trees_that_do_not_fit_name_paths(trees):
    stunet, style = trees
    narrow = traverse_util.unflatten_dict(
        {p: (v[..., :8] if p == ("down0_0_res", "conv_0", "kernel") else v)
         for p, v in flat(style).items()})
    with pytest.raises(ValueError, match=r"style_t2i_params do not fit[\s\S]*shape .*"
                                         r"down0_0_res/conv_0/kernel"):
        interpolate_spatial_weights(stunet, narrow, 0.5)
    partial = {k: v for k, v in style.items() if k != "out_conv"}
    with pytest.raises(ValueError, match="missing from style_t2i_params: out_conv/kernel"):
        interpolate_spatial_weights(stunet, partial, 0.5)
    extra = dict(style, extra_layer={"kernel": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="not in stunet_params: extra_layer/kernel"):
        interpolate_spatial_weights(stunet, extra, 0.5)


def test_full_stunet_as_style_tree_leaves_its_temporal_weights_unused(trees):
    """A style-fine-tuned STUNet works too; only its spatial weights are used."""
    stunet, _ = trees
    rng = np.random.default_rng(3)
    style = jax.tree.map(lambda v: rng.standard_normal(v.shape).astype(v.dtype), stunet)
    out, orig, sty = (flat(t) for t in (interpolate_spatial_weights(stunet, style, 1.0),
                                        stunet, style))
    for path in orig:
        np.testing.assert_array_equal(out[path], orig[path] if trains(path) else sty[path])
