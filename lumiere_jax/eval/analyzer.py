"""Read a moving_shapes-style clip back from its pixels: background, objects, their motion.

    a = analyze_clip(video)          # uint8 (T, H, W, 3), T >= 4, H, W >= 16
    a.background                     # 'black' | 'gray' | 'white'
    a.objects                        # Tracks, largest first, at most 2
    a.objects[0].color, .shape, .size, .direction, .speed, .presence, .centroids (T, 2)
    a.matches("a red circle moving right")   # {'color': True, 'speed': None, ...}

No learned weights, and nothing from the renderer but its vocabulary and palette:

1. Background: the per-channel median of all pixels (objects cover well under half of
   every frame), named by the nearest of `BACKGROUNDS`. A clip whose typical pixel is far
   from that colour is noise: nothing more is read.
2. Colour masks: every pixel is explained as a blend `bg + alpha (C - bg)` of the
   background and each palette colour C and belongs to the colour with the smallest
   residual. Pixels with alpha >= 0.5 and a residual within `color_tolerance` |C - bg|
   form the colour's core; antialiased or blurred edges keep a soft coverage (alpha
   relative to the object's own interior level, above a noise floor).
3. Detections: per frame and colour, 8-connected components of the core with their soft
   edge (2 px around), at least `min_area`; thin blends along the edge between two other
   objects (red over yellow leaves an orange line) are dropped; same-colour fragments
   near the largest piece (an object cut by another one) are merged into it.
4. Tracks: one colour's detections linked frame to frame within `max_jump`; a track seen
   in at least `min_presence` of the frames is an object.
5. Per object: shape from blur-invariant complex moments of the soft mask (|sum w z^3| /
   A^2.5 is 0.068 for a triangle and 0 for 4-fold shapes; Re(sum w z^4) / A^3 is -1/60
   for a square, +1/60 for a diamond, 0 for a circle); size from the circumradius of
   the ideal shape of that area; motion from a least-squares line through the centroids
   of its clean frames (not next to another object, near its typical area): 8-way
   direction and slow / fast from the distance travelled ('none' when it stays put,
   'unknown' when the track is erratic or too short). An object partly hidden behind
   another one is read whole: its velocity is the one under which its visible pixels,
   moved to the other frames, never land on empty background, and its mask is the
   union of its views moved back along that velocity.
Positions are (y, x) pixels, y down, like the dataset's (dy, dx) directions.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
from scipy import ndimage

from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (BACKGROUNDS, COLORS,
                                                                          DIRECTIONS, MAX_OBJECTS,
                                                                          SIZES, SPEEDS)
from lumiere_jax.eval.captions import ATTRIBUTES, normalize_labels, parse_caption

__all__ = ["AnalyzerConfig", "ClipAnalysis", "Track", "analyze_clip", "check_video",
           "OPPOSITE", "STILL", "UNKNOWN"]

UNKNOWN = "unknown"  # cannot tell (too little seen, erratic motion, ...)
STILL = "none"       # direction / speed of an object that does not move
MIN_FRAMES, MIN_SIZE = 4, 16

_COLOR_NAMES = tuple(COLORS)
_PALETTE = np.asarray(list(COLORS.values()), np.float32)        # (K, 3)
_BG_NAMES = tuple(BACKGROUNDS)
_BG_RGB = np.asarray(list(BACKGROUNDS.values()), np.float32)     # (3, 3)
_DIR_NAMES = tuple(DIRECTIONS)
_DIR_UNIT = np.asarray([np.asarray(v) / np.linalg.norm(v) for v, _ in DIRECTIONS.values()])
OPPOSITE = {name: _DIR_NAMES[int(np.argmin(_DIR_UNIT @ u))] for name, u in
            zip(_DIR_NAMES, _DIR_UNIT)}
# Ideal shapes: area = K * circumradius^2.
_AREA_PER_CIRCUMRADIUS2 = {"circle": np.pi, "square": 2.0, "diamond": 2.0,
                           "triangle": 3 * np.sqrt(3) / 4}
# Moment signatures of the ideal shapes (see the module docstring).
_TRIANGLE_H3, _SQUARE_H4 = 0.0675, 1 / 60
# 8-connected in the frame, never across frames.
_IN_FRAME = np.zeros((3, 3, 3), bool)
_IN_FRAME[1] = True


@dataclasses.dataclass(frozen=True)
class AnalyzerConfig:
    """Thresholds; lengths are fractions of s = min(H, W).

    color_tolerance: max residual of a core pixel off its bg -> palette-colour segment, as
      a fraction of |C - bg|. alpha_floor: soft coverage below this is background noise.
      edge_width: how far soft edges (antialiasing, blur) reach out of an object's core
      (at least 2 px).
    max_noise: a clip whose median pixel is further than this (RGB distance / 255) from
      the background colour is noise. min_area: smallest detection, in s^2 (a small
      triangle of the dataset is 0.019 s^2). merge_radius: same-colour pieces this close
      to the largest one in a frame are one object. max_jump: a track's largest centroid
      step per frame. min_presence: fraction of frames a track must be seen in.
    clean_area: a frame is clean when its area is at least this fraction of the track's
      typical one. still_travel: distance over the clip below which an object is still.
    max_residual: RMS distance of clean centroids from their line above which the motion
      is erratic ('unknown').
    """

    color_tolerance: float = 0.5
    alpha_floor: float = 0.08
    edge_width: float = 0.06
    max_noise: float = 0.2
    min_area: float = 0.006
    merge_radius: float = 0.5
    max_jump: float = 0.25
    min_presence: float = 0.5
    clean_area: float = 0.85
    still_travel: float = 0.08
    max_residual: float = 0.06


@dataclasses.dataclass(frozen=True)
class Track:
    """One object followed through the clip.

    color / shape / size / direction / speed: the moving_shapes vocabulary; direction and
    speed are 'none' for an object that does not move and 'unknown' when its motion
    cannot be read. presence: fraction of frames it is seen in. centroids: float (T, 2)
    (y, x) pixels, NaN where unseen. area: its (whole) area as a fraction of H * W.
    velocity: (dy, dx) pixels per frame. travel: distance covered over the clip / min(H, W).
    """

    color: str
    shape: str
    size: str
    direction: str
    speed: str
    presence: float
    centroids: np.ndarray
    area: float
    velocity: tuple[float, float]
    travel: float

    def phrase(self) -> str:
        """The track in caption wording, e.g. 'a small red circle moving slowly left'."""
        if self.direction == STILL:
            motion = "not moving"
        else:
            adverb = SPEEDS[self.speed][1] if self.speed in SPEEDS else "at unknown speed"
            way = DIRECTIONS[self.direction][1] if self.direction in DIRECTIONS else "somewhere"
            motion = f"moving {adverb} {way}"
        return f"a {self.size} {self.color} {self.shape} {motion}"


@dataclasses.dataclass(frozen=True)
class ClipAnalysis:
    """What `analyze_clip` read. objects: at most `MAX_OBJECTS` tracks, largest first;
    num_objects: how many tracks qualified (may exceed the list). noise: median RGB
    distance of a pixel from the background colour / 255."""

    background: str
    background_rgb: tuple[float, float, float]
    noise: float
    objects: tuple[Track, ...]
    num_objects: int
    shape: tuple[int, int, int]  # (T, H, W)

    def describe(self) -> str:
        """A caption-like reading, e.g. 'a large red circle moving quickly up on a black
        background' ('no object on a ... background' when nothing is seen)."""
        body = " and ".join(o.phrase() for o in self.objects) or "no object"
        extra = (f" (+{self.num_objects - len(self.objects)} more)"
                 if self.num_objects > len(self.objects) else "")
        return f"{body}{extra} on a {self.background} background"

    def matches(self, caption_or_labels: str | dict[str, Any]) -> dict[str, bool | None]:
        """Per attribute: does the clip show what the caption / labels say?

        caption_or_labels: a caption (full or short, see `captions.parse_caption`) or a
        record's labels (`captions.normalize_labels`). Returns {'color', 'shape', 'size',
        'direction', 'speed', 'count', 'background', 'color_shape_direction'} -> bool, or
        None where the caption does not name the attribute (e.g. speed in "a red circle
        moving right"). An object attribute holds when every named object has it; named
        objects are paired with tracks by the assignment that agrees most (colour counts
        most). count: as many objects seen as named. color_shape_direction: all three hold
        (None unless all three are named).
        """
        target = _target(caption_or_labels)
        wanted = target["objects"]
        pairs = _best_assignment(wanted, self.objects)
        out: dict[str, bool | None] = {}
        for attr in ATTRIBUTES:
            judged = [i for i, o in enumerate(wanted) if attr in o]
            out[attr] = None if not judged else all(
                pairs[i] is not None and getattr(pairs[i], attr) == wanted[i][attr]
                for i in judged)
        out["count"] = (self.num_objects == len(wanted)) if wanted else None
        out["background"] = (self.background == target["background"]
                             if "background" in target else None)
        csd = [out["color"], out["shape"], out["direction"]]
        out["color_shape_direction"] = None if None in csd else all(csd)
        return out

    def pairs(self, caption_or_labels: str | dict[str, Any]) -> list[Track | None]:
        """The track each named object is judged on (None: none left for it), in the
        caption's / labels' object order."""
        return _best_assignment(_target(caption_or_labels)["objects"], self.objects)


