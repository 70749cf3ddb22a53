"""Does a conditional STUNet read its `<C, M>` input? Its v-loss with the clip's first frame
given (i2v) against nothing given (M = 0), on real held-out clips, the same noise.

    python benchmarks/condition_use.py pretrained/moving_shapes 16
    python benchmarks/condition_use.py runs/demo_conditional_pool 16     # a train.py workdir

A model that reads the given frame knows, at pure noise (t = 1), the background and the
object's colour and start of every frame, so its loss there falls far below the loss
without it; the figure on frames 8.. shows whether that knowledge reaches frames far from
the given one (through the temporal layers or `cond_time_pool`). One JSON object per t.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lumiere_jax import pretrained, runs
from lumiere_jax.applications.conditioning import image_to_video_condition
from lumiere_jax.data import load_source
from lumiere_jax.eval import short_caption
from lumiere_jax.models import UNet

TIMES = (0.5, 0.9, 0.98, 1.0)
FAR = 8  # frames from here on are "far" from the given frame 0


def load(folder: str):
    if os.path.isdir(os.path.join(folder, "checkpoints")):
        with open(os.path.join(folder, "config.json")) as f:
            config = ml_collections.ConfigDict(json.load(f))
        return config, runs.load_run_params(os.path.join(folder, "checkpoints"), config.stage)
    return pretrained.load_stage(folder, "conditional")


def main(folder: str, n: int) -> None:
    config, params = load(folder)
    mcfg = runs.unet_config(config)
    if mcfg.cond_channels != 4:
        sys.exit(f"{folder}: not a conditional STUNet (cond_channels={mcfg.cond_channels})")
    schedule = runs.noise_schedule(config)
    source = load_source(config.data.name, "test")
    records = [r for r in (source[i] for i in range(min(len(source), 8 * n)))
               if int(r["num_objects"]) == 1][:n]
    video = jnp.asarray(np.stack([r["video"] for r in records]).astype(np.float32) / 127.5 - 1)
    text, mask = runs.text_encode_fn(config, params["text"])([short_caption(r) for r in records])
    noise = jax.random.normal(jax.random.key(0), video.shape)
    model = UNet(mcfg)

    @jax.jit
    def losses(t, given):
        cond = image_to_video_condition(video[:, 0], video.shape[1]) * given
        alpha, sigma = schedule.alpha_sigma(jnp.full((len(records),), t))
        a, s = alpha[:, None, None, None, None], sigma[:, None, None, None, None]
        pred = model.apply({"params": params["unet"]}, a * video + s * noise,
                           jnp.full((len(records),), t), text, mask, cond=cond)
        err = (pred - (a * noise - s * video)) ** 2
        return err.mean(), err[:, FAR:].mean()

    for t in TIMES:
        (given, given_far), (none, none_far) = losses(t, 1.0), losses(t, 0.0)
        print(json.dumps(dict(figure="condition_use", t=t, clips=len(records),
                              loss_first_frame_given=float(given), loss_nothing_given=float(none),
                              far_frames_from=FAR, far_loss_given=float(given_far),
                              far_loss_nothing_given=float(none_far), source=folder)),
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
