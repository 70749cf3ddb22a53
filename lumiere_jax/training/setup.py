"""Config -> data, parameters, step config: the pieces `train.py` wires together.

Config -> model / encoder / tokenizer and loading a run live in `lumiere_jax.runs`
(re-exported here)."""

from __future__ import annotations

import os
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from lumiere_jax import runs
from lumiere_jax.applications.conditioning import TRAINING_KINDS
from lumiere_jax.data.moving_shapes.scenes import MAX_OBJECTS
from lumiere_jax.models import UNet, UNetConfig, inflate_params, trainable_mask
from lumiere_jax.parallel import (DEFAULT_RULES, check_rules, param_shardings,
                                  remat_compiler_options)
from lumiere_jax.parallel.mesh import mesh_rules
from lumiere_jax.runs import (load_run_params, load_run_params_onto, make_init_fn,  # noqa: F401
                              text_config, tokenizer, unet_config)  # (re-exported)
from lumiere_jax.text import TextEncoder, Tokenizer
from lumiere_jax.training.step import STAGES, StepConfig
from lumiere_jax.xla_options import with_kernel_options

# Config keys that do not change what a checkpoint means: a run may be extended, moved,
# re-meshed or logged differently and still resume.
FINGERPRINT_EXCLUDE = ("train.num_steps", "train.log_every", "train.checkpoint_every",
                       "train.keep_checkpoints", "train.max_nonfinite", "train.progress",
                       "train.on_unreadable",
                       "mesh", "sample", "tensorboard", "data.data_dir", "data.num_threads",
                       "data.prefetch", "xla_options")

ON_UNREADABLE = ("stop", "restart")  # config.train.on_unreadable


class NonFiniteError(RuntimeError):
    """Too many consecutive non-finite steps; the last complete checkpoint is untouched."""


def step_config(config: Any, model_cfg: UNetConfig) -> StepConfig:
    d = config.diffusion
    return StepConfig(stage=config.stage,
                      schedule=runs.noise_schedule(config),
                      prediction=d.prediction, weighting=d.weighting,
                      text_dropout=d.text_dropout, ema_decay=config.optim.ema_decay,
                      ema_warmup=bool(config.optim.get("ema_warmup", False)),
                      ssr_low_res=d.ssr_low_res, ssr_max_aug=d.ssr_max_aug,
                      t_power=float(d.get("t_power", 1.0)),
                      min_t=float(d.get("min_t", StepConfig.min_t)),
                      layout_factor=layout_factor(config),
                      condition_kinds=tuple(d.get("condition_kinds", TRAINING_KINDS)),
                      reversal_pairs=bool(config.data.get("time_reversal_pairs", False)),
                      caption_contrast=float(d.get("caption_contrast",
                                                   StepConfig.caption_contrast)),
                      contrast_sharpness=float(d.get("contrast_sharpness",
                                                     StepConfig.contrast_sharpness)),
                      contrast_min_t=float(d.get("contrast_min_t", StepConfig.contrast_min_t)),
                      motion_noise=motion_noise(config),
                      motion_layout=str(d.get("motion_layout", StepConfig.motion_layout)))


def layout_factor(config: Any) -> int:
    """`config.diffusion.layout_factor`: how much a 'layout' run pools its clips (1 for
    every other stage)."""
    return int(config.diffusion.get("layout_factor", 1)) if config.stage == "layout" else 1


def data_image_size(config: Any) -> int:
    """The size of the clips a run reads: the model's, times the layout factor."""
    return config.model.image_size * layout_factor(config)


def unet_trainable(config: Any) -> str:
    """`config.train.unet_trainable` (default 'new'), checked: 'new' (the `temporal_*` /
    `cond_*` weights of a stunet or conditional run) or, for the conditional stage only,
    'all' (its whole U-Net)."""
    scope = config.train.get("unet_trainable", "new")
    if scope not in ("new", "all") or (scope == "all" and config.stage != "conditional"):
        raise ValueError(f"config.train.unet_trainable={scope!r}: 'new' (temporal_* / cond_* "
                         "weights) or, for the conditional stage only, 'all'")
    return scope


def init_source_kind(config: Any) -> str:
    """The train stage `config.train.init_from` holds, checked: by default 't2i' for a
    stunet run, 'stunet' for a conditional one, the run's own stage otherwise;
    `config.train.init_from_kind` = the run's own stage fine-tunes a run of its kind (a
    stunet run continuing a trained STUNet, all weights loaded, the same ones trainable)."""
    natural = {"stunet": "t2i", "conditional": "stunet"}.get(config.stage, config.stage)
    kind = config.train.get("init_from_kind", "") or natural
    if kind not in (natural, config.stage):
        raise ValueError(f"config.train.init_from_kind={kind!r} for a {config.stage!r} run: "
                         f"{natural!r} (the default) or {config.stage!r} (fine-tuning one)")
    return kind


