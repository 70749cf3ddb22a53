"""Training on a dataset held in accelerator memory: `moving_shapes` clips rendered once,
batches drawn on the device, many steps per compiled call (`train_resident.py`).

On an accelerator the demo models are so small that a step takes milliseconds: a host
input pipeline and one dispatch per step would leave the chip idle. Here the whole
training set is rendered by NumPy worker processes (`render_clips`), each clip's captions
are tokenised up front (`caption_table`, optional parts dropped as `data.caption_dropout`
asks), and each jitted call draws its batch on the device by random index and runs the
train step (`make_resident_step`; several steps per call as a `lax.scan` if asked); calls
are queued asynchronously and the host syncs only every `sync_every` steps. The train
step is `train.py`'s own (`training.run.build_run`); only where the batch comes from
differs.

Data arrays on the device:
  pixels: uint8 (N, T, H, W, 3) clips; ids: int32 (N, K, L) and mask: bool (N, K, L), the
  K caption variants of each clip; velocity: float32 (N, 2), each clip's mean object
  velocity in px per frame, and tracks: float32 (N, 2, 5), each object's (y0, x0, vy, vx, r)
  px (both read by `diffusion.motion_noise` training). A 't2i' step draws
  one random frame of a random clip.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange

from lumiere_jax.data.moving_shapes import scenes

_LABELS = {"shape": scenes.SHAPES, "color": tuple(scenes.COLORS), "size": tuple(scenes.SIZES),
           "direction": tuple(scenes.DIRECTIONS), "speed": tuple(scenes.SPEEDS)}


def _render_range(args: tuple) -> tuple[np.ndarray, list[dict]]:
    seed, start, stop, frames, size, style = args
    videos, labels = [], []
    for i in range(start, stop):
        ex = scenes.make_example(seed, "train", i, frames, size, size, style=style)
        videos.append(ex["video"])
        objects = {k: [names.index(v) for v in ex["objects"][k]] for k, names in _LABELS.items()}
        objects["velocity"] = np.asarray(ex["objects"]["velocity"], np.float32)
        objects["start"] = np.asarray(ex["objects"]["start"], np.float32)
        labels.append(dict(num_objects=ex["num_objects"],
                           background=tuple(scenes.BACKGROUNDS).index(ex["background"]),
                           objects=objects))
    return np.stack(videos), labels


def render_clips(num_clips: int, num_frames: int, size: int, *, seed: int = 0,
                 style: str = "filled", workers: int | None = None
                 ) -> tuple[np.ndarray, list[dict]]:
    """The first `num_clips` records of the `moving_shapes` train split (the records a TFDS
    build with this seed holds, and more), rendered by `workers` processes.

    Returns (uint8 (N, T, H, W, 3), labels): labels as a decoded TFDS record has them
    (ClassLabel ids, per-object velocity), ready for `scenes.caption_from_labels`. The test split is never read.
    """
    workers = workers or os.cpu_count() or 1
    bounds = np.linspace(0, num_clips, 4 * workers + 1).astype(int)
    jobs = [(seed, int(a), int(b), num_frames, size, style)
            for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if workers == 1:
        parts = [_render_range(j) for j in jobs]
    else:  # spawn: safe next to an initialised accelerator runtime
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_render_range, jobs))
    return (np.concatenate([v for v, _ in parts]), [l for _, ls in parts for l in ls])


def caption_table(labels: list[dict], tokenizer: Any, *, drop_prob: float, per_clip: int,
                  seed: int = 0, reversed_: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`per_clip` captions of each clip rebuilt from its labels (`caption_from_labels`,
    optional parts dropped with `drop_prob`), tokenised: ids int32 (N, K, L), mask (N, K, L).
    Caption k of clip i is drawn from `np.random.default_rng([seed, i, k])`; `reversed_`:
    the same captions with every direction reversed (`scenes.reverse_directions`), those of
    the clips played backwards."""
    reverse = scenes.reverse_directions if reversed_ else (lambda caption: caption)
    captions = [reverse(scenes.caption_from_labels(lab, np.random.default_rng([seed, i, k]),
                                                   drop_prob))
                for i, lab in enumerate(labels) for k in range(per_clip)]
    ids, mask = tokenizer.encode(captions)
    shape = (len(labels), per_clip, -1)
    return np.asarray(ids, np.int32).reshape(shape), np.asarray(mask, bool).reshape(shape)


