"""Does the SSR stage keep the base video, and does MultiDiffusion leave seams?

    consistency = ssr_consistency(low, high, window=4, stride=2)
    # low: uint8 (N, T, h, w, 3) base videos; high: uint8 (N, T, H, W, 3) their SSR output
    consistency["psnr_downsampled_vs_base"]   # dB: SSR box-averaged back to h x w vs the base
    consistency["seam_ratio"]                 # change across window boundaries / inside
    consistency["base_seam_ratio"]            # the same ratio of the base videos (no windows)

A seam is a jump between two frames that no single SSR window sampled together: the
transition t -> t+1 crosses a window boundary when a window starts at t+1 or ends at t.
`seam_ratio` is the mean absolute frame-to-frame change over those transitions divided by
the mean over the transitions inside windows (1 = no seams). The base videos' own ratio
at the same transitions shows how far from 1 the motion alone puts it.
"""

from __future__ import annotations

import numpy as np
from einops import reduce

from lumiere_jax.diffusion.multidiffusion import window_starts


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two arrays of one shape on a 0..`peak` scale (inf when equal)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


def box_downsample(videos: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float64 `(N, T, h, w, C)`: `(N, T, H, W, C)` averaged over H/h x W/w pixel boxes."""
    n, t, height, width, c = videos.shape
    h, w = size
    if height % h or width % w:
        raise ValueError(f"the SSR frames ({height}x{width}) are not a whole multiple of the "
                         f"base frames ({h}x{w})")
    return reduce(np.asarray(videos, np.float64), "n t (h a) (w b) c -> n t h w c", "mean",
                  h=h, w=w)


def boundary_transitions(num_frames: int, window: int, stride: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(across, inside): indices t of the transitions t -> t+1 that cross a window boundary
    (a window starts at t+1 or ends at t) and of those that do not."""
    starts = window_starts(num_frames, window, stride)
    across = {int(s) - 1 for s in starts[1:]} | {int(s) + window - 1 for s in starts[:-1]}
    across = sorted(t for t in across if 0 <= t < num_frames - 1)
    inside = [t for t in range(num_frames - 1) if t not in across]
    return np.asarray(across, np.int64), np.asarray(inside, np.int64)


def seam_ratio(videos: np.ndarray, window: int, stride: int) -> float:
    """Mean |frame t+1 - frame t| over window-crossing transitions / over inside ones, for
    `videos` `(N, T, H, W, C)` (nan when either set is empty: one window covers the clip)."""
    across, inside = boundary_transitions(videos.shape[1], window, stride)
    if not len(across) or not len(inside):
        return float("nan")
    change = np.abs(np.diff(np.asarray(videos, np.float64), axis=1)).mean(axis=(0, 2, 3, 4))
    return float(change[across].mean() / change[inside].mean())


def ssr_consistency(low: np.ndarray, high: np.ndarray, window: int, stride: int) -> dict:
    """The module's three figures for base videos `low` and their SSR output `high`."""
    low, high = np.asarray(low), np.asarray(high)
    if low.ndim != 5 or high.ndim != 5 or low.shape[:2] != high.shape[:2]:
        raise ValueError(f"low and high must be (N, T, H, W, 3) with the same N and T; got "
                         f"{low.shape} and {high.shape}")
    back = box_downsample(high, low.shape[2:4])
    return dict(psnr_downsampled_vs_base=psnr(back, low),
                seam_ratio=seam_ratio(high, window, stride),
                base_seam_ratio=seam_ratio(low, window, stride), window=window, stride=stride)
