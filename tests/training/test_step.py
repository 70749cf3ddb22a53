"""Train step: sharded meshes match one device; non-finite steps are skipped; only the
trainable subtree has gradients / optimizer state."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from lumiere_jax.models import UNet, inflate_params
from lumiere_jax.parallel import DEFAULT_RULES, batch_sharding, make_mesh, param_shardings
from lumiere_jax.parallel.mesh import mesh_rules
from lumiere_jax.text import TextEncoder
from lumiere_jax.training import (init_state, make_optimizer, make_train_step, split_params,
                                  state_shardings)
from lumiere_jax.training import setup
from configs.common import tiny_config

NUM_STEPS, BATCH = 3, 8
CAPTIONS = ["a small red circle moving slowly left on a black background",
            "a large blue square moving quickly up on a white background", "", "x"]


class Run:
    """Everything one t2i train step needs, built once (host-side initial state)."""

    def __init__(self, stage: str = "t2i", config=None, **model_overrides):
        self.config = c = config or tiny_config(stage, **model_overrides)
        c.data.batch_size = BATCH
        # Weights whose exact gradient is 0 (attention key biases) get rounding-noise
        # gradients that differ by mesh; Adam's default eps=1e-8 would blow that noise up
        # to +-lr steps. eps=1e-6 keeps such updates ~1e-7 and real ones unchanged.
        c.optim.eps = 1e-6
        self.model_cfg = setup.unet_config(c)
        self.model, self.encoder = UNet(self.model_cfg), TextEncoder(setup.text_config(c))
        self.tx, self.lr = make_optimizer(c.optim)
        self.init_fn = setup.make_init_fn(self.model, self.encoder, c)
        self.key = jax.random.key(c.seed, impl=c.init_rng_impl)
        tok = setup.tokenizer(c)
        null_ids, null_mask = (a[0] for a in tok.encode([""]))
        self.step_fn = make_train_step(self.model, self.encoder, self.tx, self.lr,
                                       setup.step_config(c, self.model_cfg), null_ids, null_mask)
        rng = np.random.default_rng(0)
        size = setup.data_image_size(c)
        lead = (BATCH,) if stage == "t2i" else (BATCH, self.model_cfg.num_frames)
        self.batches = []
        for _ in range(NUM_STEPS):
            ids, mask = tok.encode([CAPTIONS[i] for i in rng.integers(0, 4, BATCH)])
            self.batches.append(dict(
                pixels=rng.integers(0, 256, lead + (size, size, 3), dtype=np.uint8),
                ids=ids.astype(np.int32), mask=mask))

    def host_state(self):
        params = nn.meta.unbox(jax.jit(self.init_fn)(self.key))
        mask = setup.trainable_tree(self.config, params)
        trainable, frozen = split_params(params, mask)
        state = jax.device_get(init_state(trainable, self.tx, jax.random.key(1)))
        state["rng"] = np.asarray(jax.random.key_data(state["rng"]))  # host copy
        return state, jax.device_get(frozen), mask

    def device_state(self, host_state, state_sh):
        """A fresh device copy (the step donates it); the key is re-wrapped each time."""
        host = dict(host_state, rng=jax.random.wrap_key_data(host_state["rng"]))
        return jax.device_put(host, state_sh, may_alias=False)

    def compile(self, mesh, mask):
        with mesh_rules(mesh, DEFAULT_RULES):
            boxed = jax.eval_shape(self.init_fn, self.key)
        _, frozen_sh = split_params(param_shardings(boxed, mesh), mask)
        state_sh = state_shardings(split_params(boxed, mask)[0], self.tx, mesh)
        batch_sh = jax.tree.map(lambda _: batch_sharding(mesh), self.batches[0])
        with mesh_rules(mesh, DEFAULT_RULES):
            step = jax.jit(self.step_fn, in_shardings=(state_sh, frozen_sh, batch_sh),
                           out_shardings=(state_sh, None), donate_argnums=(0,),
                           compiler_options=setup.compiler_options(self.config))
        return step, state_sh, frozen_sh, batch_sh


@pytest.fixture(scope="module")
def run():
    r = Run()
    r.state0, r.frozen0, r.mask = r.host_state()
    return r


def train_on(run: Run, mesh):
    step, state_sh, frozen_sh, batch_sh = run.compile(mesh, run.mask)
    state = run.device_state(run.state0, state_sh)
    frozen = jax.device_put(run.frozen0, frozen_sh)
    losses = []
    with mesh_rules(mesh, DEFAULT_RULES):
        for b in run.batches:
            state, metrics = step(state, frozen, jax.device_put(b, batch_sh))
            losses.append(float(metrics["loss"]))
    return (np.array(losses), jax.device_get(state["params"]), step,
            (state_sh, frozen_sh, batch_sh, mesh))


@pytest.fixture(scope="module")
def one_device(run):
    return train_on(run, make_mesh({"data": 1}, devices=jax.devices()[:1]))


@pytest.mark.parametrize("shape", [(8, 1, 1), (4, 2, 1), (2, 2, 2)])
def test_meshes_match_one_device(run, one_device, shape):
    """Tolerance: losses to 1e-5 relative, weights after 3 AdamW steps to 1e-5 absolute."""
    mesh = make_mesh(dict(zip(("data", "fsdp", "tensor"), shape)))
    losses, params, _, _ = train_on(run, mesh)
    ref_losses, ref_params, _, _ = one_device
    assert np.all(np.isfinite(ref_losses)) and len(set(ref_losses.tolist())) == NUM_STEPS
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params),
                            jax.tree.leaves(ref_params)):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=jax.tree_util.keystr(path))
    # The weights moved: an update that did nothing would also "match".
    moved = [np.max(np.abs(a - b)) for a, b in zip(jax.tree.leaves(params),
                                                    jax.tree.leaves(run.state0["params"]))]
    assert max(moved) > 1e-4


def test_nonfinite_step_is_skipped(run, one_device):
    _, _, step, (state_sh, frozen_sh, batch_sh, mesh) = one_device
    poisoned = jax.tree.map(np.copy, run.state0)
    leaf = poisoned["params"]["unet"]["out_conv"]["kernel"]
    leaf[0, 0, 0, 0] = np.nan
    state = run.device_state(poisoned, state_sh)
    frozen = jax.device_put(run.frozen0, frozen_sh)
    batch = jax.device_put(run.batches[0], batch_sh)
    before = jax.device_get(state)
    for expected in (1, 2):
        with mesh_rules(mesh, DEFAULT_RULES):  # same context and shardings: no recompile
            state, metrics = step(state, frozen, batch)
        assert not bool(metrics["finite"]) and int(metrics["nonfinite"]) == expected
    after = jax.device_get(state)
    assert int(after["step"]) == 2 and int(after["skipped"]) == 2
    for name in ("params", "ema", "opt_state"):
        for a, b in zip(jax.tree.leaves(after[name]), jax.tree.leaves(before[name])):
            np.testing.assert_array_equal(a, b)  # bit-identical (NaN == NaN here)
    rows = [dict(step=i + 1, nonfinite=i + 1) for i in range(2)]
    setup.check_nonfinite(rows[:1], 2, last_checkpoint=0)  # 1 in a row: keep going
    with pytest.raises(setup.NonFiniteError, match=r"2 consecutive .*last good checkpoint "
                                                   r"\(step 0\) is intact"):
        setup.check_nonfinite(rows, 2, last_checkpoint=0)
    with pytest.raises(setup.NonFiniteError, match="No checkpoint was written yet"):
        setup.check_nonfinite(rows, 2, last_checkpoint=None)


def test_only_trainable_weights_get_optimizer_state():
    """stunet: the optimizer state covers exactly the temporal_* weights (abstractly)."""
    c = tiny_config("stunet")
    model, encoder = UNet(setup.unet_config(c)), TextEncoder(setup.text_config(c))
    init_fn = setup.make_init_fn(model, encoder, c)
    params = nn.meta.unbox(jax.eval_shape(init_fn, jax.random.key(0)))
    mask = setup.trainable_tree(c, params)
    trainable, frozen = split_params(params, mask)
    tx, _ = make_optimizer(c.optim)
    opt = jax.eval_shape(tx.init, trainable)
    flat_train = traverse_util.flatten_dict(trainable)
    flat_frozen = traverse_util.flatten_dict(frozen)
    assert flat_train and flat_frozen
    assert all(any(p.startswith("temporal_") for p in path) for path in flat_train)
    assert not any(any(p.startswith("temporal_") for p in path) for path in flat_frozen)
    assert all(path[0] == "unet" for path in flat_train)  # the text encoder is frozen
    n_train = sum(np.prod(x.shape) for x in flat_train.values())
    n_opt = sum(np.prod(x.shape) for x in jax.tree.leaves(opt) if x.ndim > 0)
    # MultiSteps: accumulator + Adam mu + nu, each the size of the trainable weights only.
    assert n_opt == 3 * n_train


def test_a_temporal_text_encoder_trains_in_the_stunet_stage_and_nothing_else_of_the_text():
    """stunet with `text.temporal_width`: of the text encoder, exactly the fresh
    `temporal_encoder` weights train; it inflates from a T2I run's text tree; mismatched
    widths are refused naming both fields."""
    c = tiny_config("stunet", temporal_text=True, temporal_text_dim=8)
    c.text.update(temporal_width=8, trainable=False)
    model, encoder = UNet(setup.unet_config(c)), TextEncoder(setup.text_config(c))
    params = nn.meta.unbox(jax.eval_shape(setup.make_init_fn(model, encoder, c), jax.random.key(0)))
    flat = traverse_util.flatten_dict(setup.trainable_tree(c, params)["text"])
    assert {p for p, m in flat.items() if m} == {p for p in flat if p[0] == "temporal_encoder"}
    assert any(p[0] == "temporal_encoder" for p in flat) and not all(flat.values())
    t2i_text = {k: v for k, v in params["text"].items() if k != "temporal_encoder"}
    merged = inflate_params(jax.tree.map(np.zeros_like, t2i_text),
                            jax.tree.map(np.ones_like, params["text"]))
    for path, leaf in traverse_util.flatten_dict(merged).items():
        assert float(np.max(leaf)) == (1.0 if path[0] == "temporal_encoder" else 0.0), path
    c.text.temporal_width, c.train.init_from = 16, "runs/t2i/checkpoints"
    with pytest.raises(ValueError,
                       match="temporal_text_dim=8 must equal config.text.temporal_width=16"):
        setup.check_config(c)


def test_compiler_options_merge_user_options_with_remat_and_kernel_ones():
    config = tiny_config("t2i")
    config.xla_options.update(xla_disable_hlo_passes="algsimp")
    opts = setup.compiler_options(config)
    assert opts["xla_backend_optimization_level"] == 0
    assert opts["xla_disable_hlo_passes"] == "algsimp,cse_barrier_expander"  # CPU test backend
    config.xla_options = {}
    ynn_off = {"xla_cpu_experimental_ynn_fusion_type": ""}  # XLA's multi-threaded kernels
    assert setup.compiler_options(config) == {**ynn_off,
                                              "xla_disable_hlo_passes": "cse_barrier_expander"}
    config.xla_options = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
    assert setup.compiler_options(config)["xla_cpu_experimental_ynn_fusion_type"] == (
        "LIBRARY_FUSION_TYPE_DOT")  # the run's own choice wins


def test_ssr_steps_train_the_low_res_conditioning_path():
    """ssr: finite losses, and the zero-initialised cond_input_conv (the low-res video's
    way in) and the noise-level embedding both move: the conditioning is wired in."""
    r = Run("ssr")
    r.state0, r.frozen0, r.mask = r.host_state()
    losses, params, _, _ = train_on(r, make_mesh({"data": 1}, devices=jax.devices()[:1]))
    assert np.all(np.isfinite(losses))
    unet0, unet = r.state0["params"]["unet"], params["unet"]
    assert not np.any(unet0["cond_input_conv"]["kernel"])
    assert np.max(np.abs(unet["cond_input_conv"]["kernel"])) > 1e-4
    for a, b in zip(jax.tree.leaves(unet["cond_level_embed"]),
                    jax.tree.leaves(unet0["cond_level_embed"])):
        assert np.max(np.abs(a - b)) > 0


def test_bf16_compute_keeps_fp32_master_weights(one_device):
    """model.dtype=bfloat16: the step runs, its losses track the fp32 run's to 5%, and
    the trained (master) weights stay float32."""
    r = Run("t2i", dtype="bfloat16")
    assert r.model_cfg.dtype == "bfloat16"
    r.state0, r.frozen0, r.mask = r.host_state()
    losses, params, _, _ = train_on(r, make_mesh({"data": 1}, devices=jax.devices()[:1]))
    assert np.all(np.isfinite(losses))
    np.testing.assert_allclose(losses, one_device[0], rtol=0.05)
    assert {x.dtype for x in jax.tree.leaves(params)} == {np.dtype(np.float32)}
    moved = [np.max(np.abs(a - b)) for a, b in zip(jax.tree.leaves(params),
                                                    jax.tree.leaves(r.state0["params"]))]
    assert max(moved) > 1e-4


def test_ssr_sample_fn_reads_the_low_res_video():
    """The periodic-sample function of an ssr run: uint8 clips of the noise's shape that
    depend on the conditioning pixels exactly when the cond conv is non-zero."""
    from lumiere_jax.training.step import make_sample_fn

    r = Run("ssr")
    params = nn.meta.unbox(jax.jit(r.init_fn)(r.key))
    fn = jax.jit(make_sample_fn(r.model, r.encoder, setup.step_config(r.config, r.model_cfg),
                                num_steps=2, guidance=2.0))
    tok = setup.tokenizer(r.config)
    ids, mask = tok.encode(CAPTIONS[:2])
    null_ids, null_mask = (a[0] for a in tok.encode([""]))
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((2,) + r.batches[0]["pixels"].shape[1:]).astype(np.float32)
    a, b = (rng.integers(0, 256, noise.shape, dtype=np.uint8) for _ in range(2))
    run = lambda p, pixels: np.asarray(fn(p, ids, mask, null_ids, null_mask, noise,
                                          jax.random.key(0), pixels))
    out_a = run(params, a)
    assert out_a.dtype == np.uint8 and out_a.shape == noise.shape
    np.testing.assert_array_equal(out_a, run(params, b))  # zero-init cond conv: no effect
    kernel = params["unet"]["cond_input_conv"]["kernel"]
    params["unet"]["cond_input_conv"]["kernel"] = jnp.asarray(
        0.3 * rng.standard_normal(kernel.shape), kernel.dtype)
    assert np.abs(run(params, a).astype(int) - run(params, b).astype(int)).max() > 0


def test_the_conditional_stage_draws_the_configured_condition_kinds():
    """config.diffusion.condition_kinds reaches the step; only i2v drawn -> M is frame 0."""
    from lumiere_jax.applications.conditioning import random_training_condition
    from lumiere_jax.training.step import StepConfig, _model_kwargs

    config = tiny_config("conditional")
    config.diffusion.condition_kinds = ("i2v",)
    cfg = setup.step_config(config, setup.unet_config(config))
    assert cfg.condition_kinds == ("i2v",)
    assert setup.step_config(tiny_config("conditional"),
                             setup.unet_config(tiny_config("conditional"))).condition_kinds == (
        "i2v", "inpaint", "cinemagraph", "none")
    x0 = jax.random.uniform(jax.random.key(0), (6, 4, 8, 8, 3), minval=-1, maxval=1)
    cond = _model_kwargs(cfg, x0, jax.random.key(1))["cond"]
    mask = np.asarray(cond[..., -1])
    assert (mask[:, 0] == 1).all() and (mask[:, 1:] == 0).all()
    np.testing.assert_array_equal(cond, random_training_condition(x0, jax.random.key(1),
                                                                  ("i2v",)))
    with pytest.raises(ValueError, match="condition_kinds"):
        StepConfig(stage="conditional", schedule=cfg.schedule, condition_kinds=("zoom",))


def test_a_conditional_run_may_train_its_whole_unet_and_only_it():
    config = tiny_config("conditional")
    params = {"unet": {"input_conv": {"kernel": 0}, "temporal_conv_down0_0": {"w": 0},
                       "cond_input_conv": {"kernel": 0}},
              "text": {"token_embedding": {"embedding": 0}}}
    new_only = setup.trainable_tree(config, params)
    assert new_only["unet"] == {"input_conv": {"kernel": False},
                                "temporal_conv_down0_0": {"w": True},
                                "cond_input_conv": {"kernel": True}}
    config.train.unet_trainable = "all"
    every = setup.trainable_tree(config, params)
    assert all(jax.tree.leaves(every["unet"])) and not any(jax.tree.leaves(every["text"]))
    stunet = tiny_config("stunet")
    stunet.train.unet_trainable = "all"
    with pytest.raises(ValueError, match="unet_trainable"):
        setup.trainable_tree(stunet, params)


def test_reversal_pairs_share_time_and_noise_played_backwards():
    """Rows 2i, 2i + 1 meet the same t and the same noise played backwards, so for a clip
    and its reversal a time-reversal-equivariant denoiser has the same loss on both (with
    independent noise it does not); the noise is still N(0, 1) per element."""
    from lumiere_jax.diffusion.objectives import diffusion_loss
    from lumiere_jax.diffusion.schedules import cosine_schedule
    from lumiere_jax.training.step import reversal_pair_noise
    clips = np.random.default_rng(0).uniform(-1, 1, (3, 5, 4, 4, 3)).astype(np.float32)
    x0 = np.stack([clips, clips[:, ::-1]], axis=1).reshape((6,) + clips.shape[1:])
    t, eps = reversal_pair_noise(jax.random.key(1), jnp.asarray(x0), 2.0)
    t, eps = np.asarray(t), np.asarray(eps)
    np.testing.assert_array_equal(t[0::2], t[1::2])
    np.testing.assert_array_equal(eps[1::2], eps[0::2, ::-1])
    assert len(set(t[0::2].tolist())) == 3
    schedule = cosine_schedule(4)
    denoise = lambda x, tt: 0.3 * x + tt[:, None, None, None, None]  # commutes with reversal

    def row_loss(i, noise):
        return float(diffusion_loss(denoise, x0[i:i + 1], jax.random.key(0), schedule,
                                    t=t[i:i + 1], eps=noise[i:i + 1]))

    for i in range(0, 6, 2):
        assert row_loss(i, eps) == pytest.approx(row_loss(i + 1, eps), rel=1e-6)
    fresh = np.random.default_rng(1).standard_normal(x0.shape).astype(np.float32)
    assert row_loss(0, fresh) != pytest.approx(row_loss(1, fresh), rel=1e-3)
    _, big = reversal_pair_noise(jax.random.key(2), jnp.zeros((64, 8, 8, 8, 3)), 1.0)
    assert abs(float(big.mean())) < 0.02 and abs(float(big.std()) - 1.0) < 0.02
    with pytest.raises(ValueError, match="even batch"):
        reversal_pair_noise(jax.random.key(1), jnp.zeros((3, 2, 4, 4, 3)), 1.0)


def test_reversal_pairs_config_is_checked_and_a_stunet_step_runs_with_them():
    from lumiere_jax.training.step import StepConfig
    from lumiere_jax.diffusion.schedules import cosine_schedule
    with pytest.raises(ValueError, match="reversal_pairs pairs clips"):
        StepConfig("t2i", cosine_schedule(8), reversal_pairs=True)
    c = tiny_config("t2i")
    c.data.time_reversal_pairs = True
    with pytest.raises(ValueError, match="config.data.time_reversal_pairs.*video stage"):
        setup.check_config(c)
    c = tiny_config("stunet")
    c.train.init_from = "somewhere"
    c.data.update(time_reversal_pairs=True, batch_size=6, num_shards=2)
    with pytest.raises(ValueError, match="even batch per data shard"):
        setup.check_config(c)
    r = Run("stunet")
    r.config.data.time_reversal_pairs = True
    r.step_fn = make_train_step(r.model, r.encoder, r.tx, r.lr,
                                setup.step_config(r.config, r.model_cfg),
                                *(a[0] for a in setup.tokenizer(r.config).encode([""])))
    for b in r.batches:  # rows 2i + 1: row 2i played backwards, as the data pipeline makes
        b["pixels"][1::2] = b["pixels"][0::2, ::-1]
    r.state0, r.frozen0, r.mask = r.host_state()
    losses, params, _, _ = train_on(r, make_mesh({"data": 2}, devices=jax.devices()[:2]))
    assert np.all(np.isfinite(losses))
    moved = [np.max(np.abs(a - b)) for a, b in zip(jax.tree.leaves(params),
                                                    jax.tree.leaves(r.state0["params"]))]
    assert max(moved) > 1e-4


def test_caption_contrast_adds_the_pairs_classifier_loss_to_the_plain_one():
    """With the caption contrast on, the step's own-caption loss is the plain step's loss,
    its gap is the plain loss under the pairs' swapped captions minus the plain loss, and
    the contrast at a small sharpness k is softplus's expansion log 2 - k * gap / 2."""
    from lumiere_jax.training.step import StepConfig
    from lumiere_jax.diffusion.schedules import cosine_schedule
    with pytest.raises(ValueError, match="caption_contrast=0.1 .*reversal_pairs=True"):
        StepConfig("stunet", cosine_schedule(8), caption_contrast=0.1)
    with pytest.raises(ValueError, match="caption_contrast=0.1 .*stage 'stunet'"):
        StepConfig("ssr", cosine_schedule(8), caption_contrast=0.1, reversal_pairs=True)
    with pytest.raises(ValueError, match="contrast_min_t"):
        StepConfig("stunet", cosine_schedule(8), reversal_pairs=True, contrast_min_t=1.0)
    r = Run("stunet")
    r.config.data.time_reversal_pairs = True
    r.config.diffusion.update(contrast_sharpness=0.01, contrast_min_t=0.0)
    batch = dict(r.batches[0])
    batch["pixels"] = batch["pixels"].copy()
    batch["pixels"][1::2] = batch["pixels"][0::2, ::-1]
    swapped = dict(batch, ids=batch["ids"][[1, 0, 3, 2, 5, 4, 7, 6]],
                   mask=batch["mask"][[1, 0, 3, 2, 5, 4, 7, 6]])
    state, frozen, _ = r.host_state()
    null = [a[0] for a in setup.tokenizer(r.config).encode([""])]

    def metrics(weight, b):
        r.config.diffusion.caption_contrast = weight
        step = make_train_step(r.model, r.encoder, r.tx, r.lr,
                               setup.step_config(r.config, r.model_cfg), *null)
        host = dict(state, rng=jax.random.wrap_key_data(state["rng"]))
        return jax.device_get(jax.jit(step)(host, frozen, b)[1])

    plain, plain_swapped = metrics(0.0, batch), metrics(0.0, swapped)
    both = metrics(0.5, batch)
    assert both["diffusion_loss"] == pytest.approx(plain["loss"], rel=1e-4)
    gap = plain_swapped["loss"] - plain["loss"]
    assert abs(gap) > 1e-5  # the tiny model's spatial layers read the caption
    assert both["caption_gap"] == pytest.approx(gap, rel=1e-2, abs=1e-7)
    assert np.log(2.0) - both["caption_contrast"] == pytest.approx(0.01 * gap / 2, rel=0.02)
    assert both["loss"] == pytest.approx(both["diffusion_loss"] + 0.5 * both["caption_contrast"],
                                         rel=1e-6)


