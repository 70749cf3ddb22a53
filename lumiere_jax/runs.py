"""A run's config -> the objects it describes (U-Net config, text encoder, tokenizer), and a
train.py run's weights. Used by training, sampling, evaluation and the pretrained folder
alike; imports nothing from `lumiere_jax.training`.

    model_cfg = unet_config(config)              # UNetConfig from config.model
    encoder = TextEncoder(text_config(config))   # vocab size from the configured tokenizer
    tok = tokenizer(config)                      # 'bytes' or 'words' (config.text.vocab)
    schedule = noise_schedule(config)            # the schedule the run trains with
    params = load_run_params("runs/x/checkpoints", "stunet")   # {'unet', 'text'} (EMA)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import traverse_util

from lumiere_jax.diffusion.schedules import Schedule, cosine_schedule
from lumiere_jax.models import UNet, UNetConfig, check_inflatable, dummy_inputs
from lumiere_jax.models.critic import CriticConfig, VideoTextCritic, init_critic_params
from lumiere_jax.text import (ByteTokenizer, TextEncoder, TextEncoderConfig, Tokenizer,
                              WordTokenizer, make_encode_fn)

TOKENIZERS = ("bytes", "words")


def unet_config(config: Any) -> UNetConfig:
    """`UNetConfig` from `config.model` (every field of the dataclass may be overridden)."""
    fields = {f.name for f in dataclasses.fields(UNetConfig)}
    raw = config.model.to_dict() if hasattr(config.model, "to_dict") else dict(config.model)
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ValueError(f"config.model has unknown fields {unknown}; valid: {sorted(fields)}")
    return UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def noise_schedule(config: Any) -> Schedule:
    """The run's noise schedule: shifted cosine for `model.image_size` matched to
    `diffusion.schedule_base_size`. Sampling a run's weights must use this schedule: the
    network has learnt which noise level each time t means."""
    return cosine_schedule(config.model.image_size, config.diffusion.schedule_base_size)


def tokenizer(config: Any) -> Tokenizer:
    """`config.text.tokenizer`: 'bytes' (UTF-8 bytes) or 'words' (`config.text.vocab`)."""
    t = config.text
    kind = t.get("tokenizer", "bytes")
    if kind not in TOKENIZERS:
        raise ValueError(f"config.text.tokenizer={kind!r}; valid: {TOKENIZERS}")
    if kind == "words":
        if not t.get("vocab", ()):
            raise ValueError("config.text.tokenizer='words' needs config.text.vocab (a list of "
                             "words, e.g. moving_shapes.caption_vocabulary())")
        return WordTokenizer(tuple(t.vocab), max_length=t.max_length)
    return ByteTokenizer(max_length=t.max_length)


def text_config(config: Any) -> TextEncoderConfig:
    """The run's `TextEncoderConfig`; its vocabulary is the configured tokenizer's."""
    t = config.text
    return TextEncoderConfig(vocab_size=tokenizer(config).vocab_size, width=t.width,
                             depth=t.depth, num_heads=t.num_heads, max_length=t.max_length,
                             temporal_width=t.get("temporal_width", 0),
                             temporal_depth=t.get("temporal_depth", 1),
                             temporal_kind=t.get("temporal_kind", "transformer"))


def saved_config(workdir: str) -> ml_collections.ConfigDict | None:
    """The config a train.py run saved as `WORKDIR/config.json`; None if it has none."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_run(workdir: str, stage: str | tuple[str, ...], use_ema: bool = True,
             field: str = "workdir") -> tuple[ml_collections.ConfigDict, dict]:
    """(config, `{'unet', 'text'}` weights) of a train.py run: the `config.json` it saved
    and the newest readable checkpoint in `checkpoints/` (EMA by default). `stage`: the
    train stage(s) it must be; anything else is a `ValueError` naming `field`."""
    config = saved_config(workdir)
    if config is None:
        raise ValueError(f"{field}={workdir!r} has no config.json: give a train.py workdir")
    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    if config.stage not in stages:
        raise ValueError(f"{field}={workdir!r} is a {config.stage!r} run; expected one of "
                         f"{stages}")
    params = load_run_params(os.path.join(workdir, "checkpoints"), config.stage, use_ema,
                             field=field)
    return config, params


def _restore_run(directory: str, stage: str, field: str, target: Any = None,
                 partial: bool = False) -> dict:
    """The newest readable checkpoint's saved tree (`Checkpointer.restore(.., target,
    partial)`) of a `stage` run, read only, with the errors `load_run_params` documents.
    `target` may be a function of the open `Checkpointer` that returns it."""
    from lumiere_jax.checkpoint import Checkpointer, UnreadableCheckpointError

    with Checkpointer(directory, config_fingerprint=None, read_only=True) as ckpt:
        if ckpt.latest_step() is None:
            raise ValueError(f"{field}={directory!r} holds no complete checkpoint; train the "
                             f"{stage} stage first")
        try:
            saved, meta = ckpt.restore_newest_readable(
                target(ckpt) if callable(target) else target, move_aside=False,
                partial=partial)
        except UnreadableCheckpointError as e:
            raise ValueError(f"{field}={directory!r}: {e}") from None
        if meta["step"] != ckpt.latest_step():
            logging.warning("%s=%r: using checkpoint step %d, the newest readable one",
                            field, directory, meta["step"])
    saved_stage = meta.get("metadata", {}).get("stage")
    if saved_stage not in (None, stage):
        raise ValueError(f"{field}={directory!r} is a {saved_stage!r} run; expected a "
                         f"{stage!r} run")
    return saved


