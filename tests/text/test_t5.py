"""Flax T5 encoder vs a fixture from Hugging Face `transformers`
(tests/fixtures/make_t5_fixture.py)."""

import pathlib

import flax.linen as nn
import jax
import numpy as np
import pytest
from safetensors.numpy import load_file

from lumiere_jax.text.t5 import T5Config, T5Encoder, relative_position_bucket
from lumiere_jax.text.t5_weights import load_t5_encoder

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "t5_tiny"


@pytest.fixture(scope="module")
def expected():
    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="module")
def t5():
    encoder, params = load_t5_encoder(FIXTURE)
    apply = jax.jit(lambda ids, mask: encoder.apply({"params": params}, ids, mask))
    return encoder, params, apply


def test_config_read_from_hf_json():
    c = T5Config.from_hf(FIXTURE)
    assert ((c.d_model, c.d_kv, c.d_ff, c.num_layers, c.num_heads, c.vocab_size)
            == (32, 6, 64, 2, 4, 128))
    assert (c.relative_attention_max_distance == 20 and c.is_gated
            and c.activation_name == "gelu_new")


def test_matches_transformers_reference(t5, expected):
    _, _, apply = t5
    states, mask = apply(expected["ids"], expected["mask"])
    np.testing.assert_allclose(states, expected["states"], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(mask, expected["mask"])
    states, _ = apply(expected["ids"], np.ones_like(expected["mask"]))
    np.testing.assert_allclose(states, expected["states_unmasked"], atol=1e-5, rtol=1e-5)
    # The masked and unmasked references differ, so the mask is really exercised.
    assert np.abs(expected["states"] - expected["states_unmasked"]).max() > 1e-2


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (32, 20), (64, 256), (8, 16)])
def test_relative_position_buckets_match_transformers(expected, num_buckets, max_distance):
    got = relative_position_bucket(expected["relative_positions"], bidirectional=True,
                                   num_buckets=num_buckets, max_distance=max_distance)
    np.testing.assert_array_equal(got, expected[f"buckets_{num_buckets}_{max_distance}"])


def test_padding_does_not_change_real_tokens(t5, expected):
    _, _, apply = t5
    ids, mask = expected["ids"][1:2], expected["mask"][1:2]  # 13 real tokens of 24
    n = int(mask.sum())
    ref = expected["states"][1, :n]
    # Same caption, trimmed to its real tokens / padded to 24 with junk ids / padded to 40.
    trimmed, _ = apply(ids[:, :n], mask[:, :n])
    junk = np.where(mask, ids,
                    np.random.default_rng(1).integers(0, 128, ids.shape)).astype(np.int32)
    junk_states, _ = apply(junk, mask)
    long_ids = np.pad(ids, ((0, 0), (0, 16)))
    long_states, _ = apply(long_ids, np.pad(mask, ((0, 0), (0, 16))))
    for got in (trimmed, junk_states, long_states):
        np.testing.assert_allclose(np.asarray(got)[0, :n], ref, atol=1e-5, rtol=1e-5)


def test_rows_do_not_depend_on_batch(t5, expected):
    _, _, apply = t5
    batched, _ = apply(expected["ids"], expected["mask"])
    for i in range(expected["ids"].shape[0]):
        alone, _ = apply(expected["ids"][i:i + 1], expected["mask"][i:i + 1])
        np.testing.assert_allclose(alone[0], batched[i], atol=1e-5, rtol=1e-5)
    shuffled, _ = apply(expected["ids"][::-1], expected["mask"][::-1])
    np.testing.assert_allclose(shuffled[::-1], batched, atol=1e-5, rtol=1e-5)


def test_init_tree_equals_converted_tree(t5, expected):
    encoder, params, _ = t5
    abstract = jax.eval_shape(encoder.init, jax.random.key(0), expected["ids"], expected["mask"])
    shapes = jax.tree.map(lambda a: a.shape, nn.meta.unbox(abstract["params"]))
    assert shapes == jax.tree.map(np.shape, params)
    # Logical axis names for sharding ride on the init boxes.
    boxed = abstract["params"]["block_0"]["mlp"]["wo"]["kernel"]
    assert isinstance(boxed, nn.LogicallyPartitioned) and boxed.names == ("mlp", "embed")


def test_fresh_init_runs_and_relu_variant():
    config = T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=24, num_layers=1, num_heads=2,
                      feed_forward_proj="relu")
    ids = np.arange(12, dtype=np.int32).reshape(2, 6)
    abstract = nn.meta.unbox(jax.eval_shape(T5Encoder(config).init, jax.random.key(0), ids))
    assert set(abstract["params"]["block_0"]["mlp"]) == {"wi", "wo"}  # ungated: one input kernel
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda a: 0.3 * rng.standard_normal(a.shape, np.float32), abstract)
    states, mask = jax.jit(T5Encoder(config).apply)(variables, ids)
    assert states.shape == (2, 6, 16) and bool(mask.all()) and np.isfinite(states).all()


@pytest.mark.parametrize("bad,match", [
    (dict(feed_forward_proj="gated-swish"), "activation"),
    (dict(feed_forward_proj="fancy-gated-gelu"), "feed_forward_proj"),
    (dict(num_heads=0), "num_heads"),
    (dict(relative_attention_num_buckets=6), "relative_attention_num_buckets"),
])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        T5Config(**bad)


def test_config_from_hf_names_missing_fields():
    with pytest.raises(ValueError, match="d_ff"):
        T5Config.from_hf({"vocab_size": 10, "d_model": 8, "d_kv": 4, "num_layers": 1,
                          "num_heads": 2, "relative_attention_num_buckets": 8})


def test_sharded_over_eight_devices_matches_reference(t5, expected):
    """Converted weights placed with the logical-axis shardings (fsdp x tensor) give the same
    states."""
    from lumiere_jax.parallel import make_mesh, param_shardings

    encoder, params, _ = t5
    mesh = make_mesh({"fsdp": 4, "tensor": 2})
    abstract = jax.eval_shape(encoder.init, jax.random.key(0), expected["ids"], expected["mask"])
    shardings = param_shardings(abstract["params"], mesh)
    sharded = jax.device_put(params, shardings)
    wi = sharded["block_0"]["mlp"]["wi_0"]["kernel"]  # (d_model, d_ff) = ('embed', 'mlp')
    assert wi.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    states, _ = jax.jit(lambda p, i, m: encoder.apply({"params": p}, i, m))(
        sharded, expected["ids"], expected["mask"])
    np.testing.assert_allclose(states, expected["states"], atol=1e-5, rtol=1e-5)
