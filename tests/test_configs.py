"""The shipped configs/: valid, and each trio (t2i -> stunet -> ssr) forms a cascade."""

import importlib.util
import os

import flax.linen as nn
import jax
import pytest
from flax import traverse_util

from lumiere_jax.models import UNet, dummy_inputs
from lumiere_jax.training import setup

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def load(name):
    """`name` or `name:variant`, as train.py's --config takes them."""
    name, _, variant = name.partition(":")
    spec = importlib.util.spec_from_file_location(name, os.path.join(CONFIG_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()


def param_shapes(config):
    model_cfg = setup.unet_config(config)
    tree = jax.eval_shape(lambda: UNet(model_cfg).init(
        jax.random.key(0), **dummy_inputs(model_cfg))["params"])
    return {p: v.shape for p, v in traverse_util.flatten_dict(nn.meta.unbox(tree)).items()}


def test_every_config_file_is_loaded_here():
    names = sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py"))
    assert names == ["common", "conditional", "demo_conditional", "demo_critic",
                     "demo_direction", "demo_layout", "demo_motion", "demo_ssr", "demo_stunet",
                     "demo_style",
                     "demo_t2i", "ssr", "stunet", "t2i"]


def test_the_demo_layout_expert_fits_the_demo_base_stage():
    """The expert's pooled clips are the demo STUNet's (size / factor, same frames, same
    data), its schedule is the base's shifted by 2 log factor (same t), and bad layout
    fields are errors naming the field."""
    from lumiere_jax import runs
    from lumiere_jax.diffusion.schedules import cosine_schedule

    for c in (load("demo_layout"), load("demo_layout:tiny")):
        setup.check_config(c)
        step = setup.step_config(c, setup.unet_config(c))
        assert step.stage == "layout" and step.layout_factor >= 2 and 0 < step.min_t < 0.8
        assert setup.data_image_size(c) == c.model.image_size * step.layout_factor
    layout, stunet = load("demo_layout"), load("demo_stunet")
    factor = layout.diffusion.layout_factor
    assert layout.model.image_size * factor == stunet.model.image_size
    assert layout.model.num_frames == stunet.model.num_frames
    assert layout.data.name == stunet.data.name
    assert runs.noise_schedule(layout) == cosine_schedule(stunet.model.image_size // factor,
                                                           stunet.model.image_size)
    assert runs.noise_schedule(stunet) == cosine_schedule(stunet.model.image_size,
                                                           stunet.model.image_size)
    for field, value, match in (("diffusion.layout_factor", 1, "layout_factor=1"),
                                ("diffusion.schedule_base_size", 16, "schedule_base_size=16"),
                                ("train.init_from", "runs/x", "trains from scratch"),
                                ("sample.every", 10, "sample.every must be 0")):
        bad = load("demo_layout")
        group, name = field.split(".")
        bad[group][name] = value
        with pytest.raises(ValueError, match=match):
            setup.check_config(bad)


def test_the_direction_fine_tune_continues_the_demo_stunet_with_the_caption_contrast():
    """demo_direction loads the shipped base whole (same parameter tree as demo_stunet)
    and its step config carries a valid caption contrast on reversal pairs."""
    direction, stunet = load("demo_direction"), load("demo_stunet")
    setup.check_config(direction)
    assert direction.train.init_from_kind == "stunet" and direction.data.time_reversal_pairs
    assert param_shapes(direction) == param_shapes(stunet)
    step = setup.step_config(direction, setup.unet_config(direction))
    assert step.reversal_pairs and step.caption_contrast > 0


def test_the_motion_fine_tunes_continue_the_shipped_stages_on_moving_noise():
    """demo_motion[:objects|:conditional] load the shipped base / conditional whole (same
    parameter trees as demo_stunet / demo_conditional) and train on moving noise."""
    for variant, source, layout in (("demo_motion", "demo_stunet", "field"),
                                    ("demo_motion:objects", "demo_stunet", "objects"),
                                    ("demo_motion:conditional", "demo_conditional", "field")):
        c, shipped = load(variant), load(source)
        setup.check_config(c)
        assert c.stage == shipped.stage and c.train.init_from_kind == c.stage
        assert param_shapes(c) == param_shapes(shipped)
        step = setup.step_config(c, setup.unet_config(c))
        assert 0 < step.motion_noise < 1 and step.motion_layout == layout
    with pytest.raises(ValueError, match="demo_motion.py:ssr"):
        load("demo_motion:ssr")


def test_the_demo_critic_reads_the_clips_the_demo_stunet_makes():
    """Critic guidance needs the critic's input to be the base stage's output (frames,
    size), learnt from the same data; its run config passes its own checks."""
    from lumiere_jax.training.critic import check_critic_config

    critic, stunet = load("demo_critic"), load("demo_stunet")
    assert critic.stage == "critic" and critic.data.time_reversal_pairs
    assert (critic.model.num_frames, critic.model.image_size) == (
        stunet.model.num_frames, stunet.model.image_size)
    assert critic.data.name == stunet.data.name
    for c in (critic, load("demo_critic:tiny")):
        check_critic_config(c)


def test_tiny_variants_and_a_bad_variant_name():
    for stage in ("t2i", "stunet", "ssr", "conditional"):
        tiny, real = load(f"{stage}:tiny"), load(stage)
        assert tiny.stage == real.stage == stage
        assert tiny.model.channels < real.model.channels and tiny.train.num_steps <= 8
    with pytest.raises(ValueError, match="config variant 'small'.*'tiny'"):
        load("t2i:small")


def test_set_schedule_ties_the_decay_to_the_run_length():
    from configs.common import base_config, set_schedule
    from lumiere_jax.models import presets

    c = set_schedule(base_config("t2i", presets.tiny_t2i()), steps=1234, lr=3e-4, warmup=10,
                     batch_size=6, ema_decay=0.9)
    assert (c.train.num_steps, c.optim.decay_steps, c.optim.lr, c.optim.warmup_steps,
            c.data.batch_size, c.optim.ema_decay) == (1234, 1234, 3e-4, 10, 6, 0.9)
    assert c.train.checkpoint_every == base_config("t2i", presets.tiny_t2i()).train.checkpoint_every


def test_the_style_config_fine_tunes_the_demo_t2i_on_outlines_with_its_encoder_frozen():
    """Its spatial weights must fit the demo STUNet (interpolate_spatial_weights), and the
    STUNet reads prompts with the T2I's encoder, so that encoder must not move."""
    style, t2i = load("demo_style"), load("demo_t2i")
    assert style.stage == "t2i" and param_shapes(style) == param_shapes(t2i)
    assert style.data.name == "moving_shapes/f16_s32_outline"
    assert style.text.trainable is False
    assert {**style.text.to_dict(), "trainable": True} == t2i.text.to_dict()
    setup.check_config(style)


@pytest.mark.parametrize("prefix,variant", [("", ""), ("", ":tiny"), ("demo_", "")])
def test_configs_form_a_cascade(prefix, variant):
    has_conditional = os.path.exists(os.path.join(CONFIG_DIR, f"{prefix}conditional.py"))
    stages = ("t2i", "stunet", "ssr", "conditional")
    t2i, stunet, ssr = (load(prefix + s + variant) for s in stages[:3])
    conditional = load(prefix + "conditional" + variant) if has_conditional else None
    assert (t2i.stage, stunet.stage, ssr.stage) == stages[:3]
    stunet.train.init_from = stunet.train.init_from or "runs/t2i/checkpoints"  # CLI flag
    for c in (t2i, stunet, ssr):
        setup.check_config(c)
    # stunet inflates t2i: every T2I weight exists in the STUNet with its shape, and the
    # STUNet's other weights are all temporal (trainable_mask).
    t2i_shapes, stunet_shapes = param_shapes(t2i), param_shapes(stunet)
    for path, shape in t2i_shapes.items():
        assert stunet_shapes.get(path) == shape, path
    extra = set(stunet_shapes) - set(t2i_shapes)
    assert extra and all(any(p.startswith("temporal_") for p in path) for path in extra)
    # The STUNet's text encoder is a frozen copy of the T2I's, plus (optionally) a fresh
    # temporal encoder whose width is the STUNet's temporal_text_dim.
    shared = lambda text: {k: v for k, v in text.to_dict().items()
                           if k not in ("temporal_width", "temporal_depth")}
    assert shared(t2i.text) == {**shared(stunet.text), "trainable": True}
    assert t2i.text.get("temporal_width", 0) == 0
    assert stunet.text.get("temporal_width", 0) == stunet.model.get("temporal_text_dim", 0)
    if conditional is not None:
        # conditional inflates stunet the same way, adding only the cond_ input convs.
        assert conditional.stage == "conditional"
        conditional.train.init_from = "runs/stunet/checkpoints"
        setup.check_config(conditional)
        cond_shapes = param_shapes(conditional)
        for path, shape in stunet_shapes.items():
            assert cond_shapes.get(path) == shape, path
        added = {path[0] for path in set(cond_shapes) - set(stunet_shapes)}
        assert "cond_input_conv" in added <= {"cond_input_conv", "cond_pool_conv"}
        assert conditional.text.to_dict() == stunet.text.to_dict()
    # ssr super-resolves the STUNet's clips.
    assert ssr.diffusion.ssr_low_res == stunet.model.image_size < ssr.model.image_size
    assert ssr.diffusion.prediction == stunet.diffusion.prediction
