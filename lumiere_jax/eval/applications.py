"""Held-out tasks for the paper's applications on moving_shapes, and what defines each.

    tasks = make_tasks("i2v", source, n=32, seed=0)    # from single-object test clips
    videos = run_tasks(pipe, tasks, key)                # uint8 (N, T, H, W, 3)
    rows = [measure(task, v) for task, v in zip(tasks, videos)]
    summary = summarize_tasks(rows)                     # mean of every measured field

Every input comes from a test record and every target from its stored labels (the
renderer's), never from the model. Errors are mean absolute differences in uint8 levels
at the size the clip is judged at (the test clips' size).

- i2v: the image is a clip's first frame; the prompt names its object ("a red circle
  moving up") with a direction drawn among those it can take without leaving the frame,
  so often not its own. `frame0_error`; `direction`: the object moves that way.
- cinemagraph: the image is a first frame; the animated region is the box that the
  object's true trajectory covers (+2 px); the prompt is the clip's short caption.
  `still_error`: the largest mean |frame - image| outside the box over the frames;
  `moves`: the object moves; `direction`.
- inpaint: the same box is unknown on the clip itself (the object is wholly hidden; the
  background stays known); the prompt is the clip's short caption. `known_error` on the
  known region; `object`: an object of the prompt's colour moving in its direction.
- edit (SDEdit at a `strength`): the clip under its short caption with another colour.
  `new_color`: an object of that colour is seen; `direction_kept`: it (or, without one,
  the largest object) moves as the input's object did.
- style: text-to-video from short prompts; `fill_ratio` of the objects (their solidity:
  about 1 for filled shapes, lower for outlines) and `direction`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (COLORS, DIRECTIONS,
                                                                          SIZES, SPEEDS)
from lumiere_jax.eval.analyzer import STILL, UNKNOWN, ClipAnalysis, analyze_clip
from lumiere_jax.eval.captions import format_caption, normalize_labels

__all__ = ["MODES", "Task", "fill_ratio", "make_tasks", "measure", "run_tasks",
           "summarize_tasks"]

MODES = ("i2v", "cinemagraph", "inpaint", "edit", "style")
BOX_MARGIN = 2  # px around the object's true trajectory (antialiased edges, rounding)


@dataclasses.dataclass
class Task:
    """One held-out case. prompt: what the model is asked; target: the normalized labels
    the output is judged on; image (H, W, 3) / video (T, H, W, 3) uint8 and mask (H, W)
    float (1 = given / still) as the mode needs; info: what the case was made from."""

    mode: str
    prompt: str
    target: dict
    record: int
    image: np.ndarray | None = None
    video: np.ndarray | None = None
    mask: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------- geometry


def _object_of(record: dict) -> dict:
    """The single object of a record: its labels plus start (y, x), velocity (dy, dx)
    per frame and radius in pixels."""
    labels = normalize_labels(record)
    obj = dict(labels["objects"][0])
    s = min(np.shape(record["video"])[1:3])
    obj.update(start=np.asarray(record["objects"]["start"][0], np.float64),
               velocity=np.asarray(record["objects"]["velocity"][0], np.float64),
               radius=SIZES[obj["size"]] * s, background=labels["background"])
    return obj


def trajectory_box(record: dict, margin: int = BOX_MARGIN) -> np.ndarray:
    """bool (H, W): the pixels the record's object covers over the clip, as a box grown by
    `margin` px (diamonds reach 1.1 radii from their centre)."""
    video = np.asarray(record["video"])
    t, h, w = video.shape[:3]
    o = _object_of(record)
    centres = o["start"][None] + np.arange(t)[:, None] * o["velocity"][None]
    reach = 1.1 * o["radius"] + margin
    (y0, x0), (y1, x1) = centres.min(0) - reach, centres.max(0) + reach
    ys, xs = np.arange(h)[:, None] + 0.5, np.arange(w)[None, :] + 0.5
    return (ys >= y0) & (ys <= y1) & (xs >= x0) & (xs <= x1)


def feasible_directions(record: dict) -> list[str]:
    """Directions the record's object can move slowly in from its first-frame position
    without leaving the frame (its own is always one)."""
    video = np.asarray(record["video"])
    h, w = video.shape[1:3]
    o = _object_of(record)
    travel = SPEEDS["slow"][0] * min(h, w)
    out = []
    for name, (unit, _) in DIRECTIONS.items():
        u = np.asarray(unit) / np.linalg.norm(unit)
        end = o["start"] + u * travel
        if (o["radius"] <= end[0] <= h - o["radius"]
                and o["radius"] <= end[1] <= w - o["radius"]):
            out.append(name)
    return sorted(set(out) | {o["direction"]}, key=list(DIRECTIONS).index)


# ---------------------------------------------------------------------------- tasks


def single_object_records(source: Sequence[dict], n: int, seed: int) -> list[int]:
    """n test-record indices with exactly one object, drawn with `seed`."""
    order = np.random.default_rng(seed).permutation(len(source))
    picked = [int(i) for i in order[: 8 * n + 64] if int(source[int(i)]["num_objects"]) == 1]
    if len(picked) < n:
        raise ValueError(f"asked for {n} single-object clips; the split offers {len(picked)} "
                         "among those searched: ask for fewer")
    return sorted(picked[:n])


def _short(obj: dict, **changes) -> tuple[str, dict]:
    """(prompt, target) naming colour, shape and direction of one object."""
    o = {a: obj[a] for a in ("color", "shape", "direction")} | changes
    target = {"objects": [o]}
    return format_caption(target), target


def make_tasks(mode: str, source: Sequence[dict], n: int, seed: int) -> list[Task]:
    """n tasks of `mode` (see the module docstring) from single-object test records."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; valid: {MODES}")
    rng = np.random.default_rng([seed, MODES.index(mode)])
    tasks = []
    for i in single_object_records(source, n, seed):
        rec = source[i]
        video = np.asarray(rec["video"], np.uint8)
        obj = _object_of(rec)
        if mode == "i2v":
            direction = str(rng.choice(feasible_directions(rec)))
            prompt, target = _short(obj, direction=direction)
            tasks.append(Task(mode, prompt, target, i, image=video[0], info=dict(
                own_direction=obj["direction"], prompt_direction=direction)))
        elif mode in ("cinemagraph", "inpaint"):
            prompt, target = _short(obj)
            given = (~trajectory_box(rec)).astype(np.float32)  # still / known: 1
            content = dict(image=video[0]) if mode == "cinemagraph" else dict(video=video)
            tasks.append(Task(mode, prompt, target, i, mask=given, **content))
        elif mode == "edit":
            color = str(rng.choice([c for c in COLORS if c != obj["color"]]))
            prompt, target = _short(obj, color=color)
            tasks.append(Task(mode, prompt, target, i, video=video, info=dict(
                own_color=obj["color"], own_direction=obj["direction"])))
        else:  # style: text only
            prompt, target = _short(obj)
            tasks.append(Task(mode, prompt, target, i))
    return tasks