def check_config(config: Any) -> None:
    """Early `ValueError`s for inconsistent stage / model / data fields."""
    if config.stage not in STAGES:
        raise ValueError(f"config.stage={config.stage!r}; valid: {STAGES}")
    axis_rules(config)  # a bad config.mesh.rules fails here, before any workdir is touched
    unet_trainable(config)
    init_source_kind(config)
    video = config.stage != "t2i"
    if video != bool(config.model.temporal):
        raise ValueError(f"config.stage={config.stage!r} needs config.model.temporal={video}")
    if config.stage == "stunet" and not config.train.init_from:
        raise ValueError("config.stage='stunet' inflates a T2I checkpoint: set "
                         "config.train.init_from to the T2I run's checkpoint folder "
                         "(<t2i workdir>/checkpoints)")
    if config.stage == "conditional" and (config.model.cond_channels != 4
                                          or not config.train.init_from):
        raise ValueError("config.stage='conditional' fine-tunes a STUNet run with the <C, M> "
                         "input: it needs config.model.cond_channels=4 and "
                         "config.train.init_from set to the stunet run's checkpoint folder")
    if config.stage == "layout":
        check_layout(config)
    if config.stage == "ssr" and not config.model.cond_channels:
        raise ValueError("config.stage='ssr' needs config.model.cond_channels=3 (low-res input)")
    if config.model.text_dim != config.text.width:
        raise ValueError(f"config.model.text_dim={config.model.text_dim} must equal "
                         f"config.text.width={config.text.width}")
    temporal_dim = config.model.get("temporal_text_dim", 0)
    temporal_width = config.text.get("temporal_width", 0)
    if temporal_dim != temporal_width:
        raise ValueError(f"config.model.temporal_text_dim={temporal_dim} must equal "
                         f"config.text.temporal_width={temporal_width} (the temporal layers "
                         "read the temporal encoder's states)")
    if config.data.get("time_reversal_pairs", False) and (
            not video or (config.data.batch_size // num_shards(config)) % 2):
        raise ValueError(f"config.data.time_reversal_pairs pairs each clip with its time "
                         f"reversal: it needs a video stage (got {config.stage!r}) and an even "
                         f"batch per data shard (config.data.batch_size="
                         f"{config.data.batch_size} over {num_shards(config)} shards)")
    on_unreadable = config.train.get("on_unreadable", "stop")
    if on_unreadable not in ON_UNREADABLE:
        raise ValueError(f"config.train.on_unreadable={on_unreadable!r}; valid: {ON_UNREADABLE} "
                         "(what to do when no checkpoint in the workdir is readable)")
    if config.data.batch_size % jax.process_count():
        raise ValueError(f"config.data.batch_size={config.data.batch_size} (global) must be "
                         f"divisible by the {jax.process_count()} processes")


def check_layout(config: Any) -> None:
    """A 'layout' run (`diffusion.layout`): pooled clips, the base stage's times."""
    factor, d = config.diffusion.get("layout_factor", 1), config.diffusion
    if not isinstance(factor, int) or factor < 2:
        raise ValueError(f"config.diffusion.layout_factor={factor!r}: a 'layout' run pools "
                         "its clips by an int >= 2 (e.g. 4: 32 px clips -> 8 px)")
    if d.schedule_base_size != config.model.image_size * factor:
        raise ValueError(f"config.diffusion.schedule_base_size={d.schedule_base_size} must be "
                         f"model.image_size * layout_factor = {config.model.image_size * factor}"
                         " (the base stage's size), so the expert's t is the base stage's t")
    if config.train.init_from:
        raise ValueError("config.stage='layout' trains from scratch: leave "
                         "config.train.init_from empty")
    if config.sample.every:
        raise ValueError("config.sample.every must be 0 for a 'layout' run: it denoises only "
                         "t >= diffusion.min_t (judge it in the cascade, evaluate.py "
                         "--layout_run)")


def num_shards(config: Any) -> int:
    """Data shards over all processes: `config.data.num_shards`, or one per process."""
    n = config.data.num_shards or jax.process_count()
    if n % jax.process_count() or config.data.batch_size % n:
        raise ValueError(f"config.data.num_shards={n} must be a multiple of the "
                         f"{jax.process_count()} processes and divide config.data.batch_size="
                         f"{config.data.batch_size}")
    return n


def train_batches(config: Any, tok: Tokenizer):
    """This process's tokenised training batches (`data.ShardedBatches`) for the config."""
    from lumiere_jax.data import load_source
    from lumiere_jax.data.sharded import ShardedBatches

    d, mcfg = config.data, config.model
    return ShardedBatches(
        load_source(d.name, d.split, data_dir=d.data_dir or None),
        global_batch_size=d.batch_size, num_shards=num_shards(config), tokenizer=tok,
        seed=config.seed, num_frames=None if config.stage == "t2i" else mcfg.num_frames,
        size=data_image_size(config), images=config.stage == "t2i", num_threads=d.num_threads,
        caption_dropout=d.get("caption_dropout", 0.0),
        time_reversal_pairs=bool(d.get("time_reversal_pairs", False)),
        motion_labels=motion_noise(config) > 0, prefetch_buffer_size=d.prefetch)


def motion_noise(config: Any) -> float:
    """`config.diffusion.motion_noise` (0 when absent): the training noise's moving share."""
    return float(config.diffusion.get("motion_noise", 0.0))


def mesh_shape(config: Any) -> dict:
    """The axis sizes in `config.mesh` (`parallel.make_mesh`'s argument; `rules` apart)."""
    return {k: v for k, v in config.mesh.to_dict().items() if k != "rules"}


def axis_rules(config: Any):
    """The run's logical-axis rules: `config.mesh.rules` (checked), else `DEFAULT_RULES`."""
    rules = config.mesh.get("rules", None)
    return DEFAULT_RULES if rules is None else check_rules(rules)


def compiler_options(config: Any) -> dict | None:
    """XLA options for every compile of the run: `config.xla_options` over
    `xla_options.kernel_options()` (XLA's multi-threaded CPU kernels), plus
    `parallel.remat_compiler_options()` (so `model.remat` saves memory on CPU too);
    None if empty. Disabled-pass lists are merged, not overwritten."""
    opts = config.get("xla_options", None)
    opts = with_kernel_options(opts.to_dict() if hasattr(opts, "to_dict") else opts) or {}
    for key, value in remat_compiler_options().items():
        opts[key] = ",".join(p for p in (opts.get(key), value) if p)
    return opts or None


def abstract_batch_shapes(config: Any, model_cfg: UNetConfig) -> dict:
    """Global batch as `ShapeDtypeStruct`s (no sharding)."""
    b, s = config.data.batch_size, model_cfg.image_size * layout_factor(config)
    lead = (b,) if config.stage == "t2i" else (b, model_cfg.num_frames)
    extra = ({"velocity": jax.ShapeDtypeStruct((b, 2), jnp.float32),
              "tracks": jax.ShapeDtypeStruct((b, MAX_OBJECTS, 5), jnp.float32)}
             if motion_noise(config) else {})
    return dict(pixels=jax.ShapeDtypeStruct(lead + (s, s, 3), jnp.uint8),
                ids=jax.ShapeDtypeStruct((b, config.text.max_length), jnp.int32),
                mask=jax.ShapeDtypeStruct((b, config.text.max_length), jnp.bool_), **extra)


def trainable_tree(config: Any, params: Any) -> dict:
    """Pytree of bool: which weights train in this stage. In stunet / conditional runs the
    new `temporal_*` / `cond_*` weights train (also a `temporal_encoder` of the text
    encoder); the rest of the encoder trains iff `config.text.trainable`. A conditional
    run with `train.unet_trainable='all'` trains its whole U-Net (the spatial weights too:
    the new input then reaches every layer through trained weights)."""
    const = lambda tree, v: jax.tree.map(lambda _: v, nn.meta.unbox(tree))
    if config.stage not in ("stunet", "conditional"):
        return {"unet": const(params["unet"], True),
                "text": const(params["text"], bool(config.text.trainable))}
    text = (const(params["text"], True) if config.text.trainable
            else trainable_mask(params["text"]))
    unet = (const(params["unet"], True) if unet_trainable(config) == "all"
            else trainable_mask(params["unet"]))
    return {"unet": unet, "text": text}


def init_params(config: Any, model: UNet, encoder: TextEncoder, mesh: Mesh,
                rules=None) -> tuple[dict, dict]:
    """Sharded parameters (born sharded) and their shardings; stunet inflates a T2I run,
    conditional a stunet run (adding the zero-init `cond_input_conv`).

    The init key is `jax.random.key(config.seed, impl=config.init_rng_impl)` ('rbg'
    compiles much faster on CPU than threefry).
    """
    init_fn = make_init_fn(model, encoder, config)
    key = jax.random.key(config.seed, impl=config.init_rng_impl)
    rules = axis_rules(config) if rules is None else rules
    with mesh_rules(mesh, rules):  # as parallel.init_sharded, with the run's XLA options
        shardings = param_shardings(jax.eval_shape(init_fn, key), mesh, rules)
        params = jax.jit(init_fn, out_shardings=shardings).lower(key).compile(
            compiler_options(config))(key)
    params = nn.meta.unbox(params)
    if config.stage in ("stunet", "conditional") or config.train.init_from:
        source = load_init_source(config, onto=params)
        # Inflation is a pure merge (on the devices, for a checkpoint source): the new
        # temporal_* / cond_* weights keep their init.
        params = {"unet": inflate_params(source["unet"], params["unet"]),
                  "text": inflate_params(source["text"], params["text"])}
        params = jax.device_put(params, shardings)  # a pretrained folder's host arrays
    return params, shardings


def abstract_params(config: Any, model: UNet, encoder: TextEncoder, mesh: Mesh,
                    rules=None) -> dict:
    """The run's parameters as `ShapeDtypeStruct`s still in their flax logical-axis boxes
    (`nn.LogicallyPartitioned`): nothing is computed. `parallel.param_shardings` turns
    them into shardings, `nn.meta.unbox` into the plain tree."""
    init_fn = make_init_fn(model, encoder, config)
    key = jax.random.key(config.seed, impl=config.init_rng_impl)
    with mesh_rules(mesh, axis_rules(config) if rules is None else rules):
        return jax.eval_shape(init_fn, key)


def load_init_source(config: Any, onto: dict | None = None) -> dict:
    """The `{'unet', 'text'}` weights a run starts from, `config.train.init_from`: for a
    stunet (conditional) run a t2i (stunet) run, for a t2i / ssr run one of its own kind
    (fine-tuning on, with a fresh optimizer); a checkpoint folder, or a pretrained folder
    holding exactly one stage of that kind (its exported weights, host NumPy).
    `onto`: the (sharded) tree they go into; a checkpoint is then read straight onto its
    shardings (`runs.load_run_params_onto`: device arrays, no optimizer state, no host
    copy), else to host NumPy."""
    from lumiere_jax import pretrained

    kind = init_source_kind(config)
    source = config.train.init_from
    if os.path.isfile(os.path.join(source, pretrained.MANIFEST)):
        return pretrained.load_stage(source, pretrained.stage_of_kind(source, kind))[1]
    if onto is not None:
        return load_run_params_onto(source, kind, onto, config.train.init_from_ema,
                                    field="config.train.init_from")
    return load_run_params(source, kind, config.train.init_from_ema,
                           field="config.train.init_from")


def load_t2i_params(directory: str, use_ema: bool = True) -> dict:
    """The T2I run that a `stunet` run inflates (`config.train.init_from`)."""
    return load_run_params(directory, "t2i", use_ema, field="config.train.init_from")


def check_nonfinite(rows: list[dict], max_nonfinite: int, last_checkpoint: int | None) -> None:
    """Raise `NonFiniteError` if any row shows `max_nonfinite` consecutive skipped steps."""
    for r in rows:
        if r["nonfinite"] >= max_nonfinite:
            saved = (f"The last good checkpoint (step {last_checkpoint}) is intact"
                     if last_checkpoint is not None else "No checkpoint was written yet")
            raise NonFiniteError(
                f"step {r['step']}: {r['nonfinite']} consecutive steps had a non-finite loss or "
                f"gradient (limit config.train.max_nonfinite={max_nonfinite}); their updates "
                f"were skipped. Stopping. {saved}: lower config.optim.lr, raise warmup, "
                "check the data, then resume.")


def write_rows(writer: Any, pending: list, t_last: float, config: Any,
               last_saved: int | None, flops: float | None = None) -> list[dict]:
    """Write the metrics of the `pending` (step, metrics) pairs, each with the mean step
    time since `t_last`, examples/s (and FLOP/s given the step's `flops`), to the
    `MetricWriter`; then stop the run (`check_nonfinite`) if too many steps in a row were
    non-finite. Returns the rows."""
    rows = [dict(step=s, **jax.device_get(m)) for s, m in pending]
    elapsed = (time.perf_counter() - t_last) / len(rows)
    for r in rows:
        r.update(step_time_s=elapsed, examples_per_s=config.data.batch_size / elapsed)
        if flops is not None:
            r["flops_per_s"] = flops / elapsed
    writer.write(rows)
    check_nonfinite(rows, config.train.max_nonfinite, last_saved)
    return rows
