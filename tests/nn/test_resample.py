"""Temporal resamplers against NumPy references (the init filter and trained weights), the
upsampler's polyphase form against repeat + pad + flax's nn.Conv (values, gradients, 8
devices), and its parameters against the conv layer it replaced."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from einops import rearrange
from jax.sharding import NamedSharding, PartitionSpec as P

from lumiere_jax.nn.resample import TemporalDownsample, TemporalUpsample, upsample_sequences

TAPS = np.array([0.25, 0.5, 0.25])


def numpy_smooth(seq: np.ndarray, stride: int) -> np.ndarray:
    """Reference: edge-padded [1/4, 1/2, 1/4] filter along axis 1, then stride."""
    padded = np.concatenate([seq[:, :1], seq, seq[:, -1:]], axis=1)
    out = [sum(TAPS[k] * padded[:, i + k] for k in range(3))
           for i in range(0, seq.shape[1], stride)]
    return np.stack(out, axis=1)


def run(module, clip):
    """clip: (B, T, H, W, C) -> module applied on (B*T, H, W, C) -> (B, T', H, W, C)."""
    x = rearrange(clip, "b t h w c -> (b t) h w c")
    params = module.init(jax.random.key(0), x)
    out = jax.jit(module.apply)(params, x)
    return rearrange(out, "(b t) h w c -> b t h w c", b=clip.shape[0])


@pytest.mark.parametrize("frames", [2, 4, 8])
def test_downsample_halves_and_matches_reference(frames):
    clip = np.random.default_rng(frames).normal(size=(2, frames, 3, 3, 4)).astype(np.float32)
    out = run(TemporalDownsample(batch=2), jnp.asarray(clip))
    assert out.shape == (2, frames // 2, 3, 3, 4)
    np.testing.assert_allclose(out, numpy_smooth(clip, stride=2), atol=1e-6)


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_upsample_doubles_and_matches_reference(frames):
    clip = np.random.default_rng(frames).normal(size=(2, frames, 3, 3, 4)).astype(np.float32)
    out = run(TemporalUpsample(batch=2), jnp.asarray(clip))
    assert out.shape == (2, 2 * frames, 3, 3, 4)
    np.testing.assert_allclose(out, numpy_smooth(np.repeat(clip, 2, axis=1), stride=1), atol=1e-6)


def test_constant_sequences_stay_constant():
    rng = np.random.default_rng(0)
    per_pixel = rng.normal(size=(2, 1, 3, 3, 4)).astype(np.float32)
    clip = jnp.asarray(np.repeat(per_pixel, 8, axis=1))
    down = run(TemporalDownsample(batch=2), clip)
    up = run(TemporalUpsample(batch=2), clip)
    np.testing.assert_allclose(down, np.repeat(per_pixel, 4, axis=1), atol=1e-6)
    np.testing.assert_allclose(up, np.repeat(per_pixel, 16, axis=1), atol=1e-6)


def test_odd_frame_count_is_refused():
    x = jnp.zeros((2 * 3, 2, 2, 4))
    with pytest.raises(ValueError, match="even frame count"):
        TemporalDownsample(batch=2).init(jax.random.key(0), x)


# ------------------------------------------- the upsampler's polyphase form, trained weights


def trained_upsampler(channels: int, frames: int, seed: int = 0):
    """TemporalUpsample(batch=2) variables with a random kernel and bias, and a clip."""
    rng = np.random.default_rng(seed)
    clip = rng.normal(size=(2, frames, 3, 3, channels)).astype(np.float32)
    module = TemporalUpsample(batch=2)
    x = rearrange(jnp.asarray(clip), "b t h w c -> (b t) h w c")
    variables = nn.unbox(module.init(jax.random.key(0), x))
    kernel = rng.normal(size=(3, channels, channels)).astype(np.float32) * 0.3
    bias = rng.normal(size=(channels,)).astype(np.float32)
    variables = {"params": {"resample": {"conv": {"kernel": jnp.asarray(kernel),
                                                  "bias": jnp.asarray(bias)}}}}
    return module, variables, clip, kernel, bias


def numpy_upsample(clip: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Reference: each frame twice, edge padding, out[j] = sum_k u[j + k - 1] @ kernel[k]."""
    u = np.repeat(clip, 2, axis=1)
    u = np.concatenate([u[:, :1], u, u[:, -1:]], axis=1)
    return sum(np.einsum("bthwc,cd->bthwd", u[:, k:k + clip.shape[1] * 2], kernel[k])
               for k in range(3)) + bias


@pytest.mark.parametrize("frames", [1, 2, 5, 8])
def test_upsample_with_trained_weights_matches_numpy(frames):
    module, variables, clip, kernel, bias = trained_upsampler(4, frames, seed=frames)
    x = rearrange(jnp.asarray(clip), "b t h w c -> (b t) h w c")
    out = rearrange(jax.jit(module.apply)(variables, x), "(b t) h w c -> b t h w c", b=2)
    np.testing.assert_allclose(out, numpy_upsample(clip, kernel, bias), rtol=1e-5, atol=1e-5)


def repeat_pad_conv(seq, kernel, bias):
    """The upsampler as first written: repeat, edge pad, flax's own 1-D nn.Conv."""
    u = jnp.pad(jnp.repeat(seq, 2, axis=1), ((0, 0), (1, 1), (0, 0)), mode="edge")
    conv = nn.Conv(seq.shape[-1], (3,), padding="VALID")
    return conv.apply({"params": {"kernel": kernel, "bias": bias}}, u)


def value_and_grads(fn, seq, kernel, bias, weights):
    return jax.value_and_grad(lambda s, k, b: jnp.sum(fn(s, k, b) * weights),
                              argnums=(0, 1, 2))(seq, kernel, bias)


@pytest.mark.parametrize("frames", [1, 3, 8])
def test_polyphase_gradients_equal_repeat_pad_conv(frames):
    rng = np.random.default_rng(frames)
    seq = jnp.asarray(rng.normal(size=(6, frames, 8)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 8, 8)) * 0.3, jnp.float32)
    bias = jnp.asarray(rng.normal(size=(8,)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(6, 2 * frames, 8)), jnp.float32)
    want = value_and_grads(repeat_pad_conv, seq, kernel, bias, weights)
    got = jax.jit(value_and_grads, static_argnums=0)(upsample_sequences, seq, kernel, bias,
                                                      weights)
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


def test_upsampler_parameters_are_those_of_a_conv_layer_with_logical_names():
    """Same names, shapes and logical axes as the `conv(C, (3,))` the downsampler uses
    (and the upsampler used), so checkpoints load unchanged."""
    x = jnp.zeros((2 * 4, 3, 3, 6))
    up = TemporalUpsample(batch=2).init(jax.random.key(0), x)
    down = TemporalDownsample(batch=2).init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, nn.unbox(up)) == jax.tree.map(jnp.shape, nn.unbox(down))
    assert nn.get_partition_spec(up) == nn.get_partition_spec(down)
    np.testing.assert_array_equal(nn.unbox(up)["params"]["resample"]["conv"]["kernel"],
                                  nn.unbox(down)["params"]["resample"]["conv"]["kernel"])


def test_upsample_bf16_compute_is_bf16_and_close():
    module, variables, clip, kernel, bias = trained_upsampler(4, 4)
    x = rearrange(jnp.asarray(clip), "b t h w c -> (b t) h w c")
    out = TemporalUpsample(batch=2, dtype=jnp.bfloat16).apply(variables, x)
    assert out.dtype == jnp.bfloat16
    want = rearrange(numpy_upsample(clip, kernel, bias), "b t h w c -> (b t) h w c")
    np.testing.assert_allclose(np.asarray(out, np.float32), want, atol=0.1, rtol=3e-2)


def test_upsample_sharded_over_eight_devices_equals_one_device():
    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    rng = np.random.default_rng(3)
    seq = jnp.asarray(rng.normal(size=(16, 4, 8)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 8, 8)) * 0.3, jnp.float32)
    bias = jnp.asarray(rng.normal(size=(8,)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(16, 8, 8)), jnp.float32)
    batch = NamedSharding(mesh, P("batch"))
    got = jax.jit(value_and_grads, static_argnums=0)(
        upsample_sequences, jax.device_put(seq, batch), kernel, bias,
        jax.device_put(weights, batch))
    assert got[1][0].sharding.spec[0] == "batch"
    want = value_and_grads(repeat_pad_conv, seq, kernel, bias, weights)
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
