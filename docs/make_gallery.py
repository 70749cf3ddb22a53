"""The README's gallery, from the shipped cascade: one GIF per prompt with the base video
(32 px, shown enlarged) next to the SSR video (64 px), and a PNG strip of SSR frames with
the MultiDiffusion windows drawn under them.

    python docs/make_gallery.py            # writes docs/gallery/*.gif, windows.png

Same sampling as `sample.py` (the manifest's defaults), seed 0.
"""

from __future__ import annotations

import os
import re
import sys

import jax
import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lumiere_jax.data.video_io import write_video  # noqa: E402
from lumiere_jax.diffusion.multidiffusion import window_starts  # noqa: E402
from lumiere_jax.pipeline import LumierePipeline  # noqa: E402

PROMPTS = ("a red circle moving right", "a blue square moving up",
           "a yellow triangle moving left on a white background",
           "a green circle moving down on a gray background")
# Drawn in a call of its own (each object phrase on its own, then layered: the manifest's
# `layer_objects`), so the four above keep their noise.
TWO_OBJECTS = "a red circle moving right and a blue square moving left on a black background"
OUT = os.path.join(ROOT, "docs", "gallery")


def slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")


def side_by_side(low: np.ndarray, high: np.ndarray, gap: int = 4) -> np.ndarray:
    """(T, h, w, 3) base + (T, H, W, 3) SSR -> (T, H, 2W + gap, 3), the base enlarged
    (nearest) to the SSR size."""
    scale = high.shape[1] // low.shape[1]
    big = low.repeat(scale, axis=1).repeat(scale, axis=2)
    pad = np.full(high.shape[:2] + (gap, 3), 255, np.uint8)
    return np.concatenate([big, pad, high], axis=2)


def window_strip(video: np.ndarray, window: int, stride: int, frames: int = 8) -> np.ndarray:
    """The first `frames` SSR frames in a row, enlarged 2x, with one bar per MultiDiffusion
    window under the frames it covers (each frame is the average of those windows)."""
    scale, gap, bar = 2, 2, 6
    size = video.shape[1] * scale
    starts = [s for s in window_starts(len(video), window, stride) if s < frames]
    width = frames * (size + gap)
    height = size + 8 + len(starts) * (bar + 3)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    palette = [(220, 60, 60), (60, 120, 220), (40, 160, 80), (200, 140, 30)]
    for i in range(frames):
        frame = Image.fromarray(video[i]).resize((size, size), Image.NEAREST)
        sheet.paste(frame, (i * (size + gap), 0))
    for j, s in enumerate(starts):
        x0, x1 = s * (size + gap), min(s + window, frames) * (size + gap) - gap
        y = size + 6 + j * (bar + 3)
        draw.rectangle([x0, y, x1, y + bar], fill=palette[j % len(palette)])
    return np.asarray(sheet)


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    pipe = LumierePipeline.from_pretrained(os.path.join(ROOT, "pretrained", "moving_shapes"),
                                           progress=True)
    low, high = pipe(list(PROMPTS), jax.random.key(0), return_low_res=True)
    two_low, two_high = pipe([TWO_OBJECTS], jax.random.key(0), return_low_res=True)
    for prompt, lo, hi in zip(PROMPTS + (TWO_OBJECTS,), list(low) + list(two_low),
                              list(high) + list(two_high)):
        path = os.path.join(OUT, f"{slug(prompt)}.gif")
        write_video(path, side_by_side(lo, hi), fps=8)
        print(path)
    path = os.path.join(OUT, "windows.png")
    Image.fromarray(window_strip(high[0], pipe.window, pipe.stride)).save(path)
    print(path)


if __name__ == "__main__":
    main()