def run_tasks(pipe: Any, tasks: list[Task], key: jax.Array, *, batch_size: int = 8,
              base_only: bool = True, strength: float = 0.6) -> np.ndarray:
    """The pipeline's application for each task, in batches of `batch_size` (the last
    padded with its last task so every call has one shape): uint8 (N, T, H, W, 3)."""
    out = []
    for b, start in enumerate(range(0, len(tasks), batch_size)):
        chunk = tasks[start:start + batch_size]
        chunk = chunk + [chunk[-1]] * (batch_size - len(chunk))
        prompts, k = [t.prompt for t in chunk], jax.random.fold_in(key, b)
        stack = lambda name: np.stack([getattr(t, name) for t in chunk])
        mode = chunk[0].mode
        if mode == "i2v":
            video = pipe.image_to_video(prompts, stack("image"), k, base_only=base_only)
        elif mode == "cinemagraph":
            video = pipe.cinemagraph(prompts, stack("image"), stack("mask"), k,
                                     base_only=base_only)
        elif mode == "inpaint":
            video = pipe.inpaint(prompts, stack("video"), stack("mask")[:, None], k,
                                 base_only=base_only)
        elif mode == "edit":
            video = pipe.edit(prompts, stack("video"), k, strength=strength,
                              base_only=base_only)
        else:
            video = pipe(prompts, k, base_only=base_only)
        out.append(np.asarray(video)[: min(batch_size, len(tasks) - start)])
    return np.concatenate(out)


# ---------------------------------------------------------------------------- measures


