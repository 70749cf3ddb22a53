"""`moving_shapes` scenes: drawing, captioning and rendering, with NumPy alone.

Each clip shows one or two objects (shape, color, size) moving in a straight line
(direction, speed) over a plain background, captioned from those attributes. This module
needs no TensorFlow Datasets, so clips can be rendered anywhere (e.g. straight into an
accelerator's memory, `training.resident`); the TFDS builder
(`moving_shapes_dataset_builder`) writes the same records to disk.

    example = make_example(seed=0, split='train', index=7, num_frames=16, height=32, width=32)
    example['video']    # uint8 (T, H, W, 3);  example['caption'], example['objects'], ...
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond")
COLORS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230),
    "yellow": (240, 220, 40), "purple": (150, 60, 200), "orange": (250, 140, 30),
    "cyan": (40, 210, 220), "pink": (250, 130, 190),
}
BACKGROUNDS = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (255, 255, 255)}
# Radius as a fraction of min(H, W).
SIZES = {"small": 0.12, "large": 0.2}
# Unit (dy, dx) in image coordinates (y down) and the caption phrase.
DIRECTIONS = {
    "left": ((0.0, -1.0), "left"),
    "right": ((0.0, 1.0), "right"),
    "up": ((-1.0, 0.0), "up"),
    "down": ((1.0, 0.0), "down"),
    "up_left": ((-1.0, -1.0), "up and to the left"),
    "up_right": ((-1.0, 1.0), "up and to the right"),
    "down_left": ((1.0, -1.0), "down and to the left"),
    "down_right": ((1.0, 1.0), "down and to the right"),
}
# Distance travelled over the whole clip, as a fraction of min(H, W); caption adverb.
SPEEDS = {"slow": (0.25, "slowly"), "fast": (0.5, "quickly")}
MAX_OBJECTS = 2
STYLES = ("filled", "outline")  # how shapes are painted (a dataset config's `style`)
_SPLIT_IDS = {"train": 0, "test": 1}


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    """One moving object; positions in pixels (y, x) of the center."""

    shape: str
    color: str
    size: str
    direction: str
    speed: str
    start: tuple[float, float]
    velocity: tuple[float, float]  # pixels per frame

    def phrase(self) -> str:
        return object_phrase(self.size, self.color, self.shape, self.speed, self.direction)


def object_phrase(size: str, color: str, shape: str, speed: str, direction: str,
                  keep: Callable[[str], str] = lambda text: text) -> str:
    """"a [size ]color shape moving [speed ]direction" from the names in the tables above;
    `keep(text)` returns each optional part (size, then speed) or "" to drop it."""
    return (f"a {keep(size + ' ')}{color} {shape} moving {keep(SPEEDS[speed][1] + ' ')}"
            f"{DIRECTIONS[direction][1]}")


@dataclasses.dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    background: str

    def caption(self) -> str:
        objects = " and ".join(o.phrase() for o in self.objects)
        return f"{objects} on a {self.background} background"


def caption_vocabulary() -> tuple[str, ...]:
    """Every word a caption (full or with parts dropped) can hold, sorted (`WordTokenizer`)."""
    words = {"a", "and", "on", "background", "moving"}
    for phrases in (SHAPES, COLORS, BACKGROUNDS, SIZES,
                    [p for _, p in DIRECTIONS.values()], [a for _, a in SPEEDS.values()]):
        for phrase in phrases:
            words.update(phrase.split())
    return tuple(sorted(words))


def caption_from_labels(labels: dict[str, Any], rng: np.random.Generator,
                        drop_prob: float) -> str:
    """A caption rebuilt from a record's stored labels, optional parts dropped at random.

    Colour, shape and direction of every kept object always stay; size, speed, the
    background and (of two objects) one whole object are each dropped with `drop_prob`, so
    a model trained on these reads short prompts such as "a red circle moving right".
    `labels`: a decoded record ('objects' with ClassLabel ids, 'background', 'num_objects').
    """
    objs, n = labels["objects"], int(labels["num_objects"])
    order = list(range(n))
    if n > 1 and rng.random() < drop_prob:
        order = [int(rng.integers(n))]
    keep = lambda text: "" if rng.random() < drop_prob else text
    caption = " and ".join(
        object_phrase(list(SIZES)[int(objs["size"][i])], list(COLORS)[int(objs["color"][i])],
                      SHAPES[int(objs["shape"][i])], list(SPEEDS)[int(objs["speed"][i])],
                      list(DIRECTIONS)[int(objs["direction"][i])], keep)
        for i in order)
    if rng.random() >= drop_prob:
        caption += f" on a {list(BACKGROUNDS)[int(labels['background'])]} background"
    return caption


_OPPOSITE_WORDS = {"left": "right", "right": "left", "up": "down", "down": "up"}


def reverse_directions(caption: str) -> str:
    """The caption of the same clip played backwards: every direction reversed.

    Swapping "left" <-> "right" and "up" <-> "down" reverses every direction phrase ("up and
    to the left" -> "down and to the right"); no other caption word is touched. Time
    reversal maps `sample_scene`'s distribution onto itself: a clip moving right from x0
    played backwards moves left from x0 + travel, a start drawn for "left" with the same
    probability (`data.time_reversal_pairs` relies on this).
    """
    return " ".join(_OPPOSITE_WORDS.get(word, word) for word in caption.split(" "))


def sample_scene(
    rng: np.random.Generator, num_frames: int, height: int, width: int,
    two_object_prob: float = 0.5,
) -> Scene:
    """Draw a random scene whose objects stay fully inside the frame for the whole clip."""
    s = min(height, width)
    n = 2 if rng.random() < two_object_prob else 1
    background = str(rng.choice(list(BACKGROUNDS)))
    objects, used = [], set()
    while len(objects) < n:
        shape, color = str(rng.choice(SHAPES)), str(rng.choice(list(COLORS)))
        if color in used:  # two objects always differ in color (told apart by text and pixels)
            continue
        used.add(color)
        size, direction, speed = (str(rng.choice(list(SIZES))), str(rng.choice(list(DIRECTIONS))),
                                  str(rng.choice(list(SPEEDS))))
        r = SIZES[size] * s
        unit = np.asarray(DIRECTIONS[direction][0])
        unit = unit / np.linalg.norm(unit)
        travel = unit * SPEEDS[speed][0] * s  # (dy, dx) over the clip
        start = []
        for extent, d in zip((height, width), travel):
            lo, hi = r - min(0.0, d), extent - r - max(0.0, d)
            start.append(float(rng.uniform(lo, hi)))
        velocity = travel / max(num_frames - 1, 1)
        objects.append(ShapeObject(shape, color, size, direction, speed, tuple(start),
                                   (float(velocity[0]), float(velocity[1]))))
    return Scene(tuple(objects), background)


def _signed_distance(shape: str, dy: np.ndarray, dx: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (pixels, <0 inside) to a shape of circumradius-like size r."""
    if shape == "circle":
        return np.sqrt(dy**2 + dx**2) - r
    if shape == "square":
        return np.maximum(np.abs(dy), np.abs(dx)) - 0.85 * r
    if shape == "diamond":
        return (np.abs(dy) + np.abs(dx) - 1.1 * r) / np.sqrt(2.0)
    if shape == "triangle":  # pointing up, circumradius r, inradius r / 2
        c, h = np.sqrt(3.0) / 2, 0.5
        return np.maximum(np.maximum(dy, c * dx - h * dy), -c * dx - h * dy) - 0.5 * r
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}.")


