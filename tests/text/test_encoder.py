"""Small trainable TextEncoder vs a NumPy loop reference; padding / batch invariance."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.text.encoder import TextEncoder, TextEncoderConfig
from lumiere_jax.text.tokenizers import ByteTokenizer

CONFIG = TextEncoderConfig(max_length=16, width=32, depth=2, num_heads=4, mlp_ratio=2,
                           dropout_rate=0.1)
CAPTIONS = ["a red ball", "", "two circles orbit each other"]


@pytest.fixture(scope="module")
def model():
    encoder = TextEncoder(CONFIG)
    ids, mask = ByteTokenizer(CONFIG.max_length).encode(CAPTIONS)
    variables = jax.eval_shape(encoder.init, jax.random.key(0), ids, mask)  # boxed, abstract
    # Random weights everywhere (an init has zero biases), norm scales near 1.
    rng = np.random.default_rng(1)
    params = jax.tree_util.tree_map_with_path(
        lambda path, a: (path[-1].key == "scale")
        + 0.2 * rng.standard_normal(a.shape).astype(np.float32),
        nn.meta.unbox(variables["params"]))
    apply = jax.jit(lambda p, ids, mask: encoder.apply({"params": p}, ids, mask))
    return encoder, variables, params, apply, ids, mask


def _layer_norm(x, p, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _dense(x, p):
    return x @ p["kernel"] + p["bias"]


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def reference(params, ids, mask, config):
    """One caption at a time, one head at a time, float64."""
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    out = []
    for tokens, m in zip(ids, mask):
        x = (params["token_embedding"]["embedding"][tokens]
             + params["position_embedding"][: len(tokens)])
        for i in range(config.depth):
            p = params[f"block_{i}"]
            h = _layer_norm(x, p["attention_norm"])
            q, k, v = (_dense(h, p[n]) for n in ("query", "key", "value"))
            d = config.width // config.num_heads
            heads = []
            for j in range(config.num_heads):
                sl = slice(j * d, (j + 1) * d)
                scores = q[:, sl] @ k[:, sl].T / np.sqrt(d)
                scores = np.where(m[None, :], scores, -np.inf)
                w = np.exp(scores - scores.max(-1, keepdims=True))
                heads.append((w / w.sum(-1, keepdims=True)) @ v[:, sl])
            x = x + _dense(np.concatenate(heads, -1), p["out"])
            h = _gelu_tanh(_dense(_layer_norm(x, p["mlp_norm"]), p["mlp_in"]))
            x = x + _dense(h, p["mlp_out"])
        out.append(_layer_norm(x, params["final_norm"]))
    return np.stack(out)


def test_matches_numpy_reference(model):
    _, _, params, apply, ids, mask = model
    states, out_mask = apply(params, ids, mask)
    assert states.shape == (3, CONFIG.max_length, CONFIG.width)
    np.testing.assert_array_equal(out_mask, mask)
    np.testing.assert_allclose(states, reference(params, ids, mask, CONFIG), atol=2e-5, rtol=2e-5)


def test_padding_and_batch_do_not_change_real_tokens(model):
    _, _, params, apply, ids, mask = model
    states, _ = apply(params, ids, mask)
    junk = np.where(mask, ids,
                    np.random.default_rng(0).integers(0, 259, ids.shape)).astype(np.int32)
    junk_states, _ = apply(params, junk, mask)
    reversed_states, _ = apply(params, ids[::-1], mask[::-1])
    short_ids, short_mask = ByteTokenizer(12).encode(CAPTIONS[:1])  # same caption, less padding
    short_states, _ = apply(params, short_ids, short_mask)
    m = mask[..., None]
    np.testing.assert_allclose(junk_states * m, states * m, atol=1e-6)
    np.testing.assert_allclose(reversed_states[::-1], states, atol=1e-6)
    n = int(short_mask.sum())
    np.testing.assert_allclose(short_states[0, :n], states[0, :n], atol=1e-5)


def test_trainable_gradients_and_dropout(model):
    encoder, _, params, _, ids, mask = model

    def loss(p, key):
        states, m = encoder.apply({"params": p}, ids, mask, train=True, rngs={"dropout": key})
        return jnp.sum(jnp.where(m[..., None], states, 0.0) ** 3), states

    grad_fn = jax.jit(jax.grad(loss, has_aux=True))
    grads, a = grad_fn(params, jax.random.key(3))
    _, b = grad_fn(params, jax.random.key(4))
    norms = jax.tree.leaves(jax.tree.map(lambda g: float(jnp.abs(g).max()), grads))
    assert all(np.isfinite(norms)) and all(n > 0 for n in norms)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-3  # dropout is on and keyed


def test_logical_axis_metadata_and_length_check(model):
    encoder, variables, params, _, ids, mask = model
    kernel = variables["params"]["block_0"]["query"]["kernel"]
    assert isinstance(kernel, nn.LogicallyPartitioned) and kernel.names == ("embed", "mlp")
    too_long = np.zeros((1, CONFIG.max_length + 1), np.int32)
    with pytest.raises(ValueError, match="max_length=16"):
        encoder.apply({"params": params}, too_long)
    with pytest.raises(ValueError, match=r"mask shape \(3, 15\) must equal ids shape \(3, 16\)"):
        encoder.apply({"params": params}, ids, mask[:, :-1])
    with pytest.raises(ValueError, match="ids must be"):
        encoder.apply({"params": params}, ids.astype(np.float32), mask)


@pytest.mark.parametrize("bad,match", [(dict(width=30), "divisible"), (dict(depth=0), "depth"),
                                       (dict(dropout_rate=1.0), "dropout_rate")])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        TextEncoderConfig(**bad)


def test_temporal_encoder_is_a_second_independent_encoder(model):
    """`temporal_width`: states = [main encoder | `temporal_encoder`], each equal to the
    NumPy reference of its own weights; the temporal part trains only through its own."""
    _, _, params, _, ids, mask = model
    wide = TextEncoderConfig(max_length=16, width=32, depth=2, num_heads=4, mlp_ratio=2,
                             temporal_width=8, temporal_depth=1)
    encoder = TextEncoder(wide)
    shapes = nn.meta.unbox(jax.eval_shape(encoder.init, jax.random.key(0), ids, mask)["params"])
    rng = np.random.default_rng(2)
    temporal = jax.tree_util.tree_map_with_path(
        lambda path, a: (path[-1].key == "scale")
        + 0.2 * rng.standard_normal(a.shape).astype(np.float32),
        shapes["temporal_encoder"])
    assert set(shapes) == set(params) | {"temporal_encoder"}
    both = dict(params, temporal_encoder=temporal)
    states, _ = jax.jit(lambda p: encoder.apply({"params": p}, ids, mask))(both)
    assert states.shape == (3, 16, 40) and wide.output_width == 40
    np.testing.assert_allclose(states[..., :32], reference(params, ids, mask, CONFIG),
                               atol=2e-5, rtol=2e-5)
    sub = TextEncoderConfig(max_length=16, width=8, depth=1, num_heads=4, mlp_ratio=2)
    np.testing.assert_allclose(states[..., 32:], reference(temporal, ids, mask, sub),
                               atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("bad,match", [(dict(temporal_width=6), "temporal_width"),
                                       (dict(temporal_width=8, temporal_depth=0),
                                        "temporal_depth"),
                                       (dict(temporal_width=8, temporal_kind="bag"),
                                        "temporal_kind='bag'; valid"),
                                       (dict(temporal_width=8, vocab_size=9,
                                             temporal_kind="one_hot"),
                                        r"temporal_width \(8\) must be >= vocab_size \(9\)")])
def test_temporal_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        TextEncoderConfig(width=32, num_heads=4, **bad)


def test_one_hot_temporal_states_are_the_token_ids(model):
    """`temporal_kind='one_hot'`: the temporal part is each real token's one-hot id
    (padding all zero) and adds no parameters; the main part is unchanged."""
    _, _, params, _, ids, mask = model
    cfg = TextEncoderConfig(vocab_size=CONFIG.vocab_size, max_length=16, width=32, depth=2,
                            num_heads=4, mlp_ratio=2, temporal_width=-(-CONFIG.vocab_size // 4) * 4,
                            temporal_kind="one_hot")
    encoder = TextEncoder(cfg)
    shapes = nn.meta.unbox(jax.eval_shape(encoder.init, jax.random.key(0), ids, mask)["params"])
    assert set(shapes) == set(params)
    states = np.asarray(encoder.apply({"params": params}, ids, mask)[0])
    np.testing.assert_allclose(states[..., :32], reference(params, ids, mask, CONFIG),
                               atol=2e-5, rtol=2e-5)
    ids, mask = np.asarray(ids), np.asarray(mask)
    expected = np.zeros(ids.shape + (cfg.temporal_width,), np.float32)
    for b in range(ids.shape[0]):
        for i in range(ids.shape[1]):
            if mask[b, i]:
                expected[b, i, ids[b, i]] = 1.0
    np.testing.assert_array_equal(states[..., 32:], expected)
    assert 0 < mask.sum() < mask.size  # the batch has padding to check
