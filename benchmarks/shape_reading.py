"""Does the base STUNet know the shapes it draws? Its own diffusion classifier, measured.

    python benchmarks/shape_reading.py [--pretrained pretrained/moving_shapes] [--clips 64] \
        [--times 0.5,0.6,0.7,0.8] [--load CANDIDATES.npz]

`diffusion.word_reading` reads which shape word the base finds in a clip: its denoising
loss under the clip's short caption with the shape word swapped for each of the four
shapes (the same noise for all), averaged over `--times`; the lowest wins. Reported:

- on `--clips` rendered single-object clips (`moving_shapes`' renderer; labels from the
  scene): how often the read is the rendered shape, per t and over all t;
- with `--load` (a `benchmarks/motion_rerank.py --save` file: the base's own samples for
  held-out prompts), how often it reads the prompt's shape in a sample, split by whether
  the analyzer (`eval.analyze_clip`, the judge) calls the sample's shape right.

A reader that knows real shapes (first figure high) but reads the prompt's shape in the
samples the analyzer calls wrong (second figure high there too) accepts its own failures:
it cannot pick among its samples (README "Design notes: the base reads shapes it does
not draw"). One JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lumiere_jax import pretrained, runs  # noqa: E402
from lumiere_jax.data.moving_shapes import SHAPES, single_object_clips  # noqa: E402
from lumiere_jax.diffusion.word_reading import (  # noqa: E402
    read_words, reads_own_word, word_alternatives)
from lumiere_jax.eval import analyze_clip  # noqa: E402
from lumiere_jax.eval.scoring import score_clip  # noqa: E402
from lumiere_jax.sampling import unet_model_fn  # noqa: E402


class ShapeReader:
    """The base stage's shape reading: (prompts, uint8 clips (N, T, H, W, 3)) -> (N, 4, S)
    losses per shape word and t, and each prompt's own shape index."""

    def __init__(self, folder: str, times: tuple[float, ...], batch: int = 8):
        config, params = pretrained.load_stage(folder, "base")
        self.config, self.times, self.batch = runs.unet_config(config), times, batch
        self.encode = runs.text_encode_fn(config, params["text"])
        schedule, prediction = runs.noise_schedule(config), config.diffusion.prediction

        def denoiser_for(text, mask):
            fn = unet_model_fn(self.config, params["unet"], text, mask, clips_per_call=16)
            return lambda x, t: fn(x, t, None)

        # one t at a time, so the losses keep each t apart
        self.losses = jax.jit(lambda clips, text, mask, t, key: read_words(
            denoiser_for, clips, text, mask, (t,), key, schedule, prediction),
            static_argnums=3)

    def __call__(self, prompts: list[str], clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        readings = [word_alternatives(p, SHAPES) for p in prompts]
        own = np.array([o for _, o in readings])
        if (own < 0).any():
            missing = [p for p, o in zip(prompts, own) if o < 0]
            raise ValueError(f"prompts without a shape word: {missing}")
        out = np.zeros((len(prompts), len(SHAPES), len(self.times)))
        for start in range(0, len(prompts), self.batch):
            rows = slice(start, start + self.batch)
            text, mask = self.encode([a for alts, _ in readings[rows] for a in alts])
            text = np.asarray(text).reshape(-1, len(SHAPES), *np.shape(text)[1:])
            mask = np.asarray(mask).reshape(-1, len(SHAPES), np.shape(mask)[-1]).astype(bool)
            x = jnp.asarray(clips[rows], jnp.float32) / 127.5 - 1.0
            for i, t in enumerate(self.times):
                out[rows, :, i] = np.asarray(self.losses(x, text, mask, t, jax.random.key(i)))
        return out, own


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrained", default="pretrained/moving_shapes")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--times", default="0.5,0.6,0.7,0.8")
    ap.add_argument("--load", default="", help="a motion_rerank.py --save file to read too")
    a = ap.parse_args()
    try:
        times = tuple(float(t) for t in a.times.split(","))
    except ValueError:
        ap.error(f"--times={a.times!r}: expected comma-separated numbers in (0, 1)")
    if not all(0.0 < t < 1.0 for t in times) or a.clips < 1:
        ap.error("--times must lie in (0, 1) and --clips be >= 1")
    reader = ShapeReader(a.pretrained, times)
    frames, size = reader.config.num_frames, reader.config.image_size
    captions, clips = single_object_clips(np.random.default_rng(123), a.clips, frames, size)
    losses, own = reader(captions, clips)
    for i, t in enumerate(times):
        print(json.dumps(dict(figure="rendered_clips_read_right", t=t, clips=a.clips,
                              accuracy=float(np.mean(losses[..., i].argmin(1) == own)))))
    print(json.dumps(dict(figure="rendered_clips_read_right", t="mean", clips=a.clips,
                          accuracy=float(np.mean(losses.mean(-1).argmin(1) == own)))),
          flush=True)
    if not a.load:
        return
    saved = np.load(a.load)
    candidates, prompts = saved["candidates"], [str(p) for p in saved["prompts"]]
    k = candidates.shape[1]
    flat = candidates.reshape((-1,) + candidates.shape[2:])
    repeated = [p for p in prompts for _ in range(k)]
    losses, own = reader(repeated, flat)
    reads_own = np.asarray(reads_own_word(jnp.asarray(losses.mean(-1)), jnp.asarray(own)))
    right = np.array([bool(score_clip(analyze_clip(v), p)["matches"]["shape"])
                      for v, p in zip(flat, repeated)])
    print(json.dumps(dict(figure="samples_read_as_their_prompts_shape", samples=len(flat),
                          analyzer_right=int(right.sum()),
                          when_analyzer_right=float(reads_own[right].mean()),
                          when_analyzer_wrong=float(reads_own[~right].mean()))))


if __name__ == "__main__":
    main()
