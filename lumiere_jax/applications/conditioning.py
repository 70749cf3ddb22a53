"""The `<C, M>` conditioning input of Lumiere's conditional STUNet.

A conditional model sees `<J, C, M>`: the noisy video J (3 channels), a masked
conditioning video C (3) and a binary mask M (1), 7 channels in all; J is the model's `x`,
`cond = concat(C * M, M)` its `cond` (UNetConfig.cond_channels = 4). M = 1 marks pixels
whose content is given by C. Values: C in [-1, 1] like J, M in {0, 1} (a soft mask in
[0, 1] is accepted).

  image-to-video:  C = first frame, then blank frames; M = 1 on frame 0 only.
  inpainting:      C = the video; M = its known (kept) region.
  cinemagraph:     C = first frame on every frame; M = the region that stays still.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange, repeat

__all__ = ["make_condition", "split_condition", "image_to_video_condition",
           "inpainting_condition", "cinemagraph_condition", "random_training_condition",
           "TRAINING_KINDS"]


def _check_mask_values(name: str, mask) -> None:
    """ValueError if a concrete mask has values outside [0, 1] (tracers pass)."""
    if isinstance(mask, jax.core.Tracer):
        return
    m = np.asarray(mask, np.float32)
    if m.size and not (np.all(m >= 0.0) and np.all(m <= 1.0)):
        raise ValueError(f"{name} must be a binary (or soft, in [0, 1]) mask, got values in "
                         f"[{m.min()}, {m.max()}].")


def _check_num_frames(num_frames: int) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames={num_frames!r} must be a Python int >= 1.")


def _check_image(name: str, image) -> None:
    if np.ndim(image) != 4:
        raise ValueError(f"{name} must be an image batch (B, H, W, C), got shape "
                         f"{np.shape(image)}.")


def make_condition(video: jax.Array, mask: jax.Array) -> jax.Array:
    """`cond = concat(C * M, M)` along channels.

    video: C, (B, T, H, W, K) float (K = 3 for RGB); mask: M, bool or float, broadcastable
    to (B, T, H, W, 1). Returns (B, T, H, W, K + 1) in video's dtype, zero in the first K
    channels wherever M = 0.
    """
    if np.ndim(video) != 5:
        raise ValueError(f"video must be (B, T, H, W, C), got shape {np.shape(video)}.")
    video = jnp.asarray(video)
    target = video.shape[:-1] + (1,)
    try:
        ok = np.broadcast_shapes(np.shape(mask), target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"mask of shape {np.shape(mask)} does not broadcast to {target} "
                         "(B, T, H, W, 1); give it a trailing channel axis of 1 and size-1 "
                         "axes where it is shared, e.g. (B, 1, H, W, 1) for all frames.")
    _check_mask_values("mask", mask)
    m = jnp.broadcast_to(jnp.asarray(mask).astype(video.dtype), target)
    return jnp.concatenate([video * m, m], axis=-1)


def split_condition(cond: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(B, ..., K + 1) -> (C * M (B, ..., K), M (B, ..., 1)); inverse of `make_condition`."""
    if np.ndim(cond) < 2 or np.shape(cond)[-1] < 2:
        raise ValueError(f"cond must be (B, ..., K + 1) with K >= 1 content channels and a "
                         f"mask channel last, got shape {np.shape(cond)}.")
    return cond[..., :-1], cond[..., -1:]


def image_to_video_condition(first_frame: jax.Array, num_frames: int) -> jax.Array:
    """Image-to-video: C = the first frame then blank (zero) frames, M = 1 on frame 0.

    first_frame: (B, H, W, K) float. Returns cond (B, num_frames, H, W, K + 1).
    """
    _check_image("first_frame", first_frame)
    _check_num_frames(num_frames)
    video = repeat(jnp.asarray(first_frame), "b h w c -> b t h w c", t=num_frames)
    mask = rearrange(jnp.arange(num_frames) == 0, "t -> 1 t 1 1 1")
    return make_condition(video, mask)


def inpainting_condition(video: jax.Array, known_mask: jax.Array) -> jax.Array:
    """Inpainting: C = the video (with a hole), M = its known region (1 = keep).

    video: (B, T, H, W, K) float; known_mask: broadcastable to (B, T, H, W, 1), e.g.
    (B, 1, H, W, 1) for a hole that is the same on every frame.
    Returns cond (B, T, H, W, K + 1).
    """
    if np.ndim(known_mask) != 5:
        raise ValueError(f"known_mask must have rank 5, broadcastable to (B, T, H, W, 1), got "
                         f"shape {np.shape(known_mask)}.")
    _check_mask_values("known_mask", known_mask)
    return make_condition(video, known_mask)


