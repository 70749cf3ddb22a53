"""A contact sheet: one row per clip (its frames left to right) with text beside it.

    contact_sheet(videos, [["prompt: ...", "read: ..."], ...], "sheet.png")
"""

from __future__ import annotations

import os
import textwrap
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["contact_sheet"]


def contact_sheet(videos: Sequence[np.ndarray], texts: Sequence[Sequence[str]],
                  path: str | os.PathLike, *, max_frames: int = 8, frame_px: int = 64,
                  text_width: int = 60) -> np.ndarray:
    """Write a PNG: row i = up to `max_frames` evenly spaced frames of videos[i] (uint8
    (T, H, W, 3), any sizes), each scaled to `frame_px` high, then the lines texts[i]
    wrapped at `text_width` characters. Returns the sheet, uint8 (H, W, 3)."""
    if len(videos) != len(texts) or not len(videos):
        raise ValueError(f"videos and texts must be non-empty and of equal length, got "
                         f"{len(videos)} and {len(texts)}.")
    font = ImageFont.load_default()
    line_h, char_w, pad = 12, 6, 4
    strips, wrapped = [], []
    for video in videos:
        video = np.asarray(video)
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"videos must be uint8 (T, H, W, 3) each, got {video.dtype} "
                             f"{video.shape}.")
        idx = np.unique(np.linspace(0, len(video) - 1, min(max_frames, len(video))).round()
                        .astype(int))
        width = max(1, round(frame_px * video.shape[2] / video.shape[1]))
        frames = [Image.fromarray(video[i]).resize((width, frame_px), Image.Resampling.NEAREST)
                  for i in idx]
        strips.append(frames)
    for lines in texts:
        wrapped.append([w for line in lines for w in (textwrap.wrap(line, text_width) or [""])])
    frames_w = max(sum(f.width + 1 for f in s) for s in strips)
    row_h = [max(frame_px, len(w) * line_h) + 2 * pad for w in wrapped]
    sheet = Image.new("RGB", (frames_w + text_width * char_w + 3 * pad, sum(row_h)), "white")
    draw = ImageDraw.Draw(sheet)
    top = 0
    for frames, lines, h in zip(strips, wrapped, row_h):
        left = pad
        for f in frames:
            sheet.paste(f, (left, top + pad))
            left += f.width + 1
        for k, line in enumerate(lines):
            draw.text((frames_w + 2 * pad, top + pad + k * line_h), line, fill="black", font=font)
        draw.line([(0, top + h - 1), (sheet.width, top + h - 1)], fill=(200, 200, 200))
        top += h
    sheet.save(os.fspath(path))
    return np.asarray(sheet)
