"""Fréchet Video Distance (Unterthiner et al. 2018) with the Kinetics-400 I3D.

    feats = I3DFeatures()(videos)           # uint8 (N, T, H, W, 3), T >= 9 -> (N, 400)
    d = fvd(videos_a, videos_b)             # -> float
    d = fvd(videos_a, videos_b, features=feats_fn)   # reuse one compiled extractor

Preprocessing as google-research `frechet_video_distance`: every frame is resized to
224 x 224 with TF1's `resize_bilinear` (align_corners=False, no half-pixel offset: source
coordinate = output index * in / out), scaled to [-1, 1] (2 x / 255 - 1), and the I3D's
400-d time-averaged logits are the features; the distance is `frechet_distance` of the
two sets. Clips go through the network in fixed-size batches (the last one padded) under
one `jit`, so a set of any size compiles once per (T, H, W).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.eval.frechet import frechet_distance
from lumiere_jax.eval.i3d import I3D, MIN_FRAMES, RESOLUTION, load_i3d_variables
from lumiere_jax.xla_options import with_kernel_options

__all__ = ["I3DFeatures", "check_videos", "compiler_options", "fvd", "legacy_bilinear_matrix",
           "preprocess"]

MIN_SIZE = 16


def check_videos(videos: Any, name: str = "videos", min_count: int = 1) -> np.ndarray:
    """ValueError naming `name` unless videos is uint8 (N, T, H, W, 3), N >= min_count,
    T >= 9 (I3D's minimum) and H, W >= 16."""
    arr = np.asarray(videos)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (N, T, H, W, 3) in [0, 255], got dtype "
                         f"{arr.dtype}.")
    if arr.ndim != 5 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be (N, T, H, W, 3) (a batch of RGB clips), got shape "
                         f"{arr.shape}.")
    if arr.shape[0] < min_count:
        raise ValueError(f"{name} holds {arr.shape[0]} clips; at least {min_count} are needed.")
    if arr.shape[1] < MIN_FRAMES:
        raise ValueError(f"{name} clips have {arr.shape[1]} frames; I3D needs at least "
                         f"{MIN_FRAMES}.")
    if min(arr.shape[2:4]) < MIN_SIZE:
        raise ValueError(f"{name} frames are {arr.shape[2]}x{arr.shape[3]}; at least "
                         f"{MIN_SIZE}x{MIN_SIZE} are needed.")
    return arr


def legacy_bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) interpolation weights of TF1 `resize_bilinear` (align_corners=
    False, half_pixel_centers=False): output i reads source i * size_in / size_out."""
    src = np.arange(size_out) * (size_in / size_out)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    m = np.zeros((size_out, size_in), np.float64)
    np.add.at(m, (np.arange(size_out), lo), 1 - frac)
    np.add.at(m, (np.arange(size_out), hi), frac)
    return m.astype(np.float32)


def preprocess(videos: jax.Array) -> jax.Array:
    """uint8 (B, T, H, W, 3) -> float32 (B, T, 224, 224, 3) in [-1, 1] (see module doc)."""
    _, _, h, w, _ = videos.shape
    ry = jnp.asarray(legacy_bilinear_matrix(h, RESOLUTION))
    rx = jnp.asarray(legacy_bilinear_matrix(w, RESOLUTION))
    x = videos.astype(jnp.float32)
    x = jnp.einsum("yh,bthwc,xw->btyxc", ry, x, rx, precision=jax.lax.Precision.HIGHEST)
    return 2.0 * x / 255.0 - 1.0


def compiler_options() -> dict | None:
    """XLA:CPU at full optimization whatever XLA_FLAGS say (I3D is the expensive part, and
    a global `--xla_backend_optimization_level=0`, as the test suite sets to compile tiny
    models faster, makes it ~3x slower), with XLA's multi-threaded kernels
    (`xla_options.kernel_options()`)."""
    if jax.default_backend() != "cpu":
        return None
    return with_kernel_options({"xla_backend_optimization_level": 3})


class I3DFeatures:
    """uint8 videos (N, T, H, W, 3), T >= 9, H, W >= 16 -> float32 (N, 400) I3D logits.

    batch_size: clips per forward (the last batch is padded, so every call with the same
    (T, H, W) reuses one compiled function). progress: a tqdm bar over batches.
    variables: I3D weights (default: `load_i3d_variables()`, read once here).
    """

    def __init__(self, batch_size: int = 8, progress: bool = True,
                 variables: dict | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        self.batch_size, self.progress = batch_size, progress
        self.variables = variables if variables is not None else load_i3d_variables()
        model = I3D()
        self._forward = jax.jit(lambda v, x: model.apply(v, preprocess(x)),
                                compiler_options=compiler_options())

    def __call__(self, videos: Any, name: str = "videos") -> np.ndarray:
        videos = check_videos(videos, name)
        n = len(videos)
        size = min(self.batch_size, n)
        starts = range(0, n, size)
        if self.progress:
            from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
            starts = tqdm(starts, desc=f"I3D {name}", unit="batch", leave=False)
        out = []
        for start in starts:
            batch = videos[start:start + size]
            if len(batch) < size:  # pad with copies of the last clip: one compiled shape
                batch = np.concatenate([batch, np.repeat(batch[-1:], size - len(batch), 0)])
            out.append(np.asarray(self._forward(self.variables, jnp.asarray(batch))))
        return np.concatenate(out)[:n]


@functools.lru_cache(maxsize=1)
def _default_features() -> I3DFeatures:
    return I3DFeatures()


def fvd(videos_a: Any, videos_b: Any, *,
        features: Callable[..., np.ndarray] | None = None) -> float:
    """FVD between two sets of uint8 (N, T, H, W, 3) clips (N >= 2, T >= 9, H, W >= 16;
    the two sets may differ in N, T and size). features: an `I3DFeatures` (default: one
    shared instance, built on first use)."""
    videos_a = check_videos(videos_a, "videos_a", min_count=2)
    videos_b = check_videos(videos_b, "videos_b", min_count=2)
    features = features or _default_features()
    return frechet_distance(features(videos_a, name="videos_a"),
                            features(videos_b, name="videos_b"))