def cinemagraph_condition(first_frame: jax.Array, still_mask: jax.Array,
                          num_frames: int) -> jax.Array:
    """Cinemagraph: C = the first frame on every frame, M = the still region on every frame.

    first_frame: (B, H, W, K) float; still_mask: (B, H, W, 1) (or (1, H, W, 1)), 1 where the
    image stays still; the rest is animated. Returns cond (B, num_frames, H, W, K + 1).
    """
    _check_image("first_frame", first_frame)
    _check_num_frames(num_frames)
    b, h, w, _ = np.shape(first_frame)
    if np.ndim(still_mask) != 4 or np.shape(still_mask)[1:] != (h, w, 1) or \
            np.shape(still_mask)[0] not in (1, b):
        raise ValueError(f"still_mask must be (B, H, W, 1) = ({b}, {h}, {w}, 1) (or batch 1), "
                         f"got shape {np.shape(still_mask)}.")
    _check_mask_values("still_mask", still_mask)
    video = repeat(jnp.asarray(first_frame), "b h w c -> b t h w c", t=num_frames)
    mask = repeat(jnp.asarray(still_mask), "b h w c -> b t h w c", t=num_frames)
    return make_condition(video, mask)


TRAINING_KINDS = ("i2v", "inpaint", "cinemagraph", "none")


def random_training_condition(video: jax.Array, key: jax.Array,
                              kinds: tuple[str, ...] = TRAINING_KINDS) -> jax.Array:
    """A random `<C, M>` per clip for training a conditional STUNet (jit-friendly).

    video: (B, T, H, W, K) float, the clean clip. Each clip draws one of `kinds`:
      'i2v': its first frame is given; 'inpaint': all but a random box (on every frame)
      is given; 'cinemagraph': C = its first frame on every frame, given outside a random
      box (the box moves); 'none': nothing is given (M = 0, plain text-to-video).
    Boxes cover 1/4 to 3/4 of each side. Returns cond (B, T, H, W, K + 1).
    """
    unknown = [k for k in kinds if k not in TRAINING_KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds={kinds!r}; choose a non-empty subset of {TRAINING_KINDS}.")
    if np.ndim(video) != 5:
        raise ValueError(f"video must be (B, T, H, W, C), got shape {np.shape(video)}.")
    video = jnp.asarray(video)
    b, t, h, w, _ = video.shape
    k_kind, k_size, k_pos = jax.random.split(key, 3)
    kind = jnp.asarray([TRAINING_KINDS.index(k) for k in kinds])[
        jax.random.randint(k_kind, (b,), 0, len(kinds))]
    # Random boxes: side lengths in [1/4, 3/4] of H / W, placed uniformly.
    sides = jax.random.uniform(k_size, (b, 2), minval=0.25, maxval=0.75) * jnp.array([h, w])
    sides = jnp.maximum(jnp.round(sides), 1)
    starts = jnp.floor(jax.random.uniform(k_pos, (b, 2)) * (jnp.array([h, w]) - sides + 1))
    rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
    in_rows = (rows >= starts[:, :1]) & (rows < starts[:, :1] + sides[:, :1])
    in_cols = (cols >= starts[:, 1:]) & (cols < starts[:, 1:] + sides[:, 1:])
    outside_box = ~(rearrange(in_rows, "b h -> b 1 h 1 1")
                    & rearrange(in_cols, "b w -> b 1 1 w 1"))
    first_frame_only = rearrange(jnp.arange(t) == 0, "t -> 1 t 1 1 1")
    is_kind = lambda name: rearrange(kind == TRAINING_KINDS.index(name), "b -> b 1 1 1 1")
    mask = ((is_kind("i2v") & first_frame_only)
            | ((is_kind("inpaint") | is_kind("cinemagraph")) & outside_box))
    first = repeat(video[:, 0], "b h w c -> b t h w c", t=t)
    content = jnp.where(is_kind("cinemagraph"), first, video)
    return make_condition(content, jnp.broadcast_to(mask, (b, t, h, w, 1)))