def _target(caption_or_labels: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(caption_or_labels, str):
        return parse_caption(caption_or_labels)
    return normalize_labels(caption_or_labels)


def _best_assignment(wanted: list[dict], tracks: tuple[Track, ...]) -> list[Track | None]:
    """For each wanted object the track it is judged on (None: no track left for it)."""

    def agreement(o: dict, t: Track) -> int:
        return sum((3 if a == "color" else 1) * (getattr(t, a) == o[a]) for a in o)

    best, best_score = [None] * len(wanted), -1
    slots = list(tracks) + [None] * len(wanted)
    for perm in itertools.permutations(range(len(slots)), len(wanted)):
        chosen = [slots[j] for j in perm]
        score = sum(agreement(o, t) for o, t in zip(wanted, chosen) if t is not None)
        score = score * 10 + sum(t is not None for t in chosen)  # then: pair as many as can
        if score > best_score:
            best, best_score = chosen, score
    return best


def check_video(video: Any, name: str = "video") -> np.ndarray:
    """ValueError naming `name` unless video is uint8 (T, H, W, 3), T >= 4, H, W >= 16."""
    arr = np.asarray(video)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (T, H, W, 3) in [0, 255], got dtype {arr.dtype}.")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be (T, H, W, 3) (one RGB clip), got shape {arr.shape}.")
    if arr.shape[0] < MIN_FRAMES:
        raise ValueError(f"{name} has {arr.shape[0]} frames; at least {MIN_FRAMES} are needed "
                         "to read motion.")
    if min(arr.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"{name} frames are {arr.shape[1]}x{arr.shape[2]}; at least "
                         f"{MIN_SIZE}x{MIN_SIZE} are needed.")
    return arr