def mean_velocity(labels: list[dict]) -> np.ndarray:
    """float32 (N, 2): each clip's mean object velocity (dy, dx), px per frame."""
    return np.stack([np.mean(lab["objects"]["velocity"], axis=0) for lab in labels]
                    ).astype(np.float32)


def object_tracks(labels: list[dict], size: int) -> np.ndarray:
    """float32 (N, MAX_OBJECTS, 5): each clip's object tracks (y0, x0, vy, vx, r) px at the
    rendered `size` (`moving_shapes.object_tracks`)."""
    return np.stack([scenes.object_tracks(lab["objects"]["start"], lab["objects"]["velocity"],
                                          lab["objects"]["size"], size) for lab in labels])


def reverse_tracks(tracks: jax.Array, num_frames: int) -> jax.Array:
    """(..., 5) tracks of clips played backwards: start at the last frame, velocity negated."""
    start = tracks[..., 0:2] + (num_frames - 1) * tracks[..., 2:4]
    return jnp.concatenate([start, -tracks[..., 2:4], tracks[..., 4:]], axis=-1)


def draw_batch(data: dict, key: jax.Array, batch_size: int, images: bool,
               reversal_pairs: bool = False) -> dict:
    """A train batch drawn uniformly from the resident `data`: pixels uint8 (B, T, H, W, 3),
    or (B, H, W, 3) one random frame each when `images`; ids / mask (B, L); velocity (B, 2)
    and tracks (B, MAX_OBJECTS, 5) when `data` has them.

    reversal_pairs: B/2 clips drawn, row 2i + 1 is row 2i played backwards with the reversed
    caption (`data['ids_reversed']`, `data['mask_reversed']`), as
    `data.make_dataset(time_reversal_pairs=True)` lays a batch out."""
    k_clip, k_caption, k_frame = jax.random.split(key, 3)
    n, variants, frames = data["ids"].shape[0], data["ids"].shape[1], data["pixels"].shape[1]
    rows = batch_size // 2 if reversal_pairs else batch_size
    clip = jax.random.randint(k_clip, (rows,), 0, n)
    caption = jax.random.randint(k_caption, (rows,), 0, variants)
    ids, mask = data["ids"][clip, caption], data["mask"][clip, caption]
    extra = {k: data[k][clip] for k in ("velocity", "tracks") if k in data}
    if reversal_pairs:
        forwards = data["pixels"][clip]
        pairs = dict(pixels=(forwards, forwards[:, ::-1]),
                     ids=(ids, data["ids_reversed"][clip, caption]),
                     mask=(mask, data["mask_reversed"][clip, caption]),
                     **{k: (v, -v if k == "velocity" else reverse_tracks(v, frames))
                        for k, v in extra.items()})
        return {k: rearrange(jnp.stack(pair, axis=1), "b pair ... -> (b pair) ...")
                for k, pair in pairs.items()}
    if images:
        pixels = data["pixels"][clip, jax.random.randint(k_frame, (rows,), 0, frames)]
    else:
        pixels = data["pixels"][clip]
    return dict(pixels=pixels, ids=ids, mask=mask, **extra)


def make_resident_step(step_fn: Callable, batch_size: int, images: bool,
                       steps_per_call: int = 1, reversal_pairs: bool = False) -> Callable:
    """`fn(state, frozen, data, key) -> (state, metrics)`: `steps_per_call` applications of
    `step_fn(state, frozen, batch)`, each batch drawn with `fold_in(key, state['step'])`
    (so the draws do not depend on `steps_per_call`); metrics stacked along a leading
    (steps_per_call,) axis. More than one step runs as a `lax.scan`. Jit it.

    On XLA:CPU a train step inside a `lax.scan` (a while loop) ran 10x slower than the same
    step called alone (jax 0.10.2, demo T2I, batch 8: 2.7 s vs 0.26-0.5 s), so 1 (one
    dispatch per step, queued asynchronously) is the default."""

    def one(state, frozen, data, key):
        batch = draw_batch(data, jax.random.fold_in(key, state["step"]), batch_size, images,
                           reversal_pairs)
        return step_fn(state, frozen, batch)

    def call(state, frozen, data, key):
        if steps_per_call == 1:
            state, metrics = one(state, frozen, data, key)
            return state, jax.tree.map(lambda m: m[None], metrics)
        return jax.lax.scan(lambda s, _: one(s, frozen, data, key), state,
                            length=steps_per_call)

    return call


