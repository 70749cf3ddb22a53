"""Video IO: read MP4 / WebM / GIF, write MP4 (H.264) / WebM (VP9) / GIF, resample, crop, resize.

Decoding and encoding go through the ffmpeg binary shipped inside `imageio-ffmpeg`
(MP4, WebM, ...) and Pillow (GIF), so no system ffmpeg is needed. Frames are always
`uint8 (T, H, W, 3)` RGB.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

Size = int | tuple[int, int]

_GIF_SUFFIXES = (".gif",)
_WRITE_CODECS = {".mp4": "libx264", ".webm": "libvpx-vp9"}


class VideoReadError(ValueError):
    """A file that cannot be decoded as a video (missing, truncated, not a video, empty)."""


def parse_size(size: Size, field: str = "size") -> tuple[int, int]:
    """int or (H, W) -> (H, W), both > 0."""
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{field} must be a positive int or (height, width), got {size!r}.")
    return int(size[0]), int(size[1])


def frame_indices_at_fps(timestamps: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """Indices of the source frames on screen at times `k / fps` < duration, k = 0, 1, ....

    timestamps: (N,) float start time (s) of each source frame, increasing, first 0.
    duration: total length (s) of the source clip. Returns (M,) int (repeats when upsampling).
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}.")
    timestamps = np.asarray(timestamps, np.float64)
    num_out = int(np.ceil(duration * fps - 1e-6))
    times = np.arange(num_out) / fps
    # The frame on screen at time t is the last one that started at or before t.
    idx = np.searchsorted(timestamps, times + 1e-9, side="right") - 1
    return np.clip(idx, 0, len(timestamps) - 1).astype(np.int64)