def fill_ratio(video: np.ndarray, analysis: ClipAnalysis | None = None) -> float | None:
    """How solid the objects are: pixels far from the background (over half the frame's
    largest distance) form blobs (8-connected after closing 1-px gaps); each blob's area
    over the area of its convex hull (pixel corners), weighted by area, averaged over the
    frames that show something. ~1 for filled shapes (all four are convex), lower for
    outlines, open rings and scattered strokes; None if no frame shows an object."""
    video = np.asarray(video, np.float32)
    bg = np.asarray((analysis or analyze_clip(video.astype(np.uint8))).background_rgb)
    distance = np.linalg.norm(video - bg, axis=-1)  # (T, H, W)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    ratios = []
    for d in distance:
        if d.max() < 40.0:  # nothing clearly off the background
            continue
        mask = d > 0.5 * d.max()
        labels, n = ndimage.label(ndimage.binary_closing(mask, np.ones((3, 3))) | mask,
                                  np.ones((3, 3)))
        areas, hulls = [], []
        for k in range(1, n + 1):
            pixels = np.argwhere((labels == k) & mask)
            if len(pixels) < 4:
                continue
            points = (pixels[:, None, :] + corners[None]).reshape(-1, 2)
            try:
                hulls.append(ConvexHull(points).volume)  # 2-D: the area
            except QhullError:  # all on one line
                hulls.append(float(len(pixels)))
            areas.append(float(len(pixels)))
        if areas:
            ratios.append(sum(areas) / sum(hulls))
    return float(np.mean(ratios)) if ratios else None


def _levels(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Mean |a - b| in uint8 levels over the pixels where `where` (broadcast to a)."""
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1)
    where = np.broadcast_to(where, diff.shape)
    return float(diff[where].mean()) if where.any() else 0.0


def _moves(track) -> bool:
    return track is not None and track.direction not in (STILL, UNKNOWN)


def measure(task: Task, video: np.ndarray, strength: float | None = None) -> dict:
    """The figures that define `task.mode` for one output clip (uint8 (T, H, W, 3) at the
    task's size), plus the analyzer's reading."""
    video = np.asarray(video)
    if task.image is not None and video.shape[1:3] != task.image.shape[:2]:
        raise ValueError(f"judge the clip at the task's size {task.image.shape[:2]}, got "
                         f"{video.shape[1:3]} (use base_only, or resize)")
    a = analyze_clip(video)
    track = a.pairs(task.target)[0]
    wanted = task.target["objects"][0]
    row: dict[str, Any] = dict(record=task.record, prompt=task.prompt, reading=a.describe(),
                               **task.info)
    direction_ok = track is not None and track.direction == wanted["direction"]
    color_ok = track is not None and track.color == wanted["color"]
    if task.mode == "i2v":
        row.update(frame0_error=_levels(video[0], task.image, np.ones(video.shape[1:3], bool)),
                   direction=direction_ok, color=color_ok, moves=_moves(track))
    elif task.mode == "cinemagraph":
        still = task.mask > 0.5
        row.update(still_error=max(_levels(f, task.image, still) for f in video),
                   moves=_moves(track), direction=direction_ok, color=color_ok)
    elif task.mode == "inpaint":
        row.update(known_error=_levels(video, task.video, task.mask > 0.5),
                   object=color_ok and direction_ok, color=color_ok, direction=direction_ok)
    elif task.mode == "edit":
        largest = a.objects[0] if a.objects else None
        judged = track if color_ok else largest
        row.update(strength=strength, new_color=color_ok,
                   old_color_left=any(o.color == task.info["own_color"] for o in a.objects),
                   direction_kept=judged is not None
                   and judged.direction == task.info["own_direction"])
    else:
        row.update(fill_ratio=fill_ratio(video, a), direction=direction_ok, color=color_ok)
    return row


def summarize_tasks(rows: list[dict]) -> dict:
    """The number of rows and, per numeric / bool field, its mean over the rows where it
    is not None."""
    out: dict[str, Any] = {"num_clips": len(rows)}
    for key in dict.fromkeys(k for r in rows for k in r):
        if key == "record":
            continue
        values = [r[key] for r in rows if isinstance(r.get(key), (bool, int, float))]
        if values:
            out[key] = float(np.mean(values))
    return out