def render_scene(scene: Scene, num_frames: int, height: int, width: int,
                 style: str = "filled") -> np.ndarray:
    """Rasterize a scene with antialiased edges. Returns uint8 (T, H, W, 3).

    style: 'filled' shapes, or 'outline' (only a band `outline_width(H, W)` px wide inside
    each shape's edge is painted; the inside shows the background).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}.")
    s = min(height, width)
    band = outline_width(height, width)
    t = np.arange(num_frames, dtype=np.float32)[:, None, None]
    ys = (np.arange(height, dtype=np.float32) + 0.5)[None, :, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, None, :]
    video = np.broadcast_to(np.asarray(BACKGROUNDS[scene.background], np.float32),
                            (num_frames, height, width, 3)).copy()
    for obj in scene.objects:  # later objects are drawn on top
        cy = obj.start[0] + obj.velocity[0] * t
        cx = obj.start[1] + obj.velocity[1] * t
        sdf = _signed_distance(obj.shape, ys - cy, xs - cx, SIZES[obj.size] * s)
        alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]  # (T, H, W, 1) pixel coverage
        if style == "outline":  # minus the coverage of the shape shrunk by the band
            alpha = alpha - np.clip(0.5 - (sdf + band), 0.0, 1.0)[..., None]
        video = video * (1 - alpha) + alpha * np.asarray(COLORS[obj.color], np.float32)
    return np.round(video).astype(np.uint8)


def object_tracks(start: np.ndarray, velocity: np.ndarray, size: Any, frame_size: float,
                  scale: float = 1.0, first_frame: int = 0) -> np.ndarray:
    """Stored object labels -> float32 `(MAX_OBJECTS, 5)` tracks (y0, x0, vy, vx, r) in px of
    the output frame (`diffusion.motion_noise.object_noise`); rows past the objects are 0.

    start / velocity: `(n, 2)` px of the stored frame; size: n size names or `SIZES` ids;
    frame_size: min(H, W) of the output frame; scale: output px per stored px;
    first_frame: the stored frame that becomes frame 0 (a temporal crop)."""
    start = np.asarray(start, np.float32).reshape(-1, 2)
    velocity = np.asarray(velocity, np.float32).reshape(-1, 2)
    names = list(SIZES)
    radius = [SIZES[names[int(z)] if not isinstance(z, str) else z] * frame_size for z in size]
    tracks = np.zeros((MAX_OBJECTS, 5), np.float32)
    n = min(len(start), MAX_OBJECTS)
    tracks[:n, 0:2] = (start[:n] + first_frame * velocity[:n]) * scale
    tracks[:n, 2:4] = velocity[:n] * scale
    tracks[:n, 4] = radius[:n]
    return tracks


def outline_width(height: int, width: int) -> float:
    """Width in pixels of the painted band of an 'outline' shape: 5% of min(H, W), >= 1.5."""
    return max(1.5, 0.05 * min(height, width))


def make_example(seed: int, split: str, index: int, num_frames: int, height: int,
                 width: int, two_object_prob: float = 0.5, style: str = "filled"
                 ) -> dict[str, Any]:
    """The record `index` of `split`: a pure function of its arguments."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(_SPLIT_IDS)}, got {split!r}.")
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
    scene = sample_scene(rng, num_frames, height, width, two_object_prob)
    return {
        "video": render_scene(scene, num_frames, height, width, style),
        "caption": scene.caption(),
        "background": scene.background,
        "num_objects": len(scene.objects),
        "objects": {
            "shape": [o.shape for o in scene.objects],
            "color": [o.color for o in scene.objects],
            "size": [o.size for o in scene.objects],
            "direction": [o.direction for o in scene.objects],
            "speed": [o.speed for o in scene.objects],
            "start": np.asarray([o.start for o in scene.objects], np.float32),
            "velocity": np.asarray([o.velocity for o in scene.objects], np.float32),
        },
    }


