"""Does a STUNet's denoising loss depend on the direction word of its prompt?

    python benchmarks/direction_sensitivity.py pretrained/moving_shapes base 64
    python benchmarks/direction_sensitivity.py runs/demo_stunet_tp3 - 64   # a train.py workdir
    python benchmarks/direction_sensitivity.py pretrained/moving_shapes conditional 32 8 i2v

If the model reads direction from text, the true caption must predict a real clip better
than the same caption with the opposite direction, at least where the noisy clip hides
the motion (large t). For N single-object held-out test clips (`moving_shapes` test
split): the short caption ("a red circle moving right") vs the same caption moving the
opposite way ("... moving left"), the same noise, v-prediction MSE at several t. Prints
one JSON object per t: mean loss with each caption, the mean paired difference
(opposite - true) with its standard error, and the fraction of clips where the true
caption wins. A difference within ~2 standard errors of 0 means the loss gives no reason
to learn direction from the text (yet). A conditional STUNet is given its condition: none
(M = 0, plain text-to-video) or `i2v` (the clip's first frame), where the first frame
fixes where the object starts, so the direction word tells where it goes.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax import pretrained, runs
from lumiere_jax.applications.conditioning import image_to_video_condition
from lumiere_jax.data import load_source
from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import DIRECTIONS
from lumiere_jax.eval import short_caption
from lumiere_jax.models import UNet

TIMES = (0.5, 0.9, 0.95, 0.98, 0.995, 1.0)
PHRASES = {vec: phrase for vec, phrase in DIRECTIONS.values()}


def opposite(caption: str) -> str:
    """The caption with its direction phrase replaced by the reverse direction."""
    for vec, phrase in sorted(PHRASES.items(), key=lambda kv: -len(kv[1])):
        if caption.endswith("moving " + phrase):
            flipped = PHRASES[(-vec[0] + 0.0, -vec[1] + 0.0)]
            return caption[: -len(phrase)] + flipped
    raise ValueError(f"no direction phrase at the end of {caption!r}")


def single_object_clips(config, n: int) -> tuple[list[str], list[str], np.ndarray]:
    """The first `n` single-object clips of the test split of `config`'s data: their short
    captions, the same captions moving the opposite way, and the clips as float32
    `(n, T, H, W, 3)` in [-1, 1]. Exits with a message if the split has fewer."""
    source = load_source(config.data.name, "test")
    records = [r for r in (source[i] for i in range(min(len(source), 8 * n)))
               if int(r["num_objects"]) == 1][:n]
    if len(records) < n:
        sys.exit(f"only {len(records)} single-object test clips; ask for fewer")
    captions = [short_caption(r) for r in records]
    video = np.stack([r["video"] for r in records]).astype(np.float32) / 127.5 - 1.0
    return captions, [opposite(c) for c in captions], video


def main(folder: str, stage: str, n: int, batch: int = 8, condition: str = "none") -> None:
    if os.path.isdir(os.path.join(folder, "checkpoints")):  # a train.py workdir: newest EMA
        import ml_collections

        with open(os.path.join(folder, "config.json")) as f:
            config = ml_collections.ConfigDict(json.load(f))
        params = runs.load_run_params(os.path.join(folder, "checkpoints"), config.stage)
        stage = config.stage
    else:
        config, params = pretrained.load_stage(folder, stage)
    mcfg = runs.unet_config(config)
    schedule = runs.noise_schedule(config)
    encode = runs.text_encode_fn(config, params["text"])
    captions, flipped, video = single_object_clips(config, n)
    noise = np.asarray(jax.random.normal(jax.random.key(0), video.shape, jnp.float32))
    model = UNet(mcfg)

    if condition not in ("none", "i2v"):
        sys.exit(f"condition must be none or i2v, got {condition!r}")
    if condition == "i2v" and not mcfg.cond_channels:
        sys.exit(f"{stage} is not a conditional STUNet: i2v needs cond_channels=4")

    def cond_of(x0):
        if not mcfg.cond_channels:
            return None
        if condition == "i2v":
            return image_to_video_condition(x0[:, 0], x0.shape[1])
        return jnp.zeros(x0.shape[:-1] + (mcfg.cond_channels,))

    @jax.jit
    def losses(x0, eps, t, text, mask):
        alpha, sigma = schedule.alpha_sigma(t)
        a, s = alpha[:, None, None, None, None], sigma[:, None, None, None, None]
        pred = model.apply({"params": params["unet"]}, a * x0 + s * eps, t, text, mask,
                           cond=cond_of(x0))
        return jnp.mean((pred - (a * eps - s * x0)) ** 2, axis=(1, 2, 3, 4))

    for t_value in TIMES:
        per_caption = []
        for texts in (captions, flipped):
            out = []
            for i in range(0, n, batch):
                text, mask = encode(texts[i:i + batch])
                b = len(texts[i:i + batch])
                out.append(np.asarray(losses(video[i:i + b], noise[i:i + b],
                                             jnp.full((b,), t_value), text, mask)))
            per_caption.append(np.concatenate(out))
        true, wrong = per_caption
        diff = wrong - true
        print(json.dumps(dict(
            figure="direction_sensitivity", stage=stage, condition=condition, t=t_value,
            clips=n,
            loss_true_caption=float(true.mean()), loss_opposite_direction=float(wrong.mean()),
            mean_difference=float(diff.mean()),
            standard_error=float(diff.std(ddof=1) / np.sqrt(n)),
            true_caption_wins=float(np.mean(diff > 0)), source=folder)), flush=True)


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5, 6):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *(int(a) for a in sys.argv[4:5]),
         *sys.argv[5:])