def test_a_layout_step_learns_the_clips_pooled_means_at_high_noise():
    """A 'layout' step reads its clips only through their mean over layout_factor blocks:
    pixels shuffled inside every block give the same loss, other block means another."""
    from configs.demo_layout import get_config
    from lumiere_jax.diffusion.schedules import cosine_schedule
    from lumiere_jax.training.step import StepConfig

    with pytest.raises(ValueError, match="layout_factor=1: an int > 1 for stage 'layout'"):
        StepConfig("layout", cosine_schedule(8))
    with pytest.raises(ValueError, match="layout_factor=2: .*got stage 'stunet'"):
        StepConfig("stunet", cosine_schedule(8), layout_factor=2)
    with pytest.raises(ValueError, match="min_t=1.0"):
        StepConfig("t2i", cosine_schedule(8), min_t=1.0)
    config = get_config("tiny")
    config.data.batch_size = BATCH
    r = Run("layout", config=config)
    f = config.diffusion.layout_factor
    assert r.batches[0]["pixels"].shape[2] == r.model_cfg.image_size * f
    state, frozen, _ = r.host_state()
    step = jax.jit(r.step_fn)

    def loss(pixels):
        host = dict(state, rng=jax.random.wrap_key_data(state["rng"]))
        return float(step(host, frozen, dict(r.batches[0], pixels=pixels))[1]["loss"])

    pixels = r.batches[0]["pixels"]
    b, t, h, w, c = pixels.shape
    blocks = pixels.reshape(b, t, h // f, f, w // f, f, c)
    shuffled = blocks[:, :, :, ::-1, :, ::-1].reshape(pixels.shape)  # same block means
    assert not np.array_equal(shuffled, pixels)
    assert loss(shuffled) == pytest.approx(loss(pixels), rel=1e-5)
    assert abs(loss(255 - pixels) - loss(pixels)) > 1e-3


def test_motion_noise_is_checked_and_moves_the_noise_with_the_batch_velocity():
    """With `diffusion.motion_noise`, the loss depends on the batch's 'velocity' (the noise
    moves with it); without it, 'velocity' is not read."""
    from lumiere_jax.training.step import StepConfig
    from lumiere_jax.diffusion.schedules import cosine_schedule
    with pytest.raises(ValueError, match="motion_noise=1.0"):
        StepConfig("stunet", cosine_schedule(8), motion_noise=1.0)
    with pytest.raises(ValueError, match="motion_noise=0.5 .*stage 'stunet' or 'conditional'"):
        StepConfig("t2i", cosine_schedule(8), motion_noise=0.5)
    with pytest.raises(ValueError, match="motion_noise=0.5 .*reversal_pairs=False"):
        StepConfig("stunet", cosine_schedule(8), motion_noise=0.5, reversal_pairs=True)
    r = Run("stunet")
    c = r.config
    c.diffusion.motion_noise = 0.5
    assert setup.abstract_batch_shapes(c, r.model_cfg)["velocity"].shape == (BATCH, 2)
    state, frozen, _ = r.host_state()
    null = [a[0] for a in setup.tokenizer(c).encode([""])]
    rng = np.random.default_rng(1)
    right = dict(r.batches[0], velocity=np.tile(np.float32([[0.0, 1.0]]), (BATCH, 1)))
    down = dict(right, velocity=rng.uniform(-2, 2, (BATCH, 2)).astype(np.float32))

    def step_with(weight, batch):
        c.diffusion.motion_noise = weight
        step = make_train_step(r.model, r.encoder, r.tx, r.lr, setup.step_config(c, r.model_cfg),
                               *null)
        host = dict(state, rng=jax.random.wrap_key_data(state["rng"]))
        return float(jax.jit(step)(host, frozen, batch)[1]["loss"])

    moving = step_with(0.5, right)
    assert np.isfinite(moving) and moving != step_with(0.5, down)
    assert step_with(0.0, right) == step_with(0.0, down) != moving

    # motion_layout 'objects': the loss reads 'tracks' (each object's disc), not 'velocity'
    with pytest.raises(ValueError, match="motion_layout='disc'"):
        StepConfig("stunet", cosine_schedule(8), motion_noise=0.5, motion_layout="disc")
    c.diffusion.motion_noise, c.diffusion.motion_layout = 0.5, "objects"
    size = r.model_cfg.image_size
    assert setup.abstract_batch_shapes(c, r.model_cfg)["tracks"].shape == (BATCH, 2, 5)
    one = np.tile(np.float32([[[size / 2, size / 4, 0.0, 0.5, size / 4], [0, 0, 0, 0, 0]]]),
                  (BATCH, 1, 1))
    tracked = dict(right, tracks=one)
    other = dict(tracked, tracks=one * np.float32([1.0, 1.5, 1.0, -1.0, 1.0]))  # moved, reversed
    by_tracks = step_with(0.5, tracked)
    assert np.isfinite(by_tracks) and by_tracks != step_with(0.5, other)
    assert by_tracks == step_with(0.5, dict(tracked, velocity=down["velocity"]))
