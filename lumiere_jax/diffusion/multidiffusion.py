"""MultiDiffusion over overlapping temporal windows (Lumiere, Sec. 3.2; Bar-Tal et al. 2023).

The SSR network only ever sees ``window`` frames. At every denoising step the clip is
split into overlapping windows J_i, each window is denoised, and the predictions are
reconciled by the least-squares merge

    J' = argmin_J sum_i sum_f w_f ||J[s_i + f] - Phi(J_i)[f]||^2
       = (sum_i w * Phi(J_i) scattered to its frames) / (sum_i w scattered to its frames),

i.e. every frame is the (weighted) average of the window predictions that cover it.

Everything here is data-parallel array math: starts and merge weights are static (NumPy,
fixed when the sampler is built, so the frame coverage is computed once, outside jit),
windows are gathered with ``vmap(dynamic_slice)``, run through the denoiser in chunks of
``chunk_size`` windows inside a ``lax.scan`` (one chunk of all windows by default), and
merged with ``zeros.at[:, frame_index].add(...)``. No Python loop over windows runs at
trace time beyond building the static start array.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import einops
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
WindowDenoiseFn = Callable[..., Array]

__all__ = [
    "window_starts",
    "window_weights",
    "split_windows",
    "merge_windows",
    "multidiffusion_denoiser",
]

WEIGHT_KINDS = ("uniform", "tapered")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def window_starts(num_frames: int, window: int, stride: int) -> np.ndarray:
    """Start frame of every temporal window; together they cover all frames.

    Starts are ``0, stride, 2*stride, ...`` and a last window aligned to the end of the
    clip (``num_frames - window``) is appended when the stride grid misses it.

    Returns:
      starts: (N,) int32 numpy array, first 0, last ``num_frames - window``.
    Raises:
      ValueError: window < 1, window > num_frames, stride < 1, or stride > window (frames
        between windows would be uncovered).
    """
    num_frames = _check_int("num_frames", num_frames, 1)
    window = _check_int("window", window, 1)
    stride = _check_int("stride", stride, 1)
    if window > num_frames:
        raise ValueError(
            f"window={window} is longer than the clip (num_frames={num_frames}); "
            f"use window <= {num_frames}."
        )
    if stride > window:
        raise ValueError(
            f"stride={stride} > window={window} leaves frames uncovered between windows; "
            f"use 1 <= stride <= {window}."
        )
    last = num_frames - window
    starts = np.arange(0, last + 1, stride, dtype=np.int32)
    if starts[-1] != last:
        starts = np.append(starts, np.int32(last))
    return starts


def window_weights(window: int, kind: str = "uniform") -> np.ndarray:
    """Per-window-frame merge weights, shape (window,) float32, strictly positive.

    ``'uniform'``: all ones (the paper's plain average).
    ``'tapered'``: ``sin^2(pi * (f + 1) / (window + 1))``, largest mid-window and small
    (but > 0, so the clip's first and last frames stay covered) toward window edges,
    which softens seams where a window starts or ends.
    """
    window = _check_int("window", window, 1)
    if kind == "uniform":
        return np.ones((window,), np.float32)
    if kind == "tapered":
        f = np.arange(window, dtype=np.float64)
        return (np.sin(np.pi * (f + 1.0) / (window + 1.0)) ** 2).astype(np.float32)
    raise ValueError(f"weights must be one of {WEIGHT_KINDS} or an array, got {kind!r}.")


def _resolve_weights(weights: Any, num_windows: int, window: int) -> np.ndarray:
    """None / kind string / (window,) / (N, window) -> a static (N, window) float32 array."""
    if weights is None:
        weights = "uniform"
    if isinstance(weights, str):
        weights = window_weights(window, weights)
    if isinstance(weights, jax.core.Tracer):
        raise ValueError("weights must be static (a NumPy array, a list or a kind name), not "
                         "a traced array: the frame coverage is computed once, outside jit.")
    w = np.asarray(weights, dtype=np.float32)
    if w.shape == (window,):
        w = np.broadcast_to(w[None, :], (num_windows, window))
    if w.shape != (num_windows, window):
        raise ValueError(
            f"weights must have shape (window,)=({window},) or (N, window)=({num_windows}, "
            f"{window}), got {tuple(w.shape)}."
        )
    if not np.all(w > 0):
        raise ValueError("weights must be strictly positive so every covered frame keeps weight.")
    return w


def _static_starts(starts: Any, num_frames: int, window: int) -> np.ndarray:
    """Validate static window starts -> (N,) int32 NumPy."""
    if isinstance(starts, jax.core.Tracer):
        raise ValueError("starts must be static (e.g. window_starts(...)), not a traced array: "
                         "the window geometry is fixed when a sampler is built.")
    s = np.asarray(starts)
    if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"starts must be a non-empty 1-D int array, got {s.dtype} {s.shape}.")
    if s.min() < 0 or s.max() > num_frames - window:
        raise ValueError(
            f"starts must lie in [0, num_frames - window] = [0, {num_frames - window}], "
            f"got min {s.min()} max {s.max()}."
        )
    return s.astype(np.int32)


def _coverage(starts: np.ndarray, weights: np.ndarray, num_frames: int) -> np.ndarray:
    """(T,) float64: the total merge weight each frame receives; every frame must get some."""
    cover = np.zeros((num_frames,), np.float64)
    np.add.at(cover, starts[:, None] + np.arange(weights.shape[1])[None, :], weights)
    if not np.all(cover > 0):
        missing = np.flatnonzero(cover <= 0).tolist()
        raise ValueError(f"frames {missing} are covered by no window; check starts/window.")
    return cover


def _gather(video: Array, starts: Array, window: int) -> Array:
    """(B, T, ...) -> (M, B, window, ...) at start frames `starts` (M,) (traced in a scan)."""
    return jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(video, s, window, axis=1))(starts)


def _scatter_add(acc: Array, preds: Array, starts: Array, weights: Array) -> Array:
    """acc (B, T, ...) += weights * preds (M, B, window, ...) at frames starts[:, None] + f."""
    window = preds.shape[2]
    preds = einops.rearrange(preds, "m b w ... -> b m w ...").astype(acc.dtype)
    w_b = weights.astype(acc.dtype).reshape((1,) + weights.shape + (1,) * (preds.ndim - 3))
    index = starts[:, None] + jnp.arange(window, dtype=jnp.int32)[None, :]
    return acc.at[:, index].add(preds * w_b)


def _normalise(acc: Array, cover: np.ndarray) -> Array:
    """acc (B, T, ...) / cover (T,) broadcast over the frame axis."""
    return acc / jnp.asarray(cover, acc.dtype).reshape((1, -1) + (1,) * (acc.ndim - 2))


def split_windows(video: Array, starts: Any, window: int) -> Array:
    """Gather overlapping temporal windows with vmapped ``dynamic_slice``.

    Args:
      video: (B, T, ...) array.
      starts: (N,) static int start frames (e.g. ``window_starts``).
      window: static window length.
    Returns:
      (N, B, window, ...) windows; ``out[i] = video[:, starts[i]:starts[i] + window]``.
    """
    window = _check_int("window", window, 1)
    if video.ndim < 2:
        raise ValueError(f"video must be (B, T, ...), got shape {video.shape}.")
    num_frames = video.shape[1]
    if window > num_frames:
        raise ValueError(f"window={window} is longer than the clip (T={num_frames}).")
    return _gather(video, jnp.asarray(_static_starts(starts, num_frames, window)), window)


def merge_windows(
    windows: Array, starts: Any, num_frames: int, weights: Any = None
) -> Array:
    """Least-squares merge of overlapping window predictions into the full clip.

    ``out[:, t] = sum_{i,f: s_i+f=t} w[i,f] windows[i, :, f] / sum_{i,f: s_i+f=t} w[i,f]``,
    the minimizer of ``sum_{i,f} w[i,f] ||J[:, s_i+f] - windows[i, :, f]||^2``.

    Args:
      windows: (N, B, window, ...) float window predictions.
      starts: (N,) static int start frames.
      num_frames: T of the merged clip.
      weights: None (uniform), ``'uniform'``/``'tapered'``, or static (window,) / (N, window)
        values > 0.
    Returns:
      (B, T, ...) merged clip in ``windows.dtype`` (accumulated in at least float32).
    Raises:
      ValueError: shapes disagree, starts or weights are traced, or a frame is covered by
        no window.
    """
    num_frames = _check_int("num_frames", num_frames, 1)
    if windows.ndim < 3:
        raise ValueError(f"windows must be (N, B, window, ...), got shape {windows.shape}.")
    num_windows, batch, window = windows.shape[:3]
    if window > num_frames:
        raise ValueError(f"window={window} is longer than the clip (num_frames={num_frames}).")
    if np.shape(starts) != (num_windows,):
        raise ValueError(
            f"starts must have shape (N,)=({num_windows},) to match windows, got "
            f"{np.shape(starts)}."
        )
    starts = _static_starts(starts, num_frames, window)
    w = _resolve_weights(weights, num_windows, window)
    cover = _coverage(starts, w, num_frames)
    acc = jnp.zeros((batch, num_frames) + windows.shape[3:],
                    jnp.promote_types(windows.dtype, jnp.float32))
    acc = _scatter_add(acc, windows, jnp.asarray(starts), jnp.asarray(w))
    return _normalise(acc, cover).astype(windows.dtype)


def multidiffusion_denoiser(
    window_denoise_fn: WindowDenoiseFn,
    num_frames: int,
    window: int,
    stride: int,
    chunk_size: int | None = None,
    weights: Any = "uniform",
) -> Callable[..., Array]:
    """Turn a window-level denoiser into a full-clip denoiser by MultiDiffusion.

    Args:
      window_denoise_fn: ``f(x_win (B, window, ...), t (B,), *frame_args_win) -> (B, window, ...)``.
        Anything that is not per-frame (text states, masks, noise-aug level) is closed over.
      num_frames, window, stride: static clip and window geometry (see ``window_starts``).
      chunk_size: None runs all N windows as one vmapped batch; k >= 1 runs them k at a
        time inside a ``lax.scan`` whose carry is the running weighted sum, so the
        temporary memory depends on k, not on N. N is split into ceil(N / k) equal chunks
        (fewer than ceil(N / k) zero-weight padding windows; none when k divides N). One
        code path: unchunked is a single chunk of all N windows.
      weights: ``'uniform'``, ``'tapered'``, or a static positive (window,) / (N, window) array.
    Returns:
      ``denoise(x_t (B, T, ...), t (B,), *frame_args (B, T, ...)) -> (B, T, ...)``: each
      ``frame_args`` array (e.g. the upsampled low-res video for SSR) is windowed
      alongside ``x_t``. Jittable; usable as ``denoise_fn`` in the samplers.
    Raises:
      ValueError: at construction, for bad window geometry, chunk size or weights.
    """
    starts = window_starts(num_frames, window, stride)
    num_windows = len(starts)
    if chunk_size is not None:
        chunk_size = _check_int("chunk_size", chunk_size, 1)
    w = _resolve_weights(weights, num_windows, window)
    cover = _coverage(starts, w, num_frames)  # once, here: the geometry is static

    # ceil(N / k) chunks of equal size k' <= k; the < num_chunks padding windows repeat
    # the last start with weight 0, so one compiled body serves every chunk and the
    # temporary memory is that of k' windows whatever N is.
    num_chunks = 1 if chunk_size is None else -(-num_windows // min(chunk_size, num_windows))
    per_chunk = -(-num_windows // num_chunks)
    pad = num_chunks * per_chunk - num_windows
    s_chunks = einops.rearrange(np.concatenate([starts, np.full((pad,), starts[-1], np.int32)]),
                                "(c k) -> c k", k=per_chunk)
    w_chunks = einops.rearrange(np.concatenate([w, np.zeros((pad, window), np.float32)]),
                                "(c k) w -> c k w", k=per_chunk)

    def run_windows(x_t: Array, t: Array, frame_args: tuple[Array, ...], s: Array) -> Array:
        """Denoise the windows starting at ``s`` (M,) -> (M, B, window, ...)."""
        args = tuple(_gather(a, s, window) for a in frame_args)
        in_axes = (0, None) + (0,) * len(args)
        return jax.vmap(window_denoise_fn, in_axes=in_axes)(_gather(x_t, s, window), t, *args)

    def denoise(x_t: Array, t: Array, *frame_args: Array) -> Array:
        if x_t.ndim < 2 or x_t.shape[1] != num_frames:
            raise ValueError(
                f"x_t must be (B, T={num_frames}, ...) as configured, got shape {x_t.shape}."
            )
        for i, a in enumerate(frame_args):
            if a.shape[:2] != x_t.shape[:2]:
                raise ValueError(
                    f"frame_args[{i}] must share (B, T)={x_t.shape[:2]} with x_t, got {a.shape}."
                )
        one = jax.eval_shape(
            lambda s: run_windows(x_t, t, frame_args, s), jax.ShapeDtypeStruct((1,), jnp.int32)
        )
        acc = jnp.zeros((one.shape[1], num_frames) + one.shape[3:],
                        jnp.promote_types(one.dtype, jnp.float32))

        def body(acc: Array, chunk: tuple[Array, Array]) -> tuple[Array, None]:
            s, w_s = chunk
            return _scatter_add(acc, run_windows(x_t, t, frame_args, s), s, w_s), None

        chunks = (jnp.asarray(s_chunks), jnp.asarray(w_chunks))
        if num_chunks == 1:  # the same body, without a one-trip loop around it
            acc, _ = body(acc, jax.tree.map(lambda c: c[0], chunks))
        else:
            acc, _ = jax.lax.scan(body, acc, chunks)
        return _normalise(acc, cover).astype(one.dtype)

    return denoise
