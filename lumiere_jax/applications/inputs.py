"""Coercing what users pass to the applications: images, videos and masks of any size.

    image = pixels_input("image", png_array, rank=4, batch=2)   # (2, H, W, 3) in [-1, 1]
    mask = mask_input("still_mask", region, rank=3, batch=2)    # (2, H, W, 1) in [0, 1]
    small = resize_input(image, 32, "cubic")                    # (2, 32, 32, 3)

Each raises a ValueError naming the argument and what would be valid; they run on host
values, at the public entry points (`LumierePipeline.image_to_video`, `inpaint`, ...).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["mask_input", "pixels_input", "resize_input"]


def resize_input(x: jax.Array, size: int, method: str) -> jax.Array:
    """Pixels (..., H, W, 3) or masks (..., H, W, 1) -> (..., size, size, C); masks
    resize linearly (soft edges), pixels with `method` (a `jax.image.resize` method;
    antialiased when shrinking)."""
    shape = x.shape[:-3] + (size, size, x.shape[-1])
    is_mask = x.shape[-1] == 1
    out = jax.image.resize(x, shape, "linear" if is_mask else method)
    return jnp.clip(out, 0.0 if is_mask else -1.0, 1.0)


def pixels_input(name: str, x: Any, rank: int, batch: int) -> jax.Array:
    """uint8 [0, 255] or float [-1, 1] pixels, optionally without the batch axis ->
    float32 (batch, ..., 3) in [-1, 1]; rank counts the batch axis (4: images, 5: videos)."""
    arr = np.asarray(x)
    if arr.ndim == rank - 1:
        arr = arr[None]
    if arr.ndim != rank or arr.shape[-1] != 3 or arr.shape[0] not in (1, batch):
        layout = "(H, W, 3)" if rank == 4 else "(T, H, W, 3)"
        raise ValueError(f"{name} must be {layout} or with a leading batch of 1 or "
                         f"{batch} (one per prompt), got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 127.5 - 1.0
    elif not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 [0, 255] or float [-1, 1], got {arr.dtype}.")
    elif arr.size and (np.nanmin(arr) < -1.0 - 1e-3 or np.nanmax(arr) > 1.0 + 1e-3
                       or not np.all(np.isfinite(arr))):
        raise ValueError(f"float {name} must be finite and in [-1, 1] (got values in "
                         f"[{np.nanmin(arr)}, {np.nanmax(arr)}]); pass uint8 for [0, 255].")
    return jnp.broadcast_to(jnp.asarray(arr, jnp.float32), (batch,) + arr.shape[1:])


def mask_input(name: str, m: Any, rank: int, batch: int, num_frames: int | None = None
               ) -> jax.Array:
    """bool / [0, 1] mask without channel axis -> float32 (batch, ..., 1); rank counts
    the batch axis (3: (B, H, W); 4: (B, T, H, W), where T may be 1 for all frames)."""
    arr = np.asarray(m)
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be bool or numeric in [0, 1], got {arr.dtype}.")
    arr = arr.astype(np.float32)
    while arr.ndim < rank:
        arr = arr[None]
    frames_ok = rank == 3 or arr.shape[1] in (1, num_frames)
    if arr.ndim != rank or arr.shape[0] not in (1, batch) or not frames_ok:
        raise ValueError(f"{name} has shape {np.shape(m)}; expected "
                         + ("(H, W) or (B, H, W)" if rank == 3 else
                            f"(H, W), (T, H, W) or (B, T, H, W) with T = 1 or {num_frames}")
                         + f" and B = 1 or {batch}.")
    if arr.size and not (np.all(arr >= 0.0) and np.all(arr <= 1.0)):
        raise ValueError(f"{name} must hold values in [0, 1] (1 = given / still), got "
                         f"[{arr.min()}, {arr.max()}].")
    arr = np.broadcast_to(arr, (batch,) + arr.shape[1:])
    return jnp.asarray(arr)[..., None]
