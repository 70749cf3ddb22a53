"""Can the STUNet's temporal text path move content the way the caption says at all?

    python benchmarks/direction_overfit.py [STEPS=300] [INIT=pretrained/moving_shapes] \
        [--spatial_conv]      # model.temporal_spatial_conv=True (new convs start at zero)
        [--fresh_text]        # the temporal text encoder re-initialised, not INIT's
        [--layout]            # model.temporal_text_layout=True (the field starts at zero)
        [--t_power=P]         # t = 1 - (1 - u)^P (40: 93% of the steps at t > 0.95)
        [--one_hot]           # text.temporal_kind='one_hot' (INIT must be a run made with it)

An overfitting check that tells "cannot" from "has no reason to": 8 clips of one large
red circle on black, all centred on the same point at mid-clip, that differ only in their
direction (the 8 directions, fast), captioned "a red circle moving <direction>". The demo
STUNet config, started from INIT's base stage (`init_from_kind=stunet`), trains STEPS
steps on that one batch (uniform t unless --t_power); then each caption is sampled from the same noise
(16 DDIM steps, guidance 3) and read back by `analyze_clip`, and the batch's v-loss at
t = 0.9, 0.98, 1 is reported with its own captions and with them rolled by one. If the 8 samples do not move
their captions' ways after the loss has fallen, the text path cannot steer motion; if
they do, the full run's trouble is the weak loss signal, not the architecture.
Prints one JSON object per 50 steps (loss) and one at the end (directions read back).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs.demo_stunet import get_config
from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (
    DIRECTIONS, SIZES, SPEEDS, Scene, ShapeObject, render_scene)
from lumiere_jax import runs
from lumiere_jax.diffusion.objectives import diffusion_loss
from lumiere_jax.eval import analyze_clip
from lumiere_jax.parallel import make_mesh, shard_batch
from lumiere_jax.parallel.mesh import mesh_rules
from lumiere_jax.training import setup
from lumiere_jax.training.run import build_run
from lumiere_jax.training.state import merge_params
from lumiere_jax.training.step import make_sample_fn


def direction_batch(frames: int, size: int) -> tuple[np.ndarray, list[str], list[str]]:
    """uint8 (8, frames, size, size, 3) clips, their captions and direction names."""
    clips, captions, names = [], [], []
    for name, (unit, phrase) in DIRECTIONS.items():
        unit = np.asarray(unit) / np.linalg.norm(unit)
        travel = unit * SPEEDS["fast"][0] * size
        start = np.full(2, size / 2.0) - travel / 2
        r = SIZES["large"] * size
        if not (np.all(start - r >= 0) and np.all(start + travel + r <= size)):
            raise ValueError(f"a large fast circle moving {phrase} leaves a {size} px frame")
        obj = ShapeObject("circle", "red", "large", name, "fast", tuple(map(float, start)),
                          tuple(map(float, travel / (frames - 1))))
        clips.append(render_scene(Scene((obj,), "black"), frames, size, size))
        captions.append(f"a red circle moving {phrase}")
        names.append(name)
    return np.stack(clips), captions, names


def caption_use(run, params, batch, times=(0.9, 0.98, 1.0)) -> dict:
    """v-loss on the batch at each t with its own captions and with the captions rolled
    by one (every clip told another direction), same noise: a model that reads the
    direction word does better with its own."""
    x0 = batch["pixels"].astype(np.float32) / 127.5 - 1.0

    @jax.jit
    def loss(params, ids, mask, t):
        states, smask = run.encoder.apply({"params": params["text"]}, ids, mask)
        denoise = lambda x_t, tt: run.model.apply({"params": params["unet"]}, x_t, tt,
                                                  states, smask)
        return diffusion_loss(denoise, x0, jax.random.key(5), run.step_config.schedule,
                              run.step_config.prediction, t=np.full(len(x0), t, np.float32))

    ids, mask = np.asarray(batch["ids"]), np.asarray(batch["mask"])
    rolled_ids, rolled_mask = np.roll(ids, 1, axis=0), np.roll(mask, 1, axis=0)
    return {str(t): {"own": float(loss(params, ids, mask, t)),
                     "rolled": float(loss(params, rolled_ids, rolled_mask, t))} for t in times}


def main() -> None:
    options = {a.partition("=")[0] for a in sys.argv[1:] if a.startswith("--")}
    t_power = [float(a.partition("=")[2]) for a in sys.argv[1:] if a.startswith("--t_power=")]
    unknown = options - {"--spatial_conv", "--fresh_text", "--layout", "--t_power", "--one_hot"}
    if unknown:
        raise SystemExit(f"unknown options {sorted(unknown)}; valid: --spatial_conv, "
                         "--fresh_text, --layout, --t_power=P, --one_hot")
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    steps = int(args[0]) if args else 300
    init = args[1] if len(args) > 1 else "pretrained/moving_shapes"
    config = get_config()
    config.model.temporal_spatial_conv = "--spatial_conv" in options
    config.model.temporal_text_layout = "--layout" in options
    config.diffusion.t_power = t_power[-1] if t_power else 1.0
    if "--one_hot" in options:
        config.text.temporal_kind = "one_hot"
    config.train.update(init_from=init, init_from_kind="stunet")
    config.data.batch_size = 8
    config.optim.warmup_steps = 20
    setup.check_config(config)
    mesh = make_mesh(setup.mesh_shape(config))
    run = build_run(config, mesh)
    if "--fresh_text" in options:  # INIT's temporal encoder replaced by a fresh one
        params, _ = setup.init_params(config, run.model, run.encoder, mesh, run.rules)
        fresh = runs.random_params(config, jax.random.key(11, impl=config.init_rng_impl))
        params["text"] = dict(params["text"], temporal_encoder=jax.device_put(
            fresh["text"]["temporal_encoder"]))
        state, frozen = run.state_from_params(params)
    else:
        state, frozen = run.fresh_state()
    pixels, captions, names = direction_batch(config.model.num_frames, config.model.image_size)
    ids, mask = run.tokenizer.encode(captions)
    host_batch = dict(pixels=pixels, ids=np.asarray(ids), mask=np.asarray(mask))
    batch = shard_batch(host_batch, mesh)
    compiled = run.compile()
    start, losses = time.perf_counter(), []
    with mesh_rules(mesh, run.rules):
        for step in range(steps):
            state, metrics = compiled(state, frozen, batch)
            losses.append(float(metrics["loss"]))
            if (step + 1) % 50 == 0:
                print(json.dumps({"step": step + 1, "loss_last50": float(np.mean(losses[-50:])),
                                  "seconds": round(time.perf_counter() - start, 1)}), flush=True)
        sample = jax.jit(make_sample_fn(run.model, run.encoder, run.step_config, num_steps=16,
                                        guidance=3.0))
        noise = np.repeat(np.asarray(jax.random.normal(jax.random.key(7), (1,) + pixels.shape[1:])),
                          len(captions), axis=0)
        out = np.asarray(sample(merge_params(state["params"], frozen), ids, mask, run.null_ids,
                                run.null_mask, noise, jax.random.key(8), pixels))
        use = caption_use(run, merge_params(state["params"], frozen), host_batch)
    read = [analyze_clip(v) for v in out]
    got = [a.objects[0].direction if a.objects else "none" for a in read]
    print(json.dumps({"figure": "direction_overfit", "steps": steps, "init": init,
                      "spatial_conv": config.model.temporal_spatial_conv,
                      "fresh_text": "--fresh_text" in options,
                      "layout": config.model.temporal_text_layout,
                      "temporal_text": config.text.temporal_kind,
                      "t_power": config.diffusion.t_power,
                      "loss_last50": float(np.mean(losses[-50:])),
                      "train_seconds": round(time.perf_counter() - start, 1),
                      "caption_use_v_loss": use, "asked": names, "read_back": got,
                      "correct": int(sum(a == b for a, b in zip(names, got)))}))


if __name__ == "__main__":
    main()