def _weight_places(saved: Any, use_ema: bool) -> dict:
    """`{weight path: its path in the saved run tree}`: the frozen weights
    (`frozen/...`), then the trained ones (`state/ema/...` or `state/params/...`) over
    them."""
    places = {p: ("frozen",) + p
              for p in traverse_util.flatten_dict(dict(saved.get("frozen", {}) or {}))}
    trained = ("state", "ema" if use_ema else "params")
    places.update({p: trained + p
                   for p in traverse_util.flatten_dict(dict(saved[trained[0]][trained[1]]))})
    return places


def _weights_of(saved: Any, use_ema: bool) -> dict:
    """The `{'unet', 'text'}` weights of a saved run tree (see `_weight_places`)."""
    flat = traverse_util.flatten_dict(saved)
    return traverse_util.unflatten_dict(
        {p: flat[where] for p, where in _weight_places(saved, use_ema).items()})


def load_run_params(directory: str, stage: str, use_ema: bool = True,
                    field: str = "checkpoint folder") -> dict:
    """`{'unet', 'text'}` weights (host NumPy) of the newest readable checkpoint of a
    `stage` run.

    `field` names the flag or config entry that gave `directory`, for error messages. The
    folder is only read (it may be another run's, still training): an unreadable newer
    checkpoint is skipped with a warning, never moved; a folder with no readable one is a
    one-line `ValueError` naming `field`, the folder and each step tried.
    """
    saved = _restore_run(directory, stage, field)
    return jax.tree.map(np.asarray, _weights_of(saved, use_ema))


def load_run_params_onto(directory: str, stage: str, onto: dict, use_ema: bool = True,
                         field: str = "checkpoint folder") -> dict:
    """A `stage` run's `{'unet', 'text'}` weights read straight onto the shardings of the
    tree they will be merged into: `onto` holds that tree's leaves (arrays or
    `ShapeDtypeStruct`s with `.sharding`), e.g. a STUNet's for its T2I run. Only the
    run's weights are read (no optimizer state), each shard by the devices that hold it,
    nothing through the host. Returns device arrays for the run's paths (a subset of
    `onto`'s); a run that does not fit `onto` is a `ValueError` listing the paths
    (`models.check_inflatable`), as is everything `load_run_params` refuses."""
    from lumiere_jax.checkpoint import CheckpointReadError

    def target(ckpt) -> dict | None:
        """The partial orbax target: each saved weight at its saved place, with the shape
        and dtype it was saved with and `onto`'s sharding; checked to fit `onto` first
        (from the newest step whose metadata reads)."""
        for step in reversed(ckpt.all_steps()):
            try:
                saved = ckpt.state_metadata(step)
                break
            except CheckpointReadError:
                continue
        else:
            return None  # no metadata reads: the full restore reports every step
        saved = getattr(saved, "tree", saved)
        shapes = _weights_of(saved, use_ema)
        for part in ("unet", "text"):
            check_inflatable(shapes.get(part, {}), onto[part])
        destination, flat = traverse_util.flatten_dict(onto), traverse_util.flatten_dict(saved)
        return traverse_util.unflatten_dict({
            where: jax.ShapeDtypeStruct(tuple(flat[where].shape), flat[where].dtype,
                                        sharding=destination[path].sharding)
            for path, where in _weight_places(saved, use_ema).items()})

    return _weights_of(_restore_run(directory, stage, field, target, partial=True), use_ema)


def make_init_fn(model: UNet, encoder: TextEncoder, config: Any):
    """`init_fn(key) -> {'unet': boxed params, 'text': boxed params}` on dummy inputs."""
    mcfg, length = model.config, config.text.max_length

    def init_fn(key):
        k_unet, k_text = jax.random.split(key)
        dummy = dummy_inputs(mcfg, batch=1, text_len=length)
        ids = jnp.zeros((1, length), jnp.int32)
        return {"unet": model.init(k_unet, **dummy)["params"],
                "text": encoder.init(k_text, ids, jnp.ones((1, length), bool))["params"]}

    return init_fn


def critic_config(config: Any) -> CriticConfig:
    """The `CriticConfig` of a 'critic' run's config (`config.critic` holds its sizes)."""
    c = config.critic
    return CriticConfig(vocab_size=tokenizer(config).vocab_size,
                        max_length=config.text.max_length, widths=tuple(c.widths),
                        text_width=c.text_width, embed_dim=c.embed_dim)


def _run_init_fn(config: Any):
    """`init_fn(key)` of a run's weights: `{'unet', 'text'}`, or a critic's `{'critic'}`."""
    if config.stage == "critic":
        critic, m = VideoTextCritic(critic_config(config)), config.model
        return lambda key: {"critic": init_critic_params(critic, key, m.num_frames,
                                                         m.image_size)}
    return make_init_fn(UNet(unet_config(config)), TextEncoder(text_config(config)), config)


def param_shapes(config: Any) -> dict:
    """`{'unet', 'text'}` tree of `ShapeDtypeStruct`s of a run's weights (nothing computed)."""
    return nn.meta.unbox(jax.eval_shape(_run_init_fn(config), jax.random.key(0)))


def random_params(config: Any, key: jax.Array) -> dict:
    """`{'unet', 'text'}` freshly initialised weights of a run config (jitted init)."""
    return nn.meta.unbox(jax.jit(_run_init_fn(config))(key))


def text_encode_fn(config: Any, text_params: Any):
    """prompts -> (states (B, L, D), mask (B, L)) with the run's tokenizer + text encoder."""
    return make_encode_fn(TextEncoder(text_config(config)), text_params, tokenizer(config))
