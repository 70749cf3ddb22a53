"""UNet family: tree structure, identity at init, time mixing, shapes, dtypes."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from einops import rearrange, repeat
from flax import traverse_util

from lumiere_jax.models import (UNet, UNetConfig, check_input_shape, dummy_inputs,
                                inflate_params, trainable_mask)
from lumiere_jax.models import presets
from lumiere_jax.models.unet import pooled_condition
from lumiere_jax.parallel import remat_compiler_options

# rbg keys: XLA compiles their init programs several times faster than threefry on CPU.
KEY = jax.random.key(0, impl="rbg")


@functools.lru_cache(maxsize=None)
def init_fn(config: UNetConfig, video: bool):
    inputs = dummy_inputs(config, batch=1, video=video)
    return jax.jit(lambda key: nn.meta.unbox(UNet(config).init(key, **inputs)["params"]))


@functools.lru_cache(maxsize=None)
def apply_fn(config: UNetConfig):
    def f(params, x, t, text, text_mask, cond=None):
        return UNet(config).apply({"params": params}, x, t, text, text_mask, cond=cond)
    return jax.jit(f)


def perturb(params, seed, scale=0.2, where=lambda path: True):
    """Add Gaussian noise (NumPy RNG: no per-shape XLA compiles) where `where(path)`."""
    rng = np.random.default_rng(seed)
    flat = traverse_util.flatten_dict(params)
    out = {p: (v + scale * rng.standard_normal(v.shape).astype(v.dtype) if where(p) else v)
           for p, v in flat.items()}
    return traverse_util.unflatten_dict(out)


def is_temporal(path):
    return any(part.startswith("temporal_") for part in path)


def text_inputs(config, batch, key, length=5):
    text = jax.random.normal(key, (batch, length, config.text_input_dim))
    mask = jnp.arange(length)[None, :] < jnp.array([length, 3])[:batch, None]
    return text, mask


SECOND_STUNET = presets.tiny_t2i(channel_mults=(1, 2), num_res_blocks=2,
                                 attention_levels=(1,), cross_attention_levels=(0, 1)).replace(
    temporal=True, temporal_downsample=(True,), temporal_heads=2, num_frames=4)


def t2i_of(stunet_config):
    return stunet_config.replace(temporal=False, temporal_downsample=(), temporal_text=False,
                                 temporal_text_dim=0, temporal_spatial_conv=False,
                                 temporal_text_layout=False)


@pytest.fixture(scope="module", params=["tiny_stunet", "second", "temporal_text",
                                        "temporal_text_dim", "spatial_conv"])
def inflated(request):
    """(stunet config, perturbed T2I params, inflated STUNet params)."""
    stunet_cfg = {"tiny_stunet": presets.tiny_stunet(), "second": SECOND_STUNET,
                  "temporal_text": presets.tiny_stunet(temporal_text=True),
                  "temporal_text_dim": presets.tiny_stunet(temporal_text=True, temporal_text_dim=8),
                  "spatial_conv": presets.tiny_stunet(temporal_text=True,
                                                      temporal_spatial_conv=True),
                  }[request.param]
    t2i_cfg = t2i_of(stunet_cfg)
    t2i_params = perturb(init_fn(t2i_cfg, False)(KEY), 1)
    stunet_params = init_fn(stunet_cfg, True)(jax.random.key(2, impl="rbg"))
    return stunet_cfg, t2i_params, inflate_params(t2i_params, stunet_params)


def test_t2i_tree_is_strict_subset_of_stunet_tree(inflated):
    stunet_cfg, t2i_params, stunet_params = inflated
    t2i = traverse_util.flatten_dict(t2i_params)
    stunet = traverse_util.flatten_dict(stunet_params)
    for path, leaf in t2i.items():
        assert path in stunet, path
        assert stunet[path].shape == leaf.shape, path
    extra = set(stunet) - set(t2i)
    assert extra and all(is_temporal(p) for p in extra)


def test_trainable_mask_is_exactly_the_new_weights(inflated):
    _, t2i_params, stunet_params = inflated
    mask = traverse_util.flatten_dict(trainable_mask(stunet_params))
    new_paths = set(traverse_util.flatten_dict(stunet_params)) - set(
        traverse_util.flatten_dict(t2i_params))
    assert {p for p, m in mask.items() if m} == new_paths


def test_identity_at_init_on_constant_video(inflated):
    """Inflated STUNet at init on a clip of equal frames == T2I on each frame (the T2I
    reads the first `text_dim` text channels; any `temporal_text_dim` ones are extra)."""
    stunet_cfg, t2i_params, stunet_params = inflated
    t2i_cfg = t2i_of(stunet_cfg)
    batch, frames, size = 2, stunet_cfg.num_frames, stunet_cfg.image_size
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    images = jax.random.normal(k1, (batch, size, size, 3))
    t = jax.random.uniform(k2, (batch,))
    text, mask = text_inputs(stunet_cfg, batch, k3)
    expected = apply_fn(t2i_cfg)(t2i_params, images, t, text[..., :t2i_cfg.text_dim], mask)
    video = repeat(images, "b h w c -> b t h w c", t=frames)
    out = apply_fn(stunet_cfg)(stunet_params, video, t, text, mask)
    assert out.shape == video.shape
    assert float(jnp.std(expected)) > 0.1  # a non-trivial T2I output
    for f in range(frames):
        np.testing.assert_allclose(out[:, f], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("field, new_names", [
    ("temporal_spatial_conv", {"spatial_conv", "spatial_norm"}),
    ("temporal_text_layout", {"layout"})])
def test_stunet_loads_unchanged_into_one_with_a_new_temporal_option(field, new_names):
    """A trained STUNet merged into the tree of one with `temporal_spatial_conv` or
    `temporal_text_layout` computes the same function: the new layers start at zero."""
    old_cfg = presets.tiny_stunet(temporal_text=True)
    new_cfg = old_cfg.replace(**{field: True})
    old = perturb(init_fn(old_cfg, True)(KEY), 11, where=is_temporal)
    merged = inflate_params(old, init_fn(new_cfg, True)(jax.random.key(12, impl="rbg")))
    added = set(traverse_util.flatten_dict(merged)) - set(traverse_util.flatten_dict(old))
    assert added and all(new_names & set(p) for p in added), added
    video = jax.random.normal(jax.random.key(13), (2, old_cfg.num_frames, old_cfg.image_size,
                                                   old_cfg.image_size, 3))
    t = jnp.array([0.3, 0.8])
    text, mask = text_inputs(old_cfg, 2, jax.random.key(14))
    np.testing.assert_allclose(apply_fn(new_cfg)(merged, video, t, text, mask),
                               apply_fn(old_cfg)(old, video, t, text, mask), atol=1e-5, rtol=0)


def test_time_is_mixed_after_training_moves_temporal_weights():
    """Frame 0 of the output depends on input frame T-1 (two temporal downsamplings)."""
    stunet_cfg = presets.tiny_stunet()
    params = perturb(init_fn(stunet_cfg, True)(KEY), 4, where=is_temporal)
    batch, frames, size = 1, stunet_cfg.num_frames, stunet_cfg.image_size
    video = jax.random.normal(jax.random.key(5), (batch, frames, size, size, 3))
    text, mask = text_inputs(stunet_cfg, batch, jax.random.key(6))
    t = jnp.full((batch,), 0.5)
    f = apply_fn(stunet_cfg)
    grad = jax.grad(lambda v: jnp.sum(f(params, v, t, text, mask)[:, 0] ** 2))(video)
    assert float(jnp.abs(grad[:, frames - 1]).max()) > 1e-6
    # the same clip as images (temporal layers skipped): frame 0 ignores frame T-1
    as_images = lambda v: f(params, rearrange(v, "b t h w c -> (b t) h w c"),
                            jnp.repeat(t, frames), jnp.repeat(text, frames, 0),
                            jnp.repeat(mask, frames, 0))
    grad_images = jax.grad(lambda v: jnp.sum(as_images(v)[0] ** 2))(video)
    assert float(jnp.abs(grad_images[:, frames - 1]).max()) == 0.0
    assert float(jnp.abs(grad_images[:, 0]).max()) > 1e-6


@pytest.mark.parametrize("temporal_text", [False, True])
def test_text_reaches_temporal_layers_only_with_temporal_text(temporal_text):
    """No spatial text path (no cross-attention, pooled-text projection zeroed): the prompt
    changes the video only through the temporal layers, so only with `temporal_text`."""
    cfg = presets.tiny_stunet(cross_attention_levels=(), temporal_text=temporal_text)
    params = perturb(init_fn(cfg, True)(KEY), 7, where=is_temporal)
    params["text_pool_proj"] = jax.tree.map(jnp.zeros_like, params["text_pool_proj"])
    video = jax.random.normal(jax.random.key(8), (1, cfg.num_frames, cfg.image_size,
                                                  cfg.image_size, 3))
    t = jnp.full((1,), 0.5)
    (text_a, mask), text_b = text_inputs(cfg, 1, jax.random.key(9)), jax.random.normal(
        jax.random.key(10), (1, 5, cfg.text_dim))
    f = apply_fn(cfg)
    change = float(jnp.abs(f(params, video, t, text_a, mask)
                           - f(params, video, t, text_b, mask)).max())
    if temporal_text:
        assert change > 1e-3
        assert any(k.startswith("temporal_cross_attention") for k in params)
    else:
        assert change == 0.0


def test_temporal_text_channels_are_read_by_the_temporal_layers_only():
    """`temporal_text_dim`: the last text channels change the video only once the temporal
    weights move (spatial layers never read them); a wrong width is a clear error."""
    cfg = presets.tiny_stunet(temporal_text=True, temporal_text_dim=8)
    at_init = inflate_params(perturb(init_fn(t2i_of(cfg), False)(KEY), 1), init_fn(cfg, True)(KEY))
    trained = perturb(at_init, 7, where=is_temporal)
    video = jax.random.normal(jax.random.key(8), (2, cfg.num_frames, cfg.image_size,
                                                  cfg.image_size, 3))
    t = jnp.array([0.3, 0.8])
    text, mask = text_inputs(cfg, 2, jax.random.key(9))
    other = text.at[..., cfg.text_dim:].set(jax.random.normal(jax.random.key(10), (2, 5, 8)))
    f = apply_fn(cfg)
    change = lambda p: float(jnp.abs(f(p, video, t, text, mask)
                                     - f(p, video, t, other, mask)).max())
    assert change(at_init) == 0.0
    assert change(trained) > 1e-3
    with pytest.raises(ValueError, match="text_dim \\+ temporal_text_dim = 24"):
        f(at_init, video, t, text[..., :cfg.text_dim], mask)
    with pytest.raises(ValueError, match="temporal_text_dim.*needs temporal_text=True"):
        presets.tiny_stunet(temporal_text_dim=8)
    with pytest.raises(ValueError, match="temporal_text_layout needs temporal_text=True"):
        presets.tiny_stunet(temporal_text_layout=True)


def test_conditional_model_at_init_equals_plain_model():
    """A 7-channel model (3 + 4 cond channels) at init equals the 3-channel model."""
    cfg = presets.tiny_stunet()
    cond_cfg = cfg.replace(cond_channels=4)
    plain = perturb(init_fn(cfg, True)(KEY), 7)
    widened = inflate_params(plain, init_fn(cond_cfg, True)(KEY))
    assert traverse_util.flatten_dict(trainable_mask(widened))[("cond_input_conv", "kernel")]
    batch = 2
    video = jax.random.normal(jax.random.key(8), (batch, 8, 16, 16, 3))
    cond = jax.random.normal(jax.random.key(9), (batch, 8, 16, 16, 4))
    text, mask = text_inputs(cfg, batch, jax.random.key(10))
    t = jnp.array([0.1, 0.9])
    np.testing.assert_allclose(apply_fn(cond_cfg)(widened, video, t, text, mask, cond),
                               apply_fn(cfg)(plain, video, t, text, mask), atol=1e-5, rtol=0)


def test_pooled_condition_matches_a_loop_over_frames():
    rng = np.random.default_rng(3)
    content = rng.standard_normal((2, 5, 4, 3, 3)).astype(np.float32)
    mask = (rng.random((2, 5, 4, 3, 1)) < 0.4).astype(np.float32)
    mask[0, :, 0, 0] = 0.0  # a pixel no frame knows
    cond = np.concatenate([content * mask, mask], axis=-1)
    expected = np.zeros((2, 4, 3, 4), np.float32)
    for b, i, j in np.ndindex(2, 4, 3):
        known = [f for f in range(5) if mask[b, f, i, j, 0] == 1]
        if known:
            expected[b, i, j, :3] = np.mean([content[b, f, i, j] for f in known], axis=0)
        expected[b, i, j, 3] = len(known) / 5
    np.testing.assert_allclose(pooled_condition(jnp.asarray(cond)), expected, atol=1e-6)


def test_time_pooled_condition_is_zero_at_init_and_reaches_every_frame():
    """`cond_time_pool`: identity at init; with its conv non-zero, a first-frame
    condition changes every frame with no temporal layer in the path."""
    cfg = presets.tiny_stunet()
    cond_cfg = cfg.replace(cond_channels=4, cond_time_pool=True)
    # Spatial weights trained, temporal layers at init (each frame on its own).
    plain = perturb(init_fn(cfg, True)(KEY), 7, where=lambda path: not is_temporal(path))
    widened = inflate_params(plain, init_fn(cond_cfg, True)(KEY))
    flat_mask = traverse_util.flatten_dict(trainable_mask(widened))
    assert flat_mask[("cond_pool_conv", "kernel")]
    batch = 2
    video = jax.random.normal(jax.random.key(8), (batch, 8, 16, 16, 3))
    first = jax.random.normal(jax.random.key(9), (batch, 16, 16, 3))
    cond = jnp.zeros((batch, 8, 16, 16, 4)).at[:, 0, ..., :3].set(first).at[:, 0, ..., 3].set(1)
    text, mask = text_inputs(cfg, batch, jax.random.key(10))
    t = jnp.array([0.1, 0.9])
    out = apply_fn(cond_cfg)(widened, video, t, text, mask, cond)
    np.testing.assert_allclose(out, apply_fn(cfg)(plain, video, t, text, mask), atol=1e-5, rtol=0)
    # The pooled path alone (temporal layers at init) changes every frame.
    only_pool = perturb(widened, 11, scale=0.05, where=lambda path: path[0] == "cond_pool_conv")
    frames = lambda c: apply_fn(cond_cfg)(only_pool, video, t, text, mask, c)
    moved = np.abs(np.asarray(frames(cond) - frames(cond.at[:, 0, ..., :3].add(1.0))))
    assert moved.max(axis=(0, 2, 3, 4)).min() > 1e-3
    with pytest.raises(ValueError, match="cond_time_pool needs a temporal config"):
        presets.tiny_t2i(cond_channels=4, cond_time_pool=True)


def test_inflate_rejects_mismatched_tree_listing_paths():
    shapes = lambda cfg, video: jax.eval_shape(init_fn(cfg, video), KEY)
    stunet = shapes(presets.tiny_stunet(), True)
    wrong = shapes(presets.tiny_t2i(channels=8), False)
    with pytest.raises(ValueError, match=r"mismatched paths[\s\S]*down0_0_res/conv_0/kernel"):
        inflate_params(wrong, stunet)
    partial = {k: v for k, v in shapes(presets.tiny_t2i(), False).items() if k != "out_conv"}
    with pytest.raises(ValueError, match="no T2I source: out_conv/kernel"):
        inflate_params(partial, stunet)


@pytest.mark.parametrize("frames,nearest", [(6, "4, 8"), (10, "8, 12"), (3, "4")])
def test_bad_frame_count_names_field_and_nearest_counts(frames, nearest):
    cfg = presets.tiny_stunet()
    with pytest.raises(ValueError,
                       match=rf"temporal_downsample[\s\S]*nearest valid frame counts: {nearest}$"):
        check_input_shape(cfg, (1, frames, 16, 16, 3))
    # the module itself refuses at trace time, before any XLA compilation
    x = jax.ShapeDtypeStruct((1, frames, 16, 16, 3), jnp.float32)
    with pytest.raises(ValueError, match="num_frames"):
        jax.eval_shape(lambda x: UNet(cfg).init(KEY, x, jnp.zeros(1), jnp.zeros((1, 2, 16)),
                                                  jnp.ones((1, 2), bool)), x)


def test_bad_spatial_size_names_field():
    with pytest.raises(ValueError, match=r"height 18 .*channel_mults.*nearest valid sizes: 16, 20"):
        check_input_shape(presets.tiny_t2i(), (1, 18, 16, 3))


@pytest.fixture(scope="module")
def stunet_params():
    return init_fn(presets.tiny_stunet(), True)(KEY)


def test_forward_image_video_batch_jit(stunet_params):
    cfg = presets.tiny_stunet()
    text, mask = text_inputs(cfg, 2, jax.random.key(11))
    t = jnp.array([0.2, 0.7])
    video = jax.random.normal(jax.random.key(12), (2, 8, 16, 16, 3))
    out = apply_fn(cfg)(stunet_params, video, t, text, mask)
    assert out.shape == (2, 8, 16, 16, 3) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    # a STUNet takes images too (temporal layers skipped); batch items are independent
    image_out = apply_fn(cfg)(stunet_params, video[:, 0], t, text, mask)
    assert image_out.shape == (2, 16, 16, 3)
    single = apply_fn(cfg)(stunet_params, video[1:], t[1:], text[1:], mask[1:])
    np.testing.assert_allclose(single[0], out[1], atol=1e-5, rtol=0)


def test_bf16_compute_tracks_fp32(stunet_params):
    cfg = presets.tiny_stunet()
    bf16 = cfg.replace(dtype="bfloat16")
    text, mask = text_inputs(cfg, 2, jax.random.key(13))
    t = jnp.array([0.3, 0.6])
    video = jax.random.normal(jax.random.key(14), (2, 8, 16, 16, 3))
    ref = apply_fn(cfg)(stunet_params, video, t, text, mask)
    out = apply_fn(bf16)(stunet_params, video, t, text, mask)
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    rel = float(jnp.linalg.norm(out - ref) / jnp.linalg.norm(ref))
    assert rel < 0.05, rel


def test_remat_gives_same_gradients_and_saves_memory():
    """`remat=True` with `remat_compiler_options()`: same gradients, less temp memory
    (on XLA:CPU, without the options the recomputation is CSE'd away)."""
    cfg = SECOND_STUNET
    stunet_params = init_fn(cfg, True)(KEY)
    text, mask = text_inputs(cfg, 1, jax.random.key(15))
    video = jax.random.normal(jax.random.key(16), (1, cfg.num_frames, 16, 16, 3))
    t = jnp.array([0.4])
    options = remat_compiler_options()

    def compiled_grad(remat):
        c = cfg.replace(remat=remat)
        grad = jax.grad(lambda p: jnp.mean(UNet(c).apply({"params": p}, video, t, text, mask) ** 2))
        return jax.jit(grad).lower(stunet_params).compile(options)

    ref, remat = compiled_grad(False), compiled_grad(True)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4),
                           ref(stunet_params), remat(stunet_params))
    temp = lambda c: c.memory_analysis().temp_size_in_bytes
    assert temp(remat) < 0.8 * temp(ref), (temp(remat), temp(ref))