# ---------------------------------------------------------------------------- pixels


@dataclasses.dataclass(frozen=True)
class _Pixels:
    """The colour reading of a clip. rgb: float (T, H, W, 3); nearest: colour id (T, H, W);
    alpha: (T, H, W, K)
    blend weight of each palette colour; core: (T, H, W) bool; empty: (T, H, W) how much
    each pixel is background (1 - the largest alpha)."""

    rgb: np.ndarray
    nearest: np.ndarray
    alpha: np.ndarray
    core: np.ndarray
    empty: np.ndarray


def _read_pixels(video: np.ndarray, bg: np.ndarray, cfg: AnalyzerConfig) -> _Pixels:
    rgb = video.astype(np.float32)
    d = rgb - bg                                          # (T, H, W, 3)
    seg = _PALETTE - bg                                   # (K, 3)
    seg2 = np.maximum((seg * seg).sum(-1), 1.0)           # (K,)
    dot = d @ seg.T                                       # (T, H, W, K)
    alpha = np.clip(dot / seg2, 0.0, 1.0)
    res2 = (d * d).sum(-1, keepdims=True) - 2 * alpha * dot + alpha ** 2 * seg2
    res2 = np.where(alpha > 0, res2, np.inf)              # on the far side of bg: not c
    nearest = np.argmin(res2, axis=-1)
    own = np.take_along_axis(alpha, nearest[..., None], -1)[..., 0]
    r2 = np.take_along_axis(res2, nearest[..., None], -1)[..., 0]
    core = (own >= 0.5) & (r2 <= cfg.color_tolerance ** 2 * seg2[nearest])
    return _Pixels(rgb, nearest, alpha, core, 1.0 - alpha.max(-1))