def one_device_mesh():
    """Resident training runs on one device (`jax.devices()[0]`, where the data lives);
    `config.mesh` is not read. Shard across devices with train.py."""
    from lumiere_jax.parallel import make_mesh

    return make_mesh({"data": 1}, devices=jax.devices()[:1])


def warm_started(params: dict, folder: str, kind: str, mask: dict) -> dict:
    """`params` with every weight that `mask` marks trainable taken from the stage of kind
    `kind` in the pretrained `folder` (shapes checked by `pretrained.load_stage`)."""
    from lumiere_jax import pretrained

    _, warm = pretrained.load_stage(folder, pretrained.stage_of_kind(folder, kind))
    return jax.tree.map(lambda fresh, old, trains: old if trains else fresh, params, warm, mask)


def check_resident_config(config: Any, seconds: float, steps_per_call: int, num_clips: int,
                          captions_per_clip: int) -> None:
    """Early `ValueError`s for what `train_resident` cannot do, naming the field."""
    build_shape(config)
    if config.stage == "critic":
        raise ValueError("config.stage='critic': train the critic with train.py")
    for name, value in (("--seconds", seconds), ("--steps_per_call", steps_per_call),
                        ("--num_clips", num_clips), ("--captions_per_clip", captions_per_clip)):
        if not value > 0:
            raise ValueError(f"{name}={value}: must be > 0")


def build_shape(config: Any) -> tuple[int, int, str]:
    """(frames, size, style) of the `moving_shapes/f<T>_s<S>[_outline]` build the config
    names, checked against the model (its frames, for a video stage, and its size)."""
    match = re.fullmatch(r"moving_shapes/f(\d+)_s(\d+)(_outline)?", config.data.name)
    if not match:
        raise ValueError(f"config.data.name={config.data.name!r}: resident training renders "
                         "moving_shapes/f<frames>_s<size>[_outline] clips; use train.py for "
                         "other datasets")
    frames, size = int(match[1]), int(match[2])
    if size != config.model.image_size or (
            config.stage != "t2i" and frames != config.model.num_frames):
        raise ValueError(f"config.data.name={config.data.name!r} holds {frames}-frame {size} px "
                         f"clips; the model takes {config.model.num_frames} frames of "
                         f"{config.model.image_size} px")
    return frames, size, "outline" if match[3] else "filled"