def travel_examples(num_scenes: int, seed: int = 0, num_frames: int = 16, size: int = 32,
                    split: str = "train", drop_prob: float = 0.5) -> tuple[list[str], np.ndarray]:
    """Captions and how far their objects move over the clip, for a motion planner.

    The scenes of records `0 .. num_scenes - 1` of `split` (`make_example`'s draws, not
    rendered). Each gives its full caption (travel: the mean over its objects) and each
    object's own phrase with its size, speed and the background each dropped with
    `drop_prob` ("a red circle moving right", travel: that object's), as
    `caption_from_labels` drops them for training.
    Returns (captions, `(N, 2)` float32 travel as (dy, dx) fractions of the frame).
    """
    captions, travel = [], []
    for index in range(num_scenes):
        rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
        scene = sample_scene(rng, num_frames, size, size)
        drops = np.random.default_rng([seed, _SPLIT_IDS[split], index, 1])
        moves = [np.asarray(o.velocity) * (num_frames - 1) / size for o in scene.objects]
        captions.append(scene.caption())
        travel.append(np.mean(moves, axis=0))
        keep = lambda text: "" if drops.random() < drop_prob else text
        for o, move in zip(scene.objects, moves):
            captions.append(object_phrase(o.size, o.color, o.shape, o.speed, o.direction, keep)
                            + keep(f" on a {scene.background} background"))
            travel.append(move)
    return captions, np.asarray(travel, np.float32)


def single_object_clips(rng: np.random.Generator, num_clips: int, num_frames: int, size: int
                        ) -> tuple[list[str], np.ndarray]:
    """`num_clips` scenes of one object drawn from `rng` and rendered: their short captions
    ("a red circle moving right": colour, shape, direction) and uint8 clips
    `(N, num_frames, size, size, 3)`; labels straight from the scenes."""
    captions, clips = [], []
    for _ in range(num_clips):
        scene = sample_scene(rng, num_frames, size, size, two_object_prob=0.0)
        o = scene.objects[0]
        clips.append(render_scene(scene, num_frames, size, size))
        captions.append(object_phrase(o.size, o.color, o.shape, o.speed, o.direction,
                                      lambda text: ""))
    return captions, np.stack(clips)
