"""The README's application GIFs, from the shipped weights on held-out test clips: for
each mode the input (left) and the base stage's 32 px output (right), both enlarged to 64 px.

    python docs/make_app_gallery.py               # writes docs/gallery/app_*.gif
    python docs/make_app_gallery.py inpaint style # only those modes' GIFs

The inputs are the tasks `evaluate.py --mode ...` measures (`lumiere_jax.eval.
applications.make_tasks`, seed 0): i2v animates a first frame in a prompted direction,
cinemagraph animates only the box around the object (the rest of the image is shown
dimmed in the input), inpaint fills that box on the clip, edit recolours the clip by
SDEdit (strength 0.6), style blends the outline style in (alpha 0, 0.5, 1 side by side).
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lumiere_jax import pretrained  # noqa: E402
from lumiere_jax.applications import interpolate_spatial_weights  # noqa: E402
from lumiere_jax.data import load_source  # noqa: E402
from lumiere_jax.data.video_io import center_crop_resize, write_video  # noqa: E402
from lumiere_jax.eval import applications as apps  # noqa: E402
from lumiere_jax.pipeline import LumierePipeline  # noqa: E402

FOLDER = os.path.join(ROOT, "pretrained", "moving_shapes")
OUT = os.path.join(ROOT, "docs", "gallery")
CLIPS = 2  # per mode, stacked vertically


def _big(video: np.ndarray, size: int) -> np.ndarray:
    return video if video.shape[1] == size else center_crop_resize(video, size)


def _row(*videos: np.ndarray, size: int = 64, gap: int = 4) -> np.ndarray:
    """(T, h, w, 3) clips (a still is repeated) -> one (T, size, n * (size + gap), 3) row."""
    frames = max(len(v) for v in videos)
    parts = []
    for v in videos:
        v = _big(v if len(v) == frames else np.repeat(v[:1], frames, axis=0), size)
        parts += [v, np.full((frames, size, gap, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=2)


def _stack(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    pad = np.full((rows[0].shape[0], gap, rows[0].shape[2], 3), 255, np.uint8)
    return np.concatenate([x for r in rows for x in (r, pad)][:-1], axis=1)


def _input_of(task: apps.Task) -> np.ndarray:
    """What the user gives, as a clip: the image, the masked clip, the image with the
    animated region dimmed, or the clip."""
    if task.mode == "i2v":
        return task.image[None]
    if task.mode == "cinemagraph":
        shade = np.where(task.mask[..., None] > 0.5, 0.6, 1.0)
        return (task.image * shade).astype(np.uint8)[None]
    if task.mode == "inpaint":
        return np.where(task.mask[None, ..., None] > 0.5, task.video, 0).astype(np.uint8)
    return task.video


MODES = ("i2v", "cinemagraph", "inpaint", "edit", "style")


def main(modes: list[str]) -> None:
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; expected some of {MODES}")
    modes = modes or list(MODES)
    os.makedirs(OUT, exist_ok=True)
    source = load_source("moving_shapes/f16_s32", "test")
    key = jax.random.key(0)
    for mode in [m for m in MODES if m in modes and m != "style"]:  # style: below
        pipe = LumierePipeline.from_pretrained(FOLDER, mode=mode, progress=True)
        tasks = apps.make_tasks(mode, source, CLIPS, seed=0)
        videos = apps.run_tasks(pipe, tasks, key, batch_size=CLIPS, base_only=True)
        rows = [_row(_input_of(t), v) for t, v in zip(tasks, videos)]
        path = os.path.join(OUT, f"app_{mode}.gif")
        write_video(path, _stack(rows), fps=8)
        print(path, [t.prompt for t in tasks])
    if "style" not in modes:
        return
    pipe = LumierePipeline.from_pretrained(FOLDER, progress=True)
    style = pretrained.load_stage(FOLDER, "style_outline")[1]["unet"]
    base = pipe.base_params
    tasks = apps.make_tasks("style", source, CLIPS, seed=0)
    outputs = []
    for alpha in (0.0, 0.5, 1.0):
        pipe.base_params = interpolate_spatial_weights(base, style, alpha)
        outputs.append(apps.run_tasks(pipe, tasks, key, batch_size=CLIPS, base_only=True))
    rows = [_row(*(o[i] for o in outputs)) for i in range(CLIPS)]
    path = os.path.join(OUT, "app_style.gif")
    write_video(path, _stack(rows), fps=8)
    print(path, [t.prompt for t in tasks])


if __name__ == "__main__":
    main(sys.argv[1:])