def resample_fps(frames: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Resample a constant-rate clip. frames: (T, ...) -> (ceil(T * dst / src), ...)."""
    if src_fps <= 0:
        raise ValueError(f"src_fps must be > 0, got {src_fps}.")
    n = len(frames)
    idx = frame_indices_at_fps(np.arange(n) / src_fps, n / src_fps, dst_fps)
    return frames[idx]


def center_crop_resize(frames: np.ndarray, size: Size) -> np.ndarray:
    """Center-crop to the target aspect ratio, then resize (antialiased bilinear).

    frames: uint8 (T, H, W, 3) -> uint8 (T, size_h, size_w, 3).
    """
    out_h, out_w = parse_size(size)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, C), got shape {frames.shape}.")
    _, h, w, _ = frames.shape
    # Largest crop with the output aspect ratio.
    crop_h, crop_w = h, w
    if h * out_w > w * out_h:
        crop_h = max(1, round(w * out_h / out_w))
    else:
        crop_w = max(1, round(h * out_w / out_h))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    frames = frames[:, top:top + crop_h, left:left + crop_w]
    if (crop_h, crop_w) == (out_h, out_w):
        return np.ascontiguousarray(frames)
    resized = [
        np.asarray(Image.fromarray(f).resize((out_w, out_h), Image.Resampling.BILINEAR))
        for f in frames
    ]
    return np.stack(resized).reshape(len(frames), out_h, out_w, frames.shape[-1])


def _read_gif(path: str) -> tuple[np.ndarray, np.ndarray, float]:
    """-> frames uint8 (N, H, W, 3), start times (N,), duration (s)."""
    frames, durations = [], []
    with Image.open(path) as im:
        if im.format != "GIF":
            raise VideoReadError(f"{path}: not a GIF (Pillow sees {im.format}).")
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(max(im.info.get("duration", 100), 1) / 1000.0)
    durations = np.asarray(durations)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return np.stack(frames), starts, float(durations.sum())


def _read_ffmpeg(
    path: str, fps: float | None, size: Size | None, num_frames: int | None
) -> list[np.ndarray]:
    """Stream-decode with ffmpeg, resampling and resizing frame by frame (flat memory).

    Output frame k is the source frame on screen at time k / fps (as `frame_indices_at_fps`).
    """
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top

    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    out: list[np.ndarray] = []
    try:
        meta = gen.__next__()
        w, h = meta["size"]
        src_fps = float(meta.get("fps") or 0.0)
        if fps is not None and src_fps <= 0:
            raise VideoReadError(f"{path}: no frame rate in the stream metadata to resample from.")
        k = 0  # next output frame
        for i, buf in enumerate(gen):
            frame = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            if fps is None:
                repeats = 1
            else:  # output frames k with i / src_fps <= k / fps < (i + 1) / src_fps
                end = k
                while end / fps + 1e-9 < (i + 1) / src_fps:
                    end += 1
                repeats, k = end - k, end
            if repeats:
                if size is not None:
                    frame = center_crop_resize(frame[None], size)[0]
                out.extend([frame] * repeats)
            if num_frames is not None and len(out) >= num_frames:
                break
    finally:
        gen.close()
    return out


def read_video(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    size: Size | None = None,
    num_frames: int | None = None,
) -> np.ndarray:
    """Decode a video file (MP4, WebM, MOV, ... via ffmpeg; GIF via Pillow).

    Args:
      path: the file.
      fps: resample to this frame rate (None: keep the source rate).
      size: center-crop + resize to `size` (int or (H, W)); None keeps the source size.
      num_frames: return at most this many frames (decoding stops early).

    Returns:
      uint8 (T, H, W, 3). Raises `VideoReadError` (a ValueError) for a file that cannot be
      decoded or holds no frames.
    """
    path = os.fspath(path)
    if num_frames is not None and num_frames <= 0:
        raise ValueError(f"num_frames must be > 0 or None, got {num_frames}.")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be > 0 or None, got {fps}.")
    if size is not None:
        size = parse_size(size)
    if not os.path.isfile(path):
        raise VideoReadError(f"{path}: no such file.")
    try:
        if path.lower().endswith(_GIF_SUFFIXES):
            frames, starts, duration = _read_gif(path)
            if fps is not None:  # GIF delays may vary per frame: resample on the time axis.
                frames = frames[frame_indices_at_fps(starts, duration, fps)]
            frames = frames[:num_frames]
            if size is not None and len(frames):
                frames = center_crop_resize(frames, size)
        else:
            frames = _read_ffmpeg(path, fps, size, num_frames)
    except VideoReadError:
        raise
    except (OSError, RuntimeError, ValueError, EOFError, StopIteration, SyntaxError) as e:
        # ffmpeg's stderr is long; its last lines say what went wrong.
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        reason = " | ".join(lines[-2:]) if lines else type(e).__name__
        raise VideoReadError(f"{path}: cannot decode ({reason}).") from e
    if len(frames) == 0:
        raise VideoReadError(f"{path}: decoded zero frames.")
    return np.ascontiguousarray(np.stack(frames[:num_frames]))


def write_video(
    path: str | os.PathLike, frames: np.ndarray, fps: float = 8.0, *, crf: int = 18
) -> None:
    """Write frames: uint8 (T, H, W, 3). Format by suffix: .mp4 (H.264), .webm (VP9), .gif.

    MP4/WebM use yuv420p, so H and W must be even. `crf`: quality (lower is better).
    GIF stores frame delays in 10 ms steps (exact for fps in 100, 50, 25, 20, 10, ...) and
    at most 256 colors per frame.
    """
    path = os.fspath(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    if len(frames) == 0:
        raise ValueError("frames must hold at least one frame, got T=0.")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            path, save_all=True, append_images=images[1:], duration=round(1000 / fps),
            loop=0, optimize=False, disposal=1)
        return
    if suffix not in _WRITE_CODECS:
        raise ValueError(
            f"path suffix {suffix!r} not supported for writing; use one of "
            f"{sorted([*_WRITE_CODECS, '.gif'])}.")
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(
            f"frames height and width must be even for {suffix} (yuv420p), got {h}x{w}; "
            f"crop to {h - h % 2}x{w - w % 2}.")
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top

    codec = _WRITE_CODECS[suffix]
    out_params = ["-crf", str(crf)]
    if codec == "libvpx-vp9":
        out_params += ["-b:v", "0"]
    gen = imageio_ffmpeg.write_frames(
        path, (w, h), fps=fps, codec=codec, quality=None, macro_block_size=1,
        pix_fmt_out="yuv420p", output_params=out_params, ffmpeg_log_level="error")
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()

