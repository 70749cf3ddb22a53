"""What every config in configs/ shares: the full set of training fields with defaults
(`base_config`), the demo cascade's settings (`demo_config`), the tiny variant each stage
file returns for `:tiny` (`tiny_config`) and the run-length block (`set_schedule`).

A stage file is `get_config(arg=None)`, as in big_vision: `configs/t2i.py` is the real
run, `configs/t2i.py:tiny` (`python train.py --config configs/t2i.py:tiny`) its
seconds-scale variant for tests and smoke checks.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from lumiere_jax.models import UNetConfig, presets
from lumiere_jax.parallel import DEFAULT_RULES


def base_config(stage: str, model: UNetConfig) -> ml_collections.ConfigDict:
    """Every field `train.py` reads. `model` fills `config.model` (all UNetConfig fields)."""
    c = ml_collections.ConfigDict()
    c.stage = stage                      # 't2i' | 'stunet' | 'ssr' | 'conditional'
    c.seed = 0
    c.init_rng_impl = "rbg"              # param init key ('rbg' compiles fast on CPU)
    c.model = ml_collections.ConfigDict(dataclasses.asdict(model))
    c.text = ml_collections.ConfigDict(dict(
        width=model.text_dim, depth=2, num_heads=2, max_length=32,
        tokenizer="bytes",               # 'bytes' | 'words' (then `vocab` lists the words)
        vocab=(),
        temporal_width=0,                # > 0: a fresh encoder for the temporal layers only
        temporal_depth=1,                #   (needs model.temporal_text_dim = temporal_width)
        temporal_kind="transformer",     #   or 'one_hot': fixed one-hot word ids, nothing trained
        trainable=stage in ("t2i", "ssr")))  # trained with the T2I / SSR U-Net, else frozen
                                         # (a `temporal_width` encoder trains in stunet)
    c.data = ml_collections.ConfigDict(dict(
        name="moving_shapes/f16_s32", split="train", data_dir="",
        batch_size=8,                    # global, over all processes
        caption_dropout=0.0,             # moving_shapes: drop optional caption parts (p each)
        time_reversal_pairs=False,       # moving_shapes clips: each batch row followed by
                                         #   itself played backwards, directions reversed
        num_shards=0,                    # data shards in all (0: one per process)
        num_threads=4, prefetch=4))
    c.diffusion = ml_collections.ConfigDict(dict(
        prediction="v", weighting="plain", schedule_base_size=model.image_size,
        text_dropout=0.1, ssr_low_res=model.image_size // 4, ssr_max_aug=0.3,
        t_power=1.0,                     # t = 1 - (1 - u)^t_power; > 1 favours high noise
        caption_contrast=0.0,            # stunet + time_reversal_pairs: weight of the pairs'
        contrast_sharpness=500.0,        #   caption contrast (diffusion.contrast), its
        contrast_min_t=0.8,              #   sharpness and lowest t
        motion_noise=0.0,                # stunet / conditional on moving_shapes: the noise's
                                         #   shared part moves with the clip, c ~ U(0, this)
        motion_layout="field"))          #   all of it ('field') or each object's disc
                                         #   ('objects')
    c.optim = ml_collections.ConfigDict(dict(
        lr=1e-4, warmup_steps=100, decay_steps=10_000, end_lr_factor=0.1, b1=0.9, b2=0.99,
        eps=1e-8, weight_decay=0.0, clip_norm=1.0, accum_steps=1, ema_decay=0.999,
        ema_warmup=False))                 # True: decay min(ema_decay, (1+step)/(10+step))
    c.train = ml_collections.ConfigDict(dict(
        num_steps=10_000, log_every=50, checkpoint_every=1000, keep_checkpoints=3,
        max_nonfinite=10, init_from="", init_from_ema=True, progress=True,
        init_from_kind="",               # "": the stage's source (stunet <- t2i); or its own
        on_unreadable="stop"))           # no readable checkpoint: 'stop' (exit 1) | 'restart'
    c.mesh = ml_collections.ConfigDict(dict(
        data=-1, fsdp=1, tensor=1,       # -1: the remaining devices
        rules=DEFAULT_RULES))            # logical name -> mesh axes (parallel.check_rules)
    c.sample = ml_collections.ConfigDict(dict(
        every=0, num_steps=32, guidance=3.0, sampler="ddim",
        prompts=("a small red circle moving slowly left on a black background",
                 "a large blue square moving quickly up on a white background")))
    c.tensorboard = False
    c.xla_options = ml_collections.ConfigDict()  # e.g. {'xla_backend_optimization_level': 0}
    return c


def set_schedule(c: ml_collections.ConfigDict, *, steps: int, lr: float, warmup: int,
                 batch_size: int | None = None, checkpoint_every: int | None = None,
                 log_every: int | None = None, ema_decay: float | None = None,
                 ema_warmup: bool | None = None) -> ml_collections.ConfigDict:
    """Set a run's length and learning rate in one place: `steps` training steps whose
    cosine decay ends with the run (`optim.decay_steps = train.num_steps`), peak `lr` after
    `warmup` steps; the other arguments, when given, set the fields of the same name."""
    c.train.num_steps = c.optim.decay_steps = steps
    c.optim.update(lr=lr, warmup_steps=warmup)
    for group, field, value in (("data", "batch_size", batch_size),
                                ("train", "checkpoint_every", checkpoint_every),
                                ("train", "log_every", log_every),
                                ("optim", "ema_decay", ema_decay),
                                ("optim", "ema_warmup", ema_warmup)):
        if value is not None:
            c[group][field] = value
    return c


VARIANTS = ("", "tiny")


def is_tiny(arg: str | None) -> bool:
    """Whether a stage file's `get_config(arg)` should return its tiny variant: `arg` is
    None / '' (the real run) or 'tiny'; anything else is a `ValueError` listing those."""
    if arg not in (None, *VARIANTS):
        raise ValueError(f"config variant {arg!r}: choose one of {VARIANTS[1:]} after the "
                         "file name (configs/t2i.py:tiny), or none for the real run")
    return arg == "tiny"


def demo_config(stage: str, model: UNetConfig) -> ml_collections.ConfigDict:
    """`base_config` with the settings every stage of the shipped demo cascade shares:
    a word-level text encoder over the moving_shapes vocabulary (width 64, 2 layers) and
    captions rebuilt from the labels with optional parts dropped (short prompts)."""
    from lumiere_jax.data.moving_shapes import caption_vocabulary

    c = base_config(stage, model)
    c.text.update(tokenizer="words", vocab=caption_vocabulary(), max_length=32, depth=2,
                  num_heads=2)
    c.data.update(name="moving_shapes/f16_s32" if model.image_size <= 32 else
                  "moving_shapes/f16_s64", caption_dropout=0.5, num_threads=2, prefetch=2)
    return c


def tiny_model(**overrides) -> UNetConfig:
    """The smallest useful STUNet-compatible U-Net (8 px, width 8): compiles in seconds."""
    return presets.tiny_stunet(
        channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(),
        cross_attention_levels=(1,), norm_groups=4, text_dim=16, image_size=8, num_frames=4,
        temporal_downsample=(True,)).replace(**overrides)


def tiny_config(stage: str, **model_overrides) -> ml_collections.ConfigDict:
    """A seconds-per-run config for tests and smoke checks (`configs/<stage>.py:tiny`)."""
    if stage == "t2i":
        model_overrides = dict(temporal=False, temporal_downsample=(), **model_overrides)
    if stage == "conditional":  # the tiny STUNet with the <C, M> input
        model_overrides = dict(cond_channels=4, **model_overrides)
    if stage == "ssr":  # 8 -> 16 px: the tiny STUNet's 8 px clips are its input
        model_overrides = dict(temporal_downsample=(False,), cond_channels=3,
                               cond_level_embedding=True, image_size=16, **model_overrides)
    c = base_config(stage, tiny_model(**model_overrides))
    c.text.update(width=16, depth=1, num_heads=2, max_length=16)
    c.data.update(name="moving_shapes/f16_s32", batch_size=8, num_threads=1, prefetch=1)
    c.diffusion.update(ssr_low_res=8)
    # eps=1e-6: weights with an exactly-zero gradient (attention key biases) see rounding
    # noise that differs by mesh; eps=1e-8 would turn it into +-lr steps.
    c.optim.update(lr=1e-3, warmup_steps=2, decay_steps=100, ema_decay=0.9, eps=1e-6)
    c.train.update(num_steps=8, log_every=4, checkpoint_every=4, progress=False)
    c.mesh.update(data=1, fsdp=1, tensor=1)
    # CPU compile time dominates tiny runs: LLVM -O0 compiles ~3x faster.
    c.xla_options.update(xla_backend_optimization_level=0, xla_llvm_disable_expensive_passes=True)
    c.sample.update(num_steps=2, guidance=2.0,
                    prompts=("a small red circle moving slowly left on a black background",))
    return c