def _bilinear(volume: np.ndarray, t: np.ndarray, y: np.ndarray, x: np.ndarray,
              outside: float) -> np.ndarray:
    """volume (T, H, W) at frames t and pixel-centre coordinates (y, x) (same shapes)."""
    _, h, w = volume.shape
    y, x = y - 0.5, x - 0.5
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    wy, wx = y - y0, x - x0
    out = np.zeros(y.shape)
    for dy, fy in ((0, 1 - wy), (1, wy)):
        for dx, fx in ((0, 1 - wx), (1, wx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            val = volume[t, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            out += fy * fx * np.where(inside, val, outside)
    return out


# ---------------------------------------------------------------------------- detections


@dataclasses.dataclass(frozen=True)
class _Detection:
    """One colour's object in one frame. area: soft, pixels; centroid: (2,) (y, x); h3, h4:
    shape moments; whole: one component (not merged pieces); touching: next to another
    object; points: (N, 2) (y, x) centres of its core pixels."""

    t: int
    area: float
    centroid: np.ndarray
    h3: float
    h4: float
    whole: bool
    touching: bool
    points: np.ndarray


def _disk(radius: int) -> np.ndarray:
    """(1, 2r + 1, 2r + 1) in-frame disc footprint."""
    return (np.hypot(*np.mgrid[-radius:radius + 1, -radius:radius + 1]) <= radius + 0.3)[None]


def _components(core_c: np.ndarray, min_core: float) -> np.ndarray:
    """Label image (T, H, W) of the in-frame components with >= min_core pixels (else 0)."""
    lab, n = ndimage.label(core_c, structure=_IN_FRAME)
    keep = np.bincount(lab.ravel(), minlength=n + 1) >= min_core
    keep[0] = False
    return np.where(keep[lab], lab, 0)


def _group_fragments(ids: list[int], cy: np.ndarray, cx: np.ndarray, radius: float
                     ) -> list[list[int]]:
    """Component ids of one frame (largest first) -> groups around each large piece."""
    groups: list[list[int]] = []
    for i in ids:
        for g in groups:
            if np.hypot(cy[i] - cy[g[0]], cx[i] - cx[g[0]]) <= radius:
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def _blends(c: int, lab: np.ndarray, px: _Pixels, near: dict[int, np.ndarray],
            cfg: AnalyzerConfig) -> np.ndarray:
    """bool (n + 1,): components of colour c that are the blend along the edge between two
    other objects (red over yellow leaves an orange line): next to both, and of a colour
    between theirs."""
    n = int(lab.max())
    out = np.zeros(n + 1, bool)
    others = [a for a in near if a != c]
    if len(others) < 2:
        return out
    idx = lab.ravel()
    count = np.maximum(np.bincount(idx, minlength=n + 1), 1)
    mean = np.stack([np.bincount(idx, px.rgb[..., k].ravel(), n + 1) for k in range(3)], 1)
    mean /= count[:, None]
    touch = {a: np.bincount(idx[near[a].ravel()], minlength=n + 1) > 0 for a in others}
    for a, b in itertools.combinations(others, 2):
        both = touch[a] & touch[b]
        both[0] = False
        if not both.any():
            continue
        pa, pb = _PALETTE[a], _PALETTE[b]
        t = np.clip(((mean - pa) @ (pb - pa)) / ((pb - pa) @ (pb - pa)), 0.0, 1.0)
        off = np.linalg.norm(mean - (pa + t[:, None] * (pb - pa)), axis=-1)
        out |= both & (off <= cfg.color_tolerance * 0.5 * np.linalg.norm(pb - pa))
    return out


def _color_detections(c: int, lab: np.ndarray, px: _Pixels, near: dict[int, np.ndarray],
                      s: int, cfg: AnalyzerConfig) -> tuple[list[_Detection], np.ndarray]:
    """Detections of colour c from its core components `lab`, and its soft mask (T, H, W).

    near: per colour, (T, H, W) bool within reach of that colour's objects."""
    n = int(lab.max())
    min_px = max(2.0, cfg.min_area * s * s)
    lab = np.where(_blends(c, lab, px, near, cfg)[lab], 0, lab)
    others_near = sum((m for a, m in near.items() if a != c), np.zeros(lab.shape, np.int32))
    grown = ndimage.grey_dilation(lab, footprint=_disk(max(2, round(cfg.edge_width * s))))
    region = (grown > 0) & ~(px.core & (px.nearest != c))   # not another colour's core
    touching = np.bincount(grown[region & (others_near >= 1)], minlength=n + 1) > 0
    tt, yy, xx = np.nonzero(region)
    ll, ww = grown[tt, yy, xx], px.alpha[tt, yy, xx, c]
    # Soft coverage relative to the object's interior level (colour drift scales alpha).
    inner = lab[tt, yy, xx] > 0
    level = np.bincount(ll[inner], ww[inner], n + 1) / np.maximum(
        np.bincount(ll[inner], minlength=n + 1), 1)
    level = np.maximum(level, 0.5)
    ww = np.clip((ww - cfg.alpha_floor) / (level[ll] - cfg.alpha_floor), 0.0, 1.0)
    area = np.bincount(ll, ww, n + 1)
    ok = area >= min_px
    ok[0] = False
    soft = np.zeros(lab.shape, np.float32)
    soft[tt, yy, xx] = ww * ok[ll]
    if not ok.any():
        return [], soft
    safe = np.maximum(area, 1e-9)
    cy = np.bincount(ll, ww * (yy + 0.5), n + 1) / safe
    cx = np.bincount(ll, ww * (xx + 0.5), n + 1) / safe
    z = (xx + 0.5 - cx[ll]) + 1j * (yy + 0.5 - cy[ll])
    m3 = np.bincount(ll, ww * (z ** 3).real, n + 1) + 1j * np.bincount(ll, ww * (z ** 3).imag,
                                                                       n + 1)
    m4 = np.bincount(ll, ww * (z ** 4).real, n + 1)
    frame = np.zeros(n + 1, int)
    frame[ll] = tt
    lt, ly, lx = np.nonzero(lab)
    order = np.argsort(lab[lt, ly, lx], kind="stable")
    core_pts = np.stack([ly, lx], 1)[order] + 0.5
    bounds = np.searchsorted(lab[lt, ly, lx][order], np.arange(n + 2))

    dets = []
    ids = sorted(np.nonzero(ok)[0], key=lambda i: (frame[i], -area[i]))
    for t, in_frame in itertools.groupby(ids, key=lambda i: frame[i]):
        for g in _group_fragments(list(in_frame), cy, cx, cfg.merge_radius * s)[:MAX_OBJECTS]:
            a = area[g].sum()
            centroid = np.asarray([(area[g] * cy[g]).sum(), (area[g] * cx[g]).sum()]) / a
            i = g[0]
            dets.append(_Detection(
                int(t), float(a), centroid, float(abs(m3[i]) / a ** 2.5), float(m4[i] / a ** 3),
                whole=len(g) == 1, touching=bool(touching[g].any()),
                points=np.concatenate([core_pts[bounds[j]:bounds[j + 1]] for j in g])))
    return dets, soft


def _detections(px: _Pixels, s: int, cfg: AnalyzerConfig
                ) -> dict[int, tuple[list[_Detection], np.ndarray]]:
    """Per palette colour id: (its detections, sorted by frame, at most two per frame; its
    soft mask (T, H, W))."""
    min_px = max(2.0, cfg.min_area * s * s)
    labels = {c: _components(px.core & (px.nearest == c), min_px / 2)
              for c in range(len(_COLOR_NAMES))}
    labels = {c: lab for c, lab in labels.items() if lab.any()}
    # Objects (not specks of noise) within a pixel, per colour.
    reach = _disk(max(2, round(cfg.edge_width * s)))
    near = {}
    for c, lab in labels.items():
        big = np.bincount(lab.ravel()) >= min_px
        big[0] = False
        near[c] = ndimage.binary_dilation(big[lab], structure=reach)
    out = {}
    for c, lab in labels.items():
        dets, soft = _color_detections(c, lab, px, near, s, cfg)
        if dets:
            out[c] = (dets, soft)
    return out


def _link(dets: list[_Detection], s: int, cfg: AnalyzerConfig) -> list[list[_Detection]]:
    """Greedy frame-to-frame linking of one colour's detections (nearest within reach)."""
    tracks: list[list[_Detection]] = []
    for d in dets:  # sorted by frame, largest first within a frame
        best, best_gap = None, np.inf
        for tr in tracks:
            last = tr[-1]
            if last.t >= d.t:
                continue
            gap = np.linalg.norm(d.centroid - last.centroid)
            if gap <= cfg.max_jump * s * min(d.t - last.t, 2) and gap < best_gap:
                best, best_gap = tr, gap
        if best is None:
            tracks.append([d])
        else:
            best.append(d)
    return tracks


# ---------------------------------------------------------------------------- tracks


def _classify_shape(h3: float, h4: float) -> str:
    if h3 > _TRIANGLE_H3 / 2:
        return "triangle"
    if abs(h4) > _SQUARE_H4 / 2:
        return "diamond" if h4 > 0 else "square"
    return "circle"


def _fit_line(dets: list[_Detection]) -> tuple[np.ndarray, float]:
    """Least-squares centroid line -> velocity (2,) px / frame, RMS residual px."""
    t = np.asarray([d.t for d in dets], float)
    pos = np.stack([d.centroid for d in dets])
    design = np.stack([t, np.ones_like(t)], 1)
    coef, *_ = np.linalg.lstsq(design, pos, rcond=None)  # (2, 2): slope, offset
    return coef[0], float(np.sqrt(np.mean(np.sum((design @ coef - pos) ** 2, -1))))


def _spans(dets: list[_Detection], num_frames: int) -> bool:
    """Enough frames, far enough apart, to fit a line."""
    ts = {d.t for d in dets}
    return len(ts) >= 3 and max(ts) - min(ts) >= (num_frames - 1) / 3


def _occlusion_velocity(dets: list[_Detection], empty: np.ndarray, s: int) -> np.ndarray:
    """Velocity (dy, dx) px / frame of an object partly hidden behind others.

    Under the true constant velocity, every visible pixel of one frame, moved to another
    frame, lands on the object or on whatever hides it, never on empty background; so
    take the velocity whose moved pixels land least on `empty` ((T, H, W) in [0, 1]),
    searched coarse to fine.
    """
    pos, dt, tt = [], [], []
    for src in dets[::max(1, len(dets) // 4)]:
        pick = np.linspace(0, len(src.points) - 1, min(len(src.points), 32)).astype(int)
        for d in dets:
            if d.t != src.t:
                pos.append(src.points[pick])
                dt.append(np.full(len(pick), d.t - src.t, float))
                tt.append(np.full(len(pick), d.t))
    pos, dt, tt = np.concatenate(pos), np.concatenate(dt), np.concatenate(tt)

    def cost(vs: np.ndarray) -> np.ndarray:  # (C, 2) -> (C,)
        q = pos[None] + vs[:, None, :] * dt[None, :, None]
        return _bilinear(empty, tt[None], q[..., 0], q[..., 1], outside=1.0).mean(-1)

    best, step = np.zeros(2), 0.75 * s / max(len(empty) - 1, 1) / 6  # 13 x 13 up to fast
    for radius in (6, 2, 2, 2):
        offs = np.arange(-radius, radius + 1) * step
        grid = best + np.stack(np.meshgrid(offs, offs, indexing="ij"), -1).reshape(-1, 2)
        best = grid[int(np.argmin(cost(grid)))]
        step /= 3
    return best


def _amodal_moments(soft: np.ndarray, dets: list[_Detection], v: np.ndarray, s: int
                    ) -> tuple[float, float, float]:
    """(area px, h3, h4) of a partly hidden object: its soft mask of every frame
    (`soft` (T, H, W)) moved back along velocity `v` onto its largest view, max-combined."""
    ref = max(dets, key=lambda d: d.area)
    half = int(np.ceil(0.35 * s))
    cy, cx = np.round(ref.centroid).astype(int)
    ys, xs = np.meshgrid(np.arange(cy - half, cy + half) + 0.5,
                         np.arange(cx - half, cx + half) + 0.5, indexing="ij")
    w = np.max([_bilinear(soft, np.full(ys.shape, d.t), ys + v[0] * (d.t - ref.t),
                          xs + v[1] * (d.t - ref.t), outside=0.0) for d in dets], axis=0)
    area = w.sum()
    z = (xs - (w * xs).sum() / area) + 1j * (ys - (w * ys).sum() / area)
    return (float(area), float(abs((w * z ** 3).sum()) / area ** 2.5),
            float((w * z ** 4).sum().real / area ** 3))


def _track(color: int, dets: list[_Detection], soft: np.ndarray, empty: np.ndarray, s: int,
           cfg: AnalyzerConfig) -> Track | None:
    """A linked detection chain -> Track, or None if it is not seen often enough."""
    num_frames, h, w = empty.shape
    presence = len({d.t for d in dets}) / num_frames
    if presence < cfg.min_presence:
        return None
    # Clean frames: not next to another object, near the typical area; whole for shape.
    free = [d for d in dets if not d.touching] or dets
    typical = np.percentile([d.area for d in free], 75)
    clean = [d for d in free if d.area >= cfg.clean_area * typical]
    whole = [d for d in clean if d.whole] or clean
    h3, h4 = float(np.mean([d.h3 for d in whole])), float(np.mean([d.h4 for d in whole]))
    area = float(np.median([d.area for d in whole]))

    centroids = np.full((num_frames, 2), np.nan)
    for d in dets:
        centroids[d.t] = d.centroid
    direction, speed, velocity, travel = UNKNOWN, UNKNOWN, (np.nan, np.nan), np.nan
    fit = next((c for c in (clean, free, dets) if _spans(c, num_frames)), None)
    if fit is not None:
        v, residual = _fit_line(fit)
        biggest = max(d.area for d in dets)
        hidden = any(d.touching and d.area < 0.9 * biggest for d in fit)
        if hidden:  # partly behind another object: its centroids are off, read it whole
            v = _occlusion_velocity(dets, empty, s)
            full_area, full_h3, full_h4 = _amodal_moments(soft, dets, v, s)
            if full_area > area:
                area, h3, h4 = full_area, full_h3, full_h4
        velocity = (float(v[0]), float(v[1]))
        travel = float(np.linalg.norm(v) * (num_frames - 1) / s)
        if travel < cfg.still_travel:
            direction, speed = STILL, STILL
        elif hidden or residual <= cfg.max_residual * s:
            direction = _DIR_NAMES[int(np.argmax(_DIR_UNIT @ (v / np.linalg.norm(v))))]
            speed = "fast" if travel > np.sqrt(SPEEDS["slow"][0] * SPEEDS["fast"][0]) else "slow"
    shape = _classify_shape(h3, h4)
    radius = np.sqrt(area / _AREA_PER_CIRCUMRADIUS2[shape]) / s
    # Circumradii in the dataset: small 0.12-0.144 s, large 0.2-0.24 s (square corners 1.2 r).
    size = "large" if radius > np.sqrt(SIZES["small"] * 1.2 * SIZES["large"]) else "small"
    return Track(_COLOR_NAMES[color], shape, size, direction, speed, presence=presence,
                 centroids=centroids, area=area / (h * w), velocity=velocity, travel=travel)


def analyze_clip(video: Any, config: AnalyzerConfig = AnalyzerConfig()) -> ClipAnalysis:
    """Read background and objects of a uint8 (T, H, W, 3) clip (T >= 4, H, W >= 16)."""
    video = check_video(video)
    t_len, h, w, _ = video.shape
    s = min(h, w)
    bg = np.median(video.reshape(-1, 3), axis=0).astype(np.float32)
    background = _BG_NAMES[int(np.argmin(((_BG_RGB - bg) ** 2).sum(-1)))]
    noise = float(np.median(np.linalg.norm(video.reshape(-1, 3) - bg, axis=-1)) / 255)
    tracks = []
    if noise <= config.max_noise:
        px = _read_pixels(video, bg, config)
        for color, (dets, soft) in _detections(px, s, config).items():
            for chain in _link(dets, s, config):
                track = _track(color, chain, soft, px.empty, s, config)
                if track is not None:
                    tracks.append(track)
    tracks.sort(key=lambda tr: -tr.area)
    return ClipAnalysis(background, tuple(float(v) for v in bg), noise,
                        tuple(tracks[:MAX_OBJECTS]), len(tracks), (t_len, h, w))
