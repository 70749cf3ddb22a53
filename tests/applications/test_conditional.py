"""Conditional sampling: replacement keeps the known region exactly; the 7-channel STUNet.

Cheap tests drive `sample_conditional` with closed-form denoisers; the model tests share
one tiny conditional STUNet (NumPy-random weights on a `jax.eval_shape` tree, the cond
conv zero as at init) and two compiled functions.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from lumiere_jax.applications import (cinemagraph_condition, image_to_video_condition,
                                      inpainting_condition, sample_conditional)
from lumiere_jax.sampling import unet_model_fn
from lumiere_jax.diffusion.schedules import cosine_schedule
from lumiere_jax.models import UNet, dummy_inputs, presets

SCHEDULE = cosine_schedule()
RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- closed-form denoisers

SHAPE = (2, 4, 4, 4, 3)                                # (B, T, H, W, C)
VIDEO = RNG.uniform(-1, 1, SHAPE).astype(np.float32)
POINT = RNG.uniform(-1, 1, SHAPE).astype(np.float32)
KNOWN = RNG.uniform(size=SHAPE[:-1] + (1,)) < 0.4


def point_oracle(x, t, cond):
    """x0-prediction of data that is the single video POINT; ignores cond (unconditional)."""
    return jnp.broadcast_to(POINT, x.shape)


@pytest.fixture(scope="module")
def cheap_sampler():
    return jax.jit(lambda cond, key, replace: sample_conditional(
        point_oracle, cond, key, schedule=SCHEDULE, num_steps=6, sampler="ddim",
        prediction="x0", eta=1.0, replace_known=replace), static_argnums=2)


def test_replacement_keeps_known_region_exactly(cheap_sampler):
    cond = inpainting_condition(VIDEO, KNOWN)
    out = np.asarray(cheap_sampler(cond, jax.random.key(0), True))
    known = np.broadcast_to(KNOWN, SHAPE)
    assert out.shape == SHAPE
    np.testing.assert_array_equal(out[known], VIDEO[known])
    # The hole is the model's: the oracle's video exactly (last DDIM step returns x0).
    np.testing.assert_allclose(out[~known], POINT[~known], atol=1e-6)
    # Without replacement the known region is the model's too (so the check can fail).
    free = np.asarray(cheap_sampler(cond, jax.random.key(0), False))
    np.testing.assert_allclose(free, POINT, atol=1e-6)
    assert np.max(np.abs(free[known] - VIDEO[known])) > 0.1


def test_replacement_with_image_to_video_condition(cheap_sampler):
    cond = image_to_video_condition(VIDEO[:, 0], SHAPE[1])
    out = np.asarray(cheap_sampler(cond, jax.random.key(1), True))
    np.testing.assert_array_equal(out[:, 0], VIDEO[:, 0])
    np.testing.assert_allclose(out[:, 1:], POINT[:, 1:], atol=1e-6)


def test_sampling_can_start_part_way():
    """t_start: one DDIM step from x_start at t = 0.4 with a constant eps-oracle E is the
    closed form x0 = (x_start - sigma(0.4) E) / alpha(0.4); without x_start it is refused."""
    cond = image_to_video_condition(VIDEO[:, 0], SHAPE[1])
    oracle = lambda x, t, c: jnp.broadcast_to(POINT, x.shape)  # noqa: E731
    out = sample_conditional(oracle, cond, jax.random.key(0), schedule=SCHEDULE, num_steps=1,
                             prediction="eps", x_start=jnp.asarray(VIDEO), t_start=0.4,
                             replace_known=False)
    alpha, sigma = (float(a) for a in SCHEDULE.alpha_sigma(jnp.float32(0.4)))
    np.testing.assert_allclose(out, (VIDEO - sigma * POINT) / alpha, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="t_start=0.4 needs x_start"):
        sample_conditional(oracle, cond, jax.random.key(0), schedule=SCHEDULE, num_steps=1,
                           t_start=0.4)


def test_bad_sample_conditional_input():
    cond = inpainting_condition(VIDEO, KNOWN)
    kw = dict(schedule=SCHEDULE, num_steps=2)
    with pytest.raises(ValueError, match="x_start"):
        sample_conditional(point_oracle, cond, jax.random.key(0), x_start=jnp.zeros((2, 4)), **kw)
    with pytest.raises(ValueError, match="cond"):
        sample_conditional(point_oracle, cond[..., :1], jax.random.key(0), **kw)
    with pytest.raises(ValueError, match="replace_known"):
        sample_conditional(point_oracle, cond, jax.random.key(0), replace_known=1, **kw)


# ---------------------------------------------------------------- tiny conditional STUNet

# Two levels (temporal conv + down/up-sampling at level 0, temporal attention at level 1),
# cross-attention, the 4-channel cond conv: about half tiny_stunet's compile time.
CONFIG = presets.tiny_stunet(channels=8, channel_mults=(1, 2), attention_levels=(),
                             cross_attention_levels=(1,), temporal_downsample=(True,),
                             num_frames=4, image_size=8, cond_channels=4)
B, T, HW = 2, CONFIG.num_frames, CONFIG.image_size


def random_params(config, seed):
    """NumPy weights (fan-in scaled) on the abstract tree; `cond_*` zero, as at init."""
    inputs = dummy_inputs(config, batch=1)
    shapes = jax.eval_shape(lambda: nn.meta.unbox(
        UNet(config).init(jax.random.key(0), **inputs)["params"]))
    rng = np.random.default_rng(seed)
    out = {}
    for path, s in traverse_util.flatten_dict(shapes).items():
        if path[0].startswith("cond_"):
            out[path] = np.zeros(s.shape, np.float32)
        elif path[-1] == "scale":
            out[path] = (1.0 + 0.1 * rng.standard_normal(s.shape)).astype(np.float32)
        else:
            fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 16
            out[path] = (rng.standard_normal(s.shape) / np.sqrt(fan_in)).astype(np.float32)
    return traverse_util.unflatten_dict(out)


@pytest.fixture(scope="module")
def model():
    params = random_params(CONFIG, 1)
    text = jnp.asarray(RNG.standard_normal((B, 5, CONFIG.text_dim), dtype=np.float32))
    mask = jnp.asarray(np.arange(5)[None] < np.array([[5], [3]]))
    null_text, null_mask = jnp.zeros((1, 5, CONFIG.text_dim)), jnp.ones((1, 5), bool)

    def model_out(params, x, t, cond):
        return unet_model_fn(CONFIG, params, text, mask)(x, t, cond)

    def sample_fn(params, cond, key):
        fn = unet_model_fn(CONFIG, params, text, mask, guidance_scale=3.0, null_text=null_text,
                           null_mask=null_mask)
        return sample_conditional(fn, cond, key, schedule=SCHEDULE, num_steps=2,
                                  sampler="ddim", prediction="v", clip="static")

    return params, jax.jit(model_out), jax.jit(sample_fn)


def test_conditional_model_at_init_ignores_condition(model):
    """Zero-init cond conv: output on J equals the model without condition (cond = 0, which
    is exactly the 3-channel model's computation); a trained cond conv changes it."""
    params, model_out, _ = model
    x = RNG.standard_normal((B, T, HW, HW, 3), dtype=np.float32)
    cond = np.asarray(inpainting_condition(RNG.uniform(-1, 1, (B, T, HW, HW, 3)),
                                           RNG.uniform(size=(B, T, HW, HW, 1)) < 0.5))
    out_cond = np.asarray(model_out(params, x, jnp.array([0.2, 0.7]), cond))
    out_zero = np.asarray(model_out(params, x, jnp.array([0.2, 0.7]), np.zeros_like(cond)))
    assert out_cond.shape == x.shape and np.all(np.isfinite(out_cond))
    np.testing.assert_allclose(out_cond, out_zero, atol=1e-5, rtol=0)
    trained = dict(params, cond_input_conv={"kernel": 0.3 * RNG.standard_normal(
        params["cond_input_conv"]["kernel"].shape).astype(np.float32)})
    changed = np.asarray(model_out(trained, x, jnp.array([0.2, 0.7]), cond))
    assert np.max(np.abs(changed - out_cond)) > 1e-2


def test_model_sampling_keeps_condition_exactly(model):
    params, _, sample_fn = model
    frame = RNG.uniform(-1, 1, (B, HW, HW, 3)).astype(np.float32)
    i2v = np.asarray(sample_fn(params, image_to_video_condition(frame, T), jax.random.key(3)))
    assert i2v.shape == (B, T, HW, HW, 3) and np.all(np.isfinite(i2v))
    np.testing.assert_array_equal(i2v[:, 0], frame)
    assert np.max(np.abs(i2v[:, 1:] - frame[:, None])) > 0.1
    still = RNG.uniform(size=(B, HW, HW, 1)) < 0.5
    cine = np.asarray(sample_fn(params, cinemagraph_condition(frame, still, T),
                                jax.random.key(4)))
    region = np.broadcast_to(still[:, None], (B, T, HW, HW, 3))
    first = np.broadcast_to(frame[:, None], region.shape)
    np.testing.assert_array_equal(cine[region], first[region])
    assert np.max(np.abs(cine[~region] - first[~region])) > 0.1


def test_clips_per_call_gives_the_whole_batch_output():
    """`unet_model_fn(clips_per_call=k)` runs the network on k items at a time (chunks
    mapped one after another, the last padded); its output is the whole-batch call's. Three
    prompts with guidance are 6 items: k = 4 makes a full chunk and a padded one, k = 1 six
    chunks; the condition and the per-item text travel with their items."""
    params = random_params(CONFIG, 3)
    params["cond_input_conv"] = {"kernel": 0.3 * RNG.standard_normal(
        params["cond_input_conv"]["kernel"].shape).astype(np.float32)}
    b = 3
    text = jnp.asarray(RNG.standard_normal((b, 5, CONFIG.text_dim), dtype=np.float32))
    mask = jnp.asarray(np.arange(5)[None] < np.array([[5], [3], [1]]))
    null_text, null_mask = jnp.zeros((1, 5, CONFIG.text_dim)), jnp.ones((1, 5), bool)
    x = jnp.asarray(RNG.standard_normal((b, T, HW, HW, 3), dtype=np.float32))
    cond = jnp.asarray(inpainting_condition(RNG.uniform(-1, 1, (b, T, HW, HW, 3)),
                                            RNG.uniform(size=(b, T, HW, HW, 1)) < 0.5))
    t = jnp.array([0.2, 0.5, 0.9])

    def out(k):
        fn = unet_model_fn(CONFIG, params, text, mask, guidance_scale=3.0, null_text=null_text,
                           null_mask=null_mask, clips_per_call=k)
        return np.asarray(jax.jit(fn)(x, t, cond))

    whole = out(None)
    assert np.std(whole[0] - whole[1]) > 1e-3  # the items differ, so a mix-up would show
    for k in (4, 1):
        np.testing.assert_allclose(out(k), whole, atol=1e-5, rtol=1e-5)


def test_unet_model_fn_rejects_bad_inputs():
    text, mask = jnp.zeros((1, 2, CONFIG.text_dim)), jnp.ones((1, 2), bool)
    with pytest.raises(ValueError, match="cond_level_embedding"):
        unet_model_fn(presets.tiny_ssr(), {}, text, mask)
    x, t = jnp.zeros((1, T, HW, HW, 3)), jnp.zeros((1,))
    with pytest.raises(ValueError, match="cond_channels=4: pass cond"):
        unet_model_fn(CONFIG, {}, text, mask)(x, t, None)
    with pytest.raises(ValueError, match="null_text"):
        unet_model_fn(CONFIG, {}, text, mask, guidance_scale=2.0)
    with pytest.raises(ValueError, match="text"):
        unet_model_fn(CONFIG, {}, text[0], mask)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"clips_per_call={bad!r} must be an int >= 1"):
            unet_model_fn(CONFIG, {}, text, mask, clips_per_call=bad)