def train_resident(config: Any, workdir: str, *, seconds: float, steps_per_call: int = 1,
                   sync_every: int = 50,
                   num_clips: int = 100_000, captions_per_clip: int = 4,
                   warm_start: str = "", name: str = "", export_every_s: float = 60.0,
                   workers: int | None = None) -> dict:
    """Train `config`'s stage for about `seconds` of stepping on resident data; write
    `workdir` as a pretrained folder (manifest.json, `<name>.safetensors` EMA weights and
    `<name>.config.json`, `from_pretrained` / `config.train.init_from` read it) plus
    metrics.jsonl. Weights are written every `export_every_s` and at the end, so a run
    stopped early still leaves its latest weights. The learning rate follows `config.optim`
    by step (warm-up, then the decay over `optim.decay_steps`).

    warm_start: a pretrained folder whose stage of this kind gives the starting value of
    every trainable weight (a fine-tune); the rest come as `train.py` would take them
    (`train.init_from`, inflation). Returns the training figures written to the manifest.
    """
    from lumiere_jax import pretrained
    from lumiere_jax.parallel.mesh import mesh_rules
    from lumiere_jax.training import MetricWriter, setup
    from lumiere_jax.training.run import build_run
    from lumiere_jax.training.state import merge_params, split_params
    from lumiere_jax.training.step import make_train_step

    check_resident_config(config, seconds, steps_per_call, num_clips, captions_per_clip)
    setup.check_config(config)
    name = name or {"stunet": "base"}.get(config.stage, config.stage)
    frames, size, style = build_shape(config)
    batch_size, t0 = config.data.batch_size, time.perf_counter()
    videos, labels = render_clips(num_clips, frames, size, seed=config.seed, style=style,
                                  workers=workers)
    run = build_run(config, one_device_mesh())
    ids, mask = caption_table(labels, run.tokenizer, drop_prob=config.data.caption_dropout,
                              per_clip=captions_per_clip, seed=config.seed)
    data = dict(pixels=videos, ids=ids, mask=mask, velocity=mean_velocity(labels),
                tracks=object_tracks(labels, size))
    pairs = bool(config.data.get("time_reversal_pairs", False))
    if pairs:  # each clip also played backwards, with its directions reversed
        data["ids_reversed"], data["mask_reversed"] = caption_table(
            labels, run.tokenizer, drop_prob=config.data.caption_dropout,
            per_clip=captions_per_clip, seed=config.seed, reversed_=True)
    print(f"rendered {len(videos)} clips {videos.shape[1:]} and {ids.shape[1]} captions each "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    data = jax.device_put(data, jax.devices()[0])
    del videos

    params, _ = setup.init_params(config, run.model, run.encoder, run.mesh, run.rules)
    if warm_start:
        params = warm_started(params, warm_start, config.stage, run.mask)
    trainable, frozen = split_params(params, run.mask)
    state = run.make_state(trainable, run.state_key())
    step_fn = make_train_step(run.model, run.encoder, run.tx, run.lr_schedule, run.step_config,
                              run.null_ids, run.null_mask)
    with mesh_rules(run.mesh, run.rules):
        multi = jax.jit(make_resident_step(step_fn, batch_size, config.stage == "t2i",
                                           steps_per_call, pairs), donate_argnums=(0,))
        key = jax.random.key(config.seed + 3, impl="threefry2x32")
        t_compile = time.perf_counter()
        compiled = multi.lower(state, frozen, data, key).compile(run.xla_options)
        print(f"compiled {steps_per_call} steps per call in "
              f"{time.perf_counter() - t_compile:.1f} s", flush=True)

    os.makedirs(workdir, exist_ok=True)
    writer = MetricWriter(workdir, total_steps=None, progress=False)
    figures: dict = {}

    def export(step: int, train_seconds: float, losses: list[float]) -> None:
        figures.update(steps=step, train_seconds=round(train_seconds, 1),
                       first_loss=round(losses[0], 5),
                       final_loss_last50=round(float(np.mean(losses[-50:])), 5),
                       batch_size=batch_size, resident_clips=int(data["pixels"].shape[0]),
                       device=jax.devices()[0].device_kind)
        entry = pretrained.write_stage(workdir, name, config,
                                       jax.device_get(merge_params(state["ema"], frozen)),
                                       dict(figures))
        pretrained.write_manifest(workdir, {name: entry})

    losses: list[float] = []
    calls = max(1, sync_every // steps_per_call)  # calls queued between two host syncs
    step, stepping, last_export = 0, 0.0, time.perf_counter()
    try:
        while stepping < seconds:
            t = time.perf_counter()
            pending = []
            for _ in range(calls):
                state, metrics = compiled(state, frozen, data, key)
                pending.append(metrics)
            pending = jax.device_get(pending)
            elapsed = time.perf_counter() - t
            stepping += elapsed
            n = calls * steps_per_call
            per_step = [(step + i * steps_per_call + j + 1, {k: v[j] for k, v in m.items()})
                        for i, m in enumerate(pending) for j in range(steps_per_call)]
            rows = setup.write_rows(writer, per_step, t, config, None)
            losses += [float(r["loss"]) for r in rows]
            step += n
            if time.perf_counter() - last_export > export_every_s:
                export(step, stepping, losses)
                last_export = time.perf_counter()
                print(f"step {step}: loss {np.mean(losses[-n:]):.4f}, "
                      f"{elapsed / n * 1e3:.1f} ms/step, exported", flush=True)
    finally:
        writer.close()
    export(step, stepping, losses)
    print(f"done: {step} steps in {stepping:.1f} s of stepping, loss "
          f"{figures['final_loss_last50']:.4f} (last 50); wrote {workdir}", flush=True)
    return figures