def test_unconditional_unet_traces_through_sdedit_and_repaint():
    """A 3-channel STUNet with guidance: SDEdit and replacement inpainting (RePaint-lite)
    trace to the right shapes (`jax.eval_shape`: no XLA compile)."""
    from lumiere_jax.applications import sdedit

    plain = CONFIG.replace(cond_channels=0)
    shapes = jax.eval_shape(lambda: nn.meta.unbox(UNet(plain).init(
        jax.random.key(0), **dummy_inputs(plain, batch=1))["params"]))
    text = jax.ShapeDtypeStruct((B, 5, plain.text_dim), jnp.float32)
    video = jax.ShapeDtypeStruct((B, T, HW, HW, 3), jnp.float32)
    hole = jax.ShapeDtypeStruct((B, T, HW, HW, 1), jnp.float32)

    def run(params, text, video, hole):
        mask = jnp.ones(text.shape[:2], bool)
        fn = unet_model_fn(plain, params, text, mask, guidance_scale=2.0,
                           null_text=jnp.zeros_like(text[:1]), null_mask=mask[:1])
        edited = sdedit(lambda x, t: fn(x, t, None), video, jax.random.key(0), strength=0.6,
                        schedule=SCHEDULE, num_steps=2)
        filled = sample_conditional(fn, inpainting_condition(video, hole), jax.random.key(1),
                                    schedule=SCHEDULE, num_steps=2)
        return edited, filled

    edited, filled = jax.eval_shape(run, shapes, text, video, hole)
    assert edited.shape == filled.shape == (B, T, HW, HW, 3)
    assert edited.dtype == filled.dtype == jnp.float32
