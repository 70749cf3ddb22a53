"""Initial noise whose shared part translates over the frames: motion from the noise.

The demo STUNet draws the motion its starting noise suggests and ignores the direction
word (pretrained/moving_shapes/README.md). Starting the base sampler from noise that
itself moves the prompt's way (as in noise-warping motion control, e.g. Go-with-the-Flow,
Burgert et al. 2025) makes the drawn motion follow it:

    x_k = sqrt(c) * shift(z, floor((k - (T - 1) / 2) * v + 1/2)) + sqrt(1 - c) * e_k

z: one (H, W, C) Gaussian field per clip, e_k: fresh Gaussian noise per frame, shift: a
circular roll by whole pixels (so every frame is still exactly N(0, 1) per element),
v = (dy, dx) pixels per frame (y down), c: the correlation of the shared part in [0, 1).

`object_noise` is the per-object form (Go-with-the-Flow's noise warped by the flow, for
straight rigid tracks): the shared field stays put, except inside each object's disc,
where it travels with that object. `plan_tracks` draws such tracks for sampling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# How the shared part of the noise moves: all of it ('field', `translating_noise`) or one
# disc per object ('objects', `object_noise`).
MOTION_LAYOUTS = ("field", "objects")


def frame_offsets(num_frames: int, velocity: jax.Array) -> jax.Array:
    """`velocity: (B, 2)` pixels per frame -> `(B, T, 2)` whole-pixel shifts, centred on
    the middle of the clip."""
    t = jnp.arange(num_frames, dtype=jnp.float32) - (num_frames - 1) / 2.0
    # floor(x + 1/2), not round-half-to-even, so equal steps stay equal (0.5 -> 1, 1.5 -> 2)
    return jnp.floor(t[None, :, None] * velocity[:, None, :] + 0.5).astype(jnp.int32)


def carried_frames(image: jax.Array, velocity: jax.Array, num_frames: int) -> jax.Array:
    """`image: (B, H, W, C)`, `velocity: (B, 2)` (dy, dx) px per frame -> `(B, T, H, W, C)`:
    frame k is the image moved as `translating_noise`'s shared field moves from frame 0 to
    frame k (about k * v whole pixels; frame 0 is the image itself), the pixels it uncovers
    copied from the nearest edge. Image-to-video's start along the planned motion
    (`SamplingConfig.image_start`)."""
    offsets = frame_offsets(num_frames, velocity.astype(jnp.float32))
    offsets = offsets - offsets[:, :1]  # frame 0 stays put
    h, w = image.shape[1:3]

    def moved(img: jax.Array, offset: jax.Array) -> jax.Array:  # (H, W, C), (2,)
        rows = jnp.clip(jnp.arange(h) - offset[0], 0, h - 1)
        cols = jnp.clip(jnp.arange(w) - offset[1], 0, w - 1)
        return img[rows][:, cols]

    return jax.vmap(lambda img, o: jax.vmap(lambda oi: moved(img, oi))(o))(image, offsets)


def translating_noise(key: jax.Array, shape: tuple[int, ...], velocity: jax.Array,
                      correlation: float | jax.Array, dtype=jnp.float32) -> jax.Array:
    """`shape = (B, T, H, W, C)`, `velocity: (B, 2)` (dy, dx) px per frame -> noise of
    `shape`, each element N(0, 1), whose shared part (weight `correlation`, a float or one
    per clip, (B,)) moves by `velocity` each frame."""
    if len(shape) != 5:
        raise ValueError(f"translating_noise: shape must be (B, T, H, W, C), got {shape}")
    if velocity.shape != (shape[0], 2):
        raise ValueError(f"translating_noise: velocity must be (B, 2) = ({shape[0]}, 2), "
                         f"got {velocity.shape}")
    if isinstance(correlation, (int, float)) and not 0.0 <= correlation < 1.0:
        raise ValueError(f"translating_noise: correlation={correlation} must be in [0, 1)")
    k_shared, k_fresh = jax.random.split(key)
    shared = jax.random.normal(k_shared, (shape[0],) + tuple(shape[2:]), dtype)
    fresh = jax.random.normal(k_fresh, shape, dtype)
    offsets = frame_offsets(shape[1], velocity.astype(jnp.float32))

    def roll(field: jax.Array, offset: jax.Array) -> jax.Array:  # (H, W, C), (2,)
        return jnp.roll(field, (offset[0], offset[1]), axis=(0, 1))

    moving = jax.vmap(lambda z, o: jax.vmap(lambda oi: roll(z, oi))(o))(shared, offsets)
    c = jnp.reshape(jnp.asarray(correlation, jnp.float32), (-1, 1, 1, 1, 1))
    return (jnp.sqrt(c) * moving + jnp.sqrt(1.0 - c) * fresh).astype(dtype)


def training_motion_noise(key: jax.Array, shape: tuple[int, ...], velocity: jax.Array,
                          max_correlation: float, dtype=jnp.float32) -> jax.Array:
    """Train-time noise for a model sampled from `translating_noise`: clip b's shared part
    moves with its own true `velocity[b]` (px per frame) and has correlation
    c_b ~ U(0, max_correlation), so the model meets every mix from plain noise up. As in
    Go-with-the-Flow's fine-tuning, the model learns that noise whose shared part moves is
    still noise (no objects drawn where it happens to persist) and that it moves as the clip
    does."""
    k_c, k_noise = jax.random.split(key)
    c = jax.random.uniform(k_c, (shape[0],), jnp.float32, 0.0, max_correlation)
    return translating_noise(k_noise, shape, velocity, c, dtype)


def track_offsets(num_frames: int, velocity: jax.Array) -> jax.Array:
    """`velocity: (..., 2)` px per frame -> `(..., T, 2)` whole-pixel shifts from frame 0."""
    t = jnp.arange(num_frames, dtype=jnp.float32)
    return jnp.floor(t[:, None] * velocity[..., None, :] + 0.5).astype(jnp.int32)


def track_masks(tracks: jax.Array, num_frames: int, height: int, width: int) -> jax.Array:
    """`tracks: (B, N, 5)` = (y0, x0, vy, vx, r) px -> bool `(B, N, T, H, W)`: the pixels whose
    centres lie within r of object n's centre `(y0, x0) + k (vy, vx)` in frame k (r = 0: no
    object, empty)."""
    t = jnp.arange(num_frames, dtype=jnp.float32)
    centre = tracks[..., None, 0:2] + t[:, None] * tracks[..., None, 2:4]  # (B, N, T, 2)
    ys = jnp.arange(height, dtype=jnp.float32) + 0.5
    xs = jnp.arange(width, dtype=jnp.float32) + 0.5
    dy = ys[:, None] - centre[..., 0, None, None]
    dx = xs[None, :] - centre[..., 1, None, None]
    radius = tracks[..., 4, None, None, None]
    return (dy**2 + dx**2 <= radius**2) & (radius > 0)


def object_noise(key: jax.Array, shape: tuple[int, ...], tracks: jax.Array,
                 correlation: float | jax.Array, dtype=jnp.float32) -> jax.Array:
    """Noise warped by the objects' motion (Go-with-the-Flow's warped noise for rigid,
    straight tracks): one shared Gaussian field z per clip stays put over the frames (the
    background's flow is zero), except inside object n's disc (`track_masks`), where frame k
    shows z rolled by `floor(k v_n + 1/2)` whole pixels, so the noise there travels with the
    object; later objects lie on top. Frame k = sqrt(c) * that + sqrt(1 - c) * e_k, so every
    element is exactly N(0, 1).

    `shape = (B, T, H, W, C)`; `tracks: (B, N, 5)` (y0, x0, vy, vx, r) in pixels at frame 0
    (y down, r = 0: no object); `correlation`: a float in [0, 1) or one per clip, (B,)."""
    if len(shape) != 5:
        raise ValueError(f"object_noise: shape must be (B, T, H, W, C), got {shape}")
    if tracks.ndim != 3 or tracks.shape[0] != shape[0] or tracks.shape[2] != 5:
        raise ValueError(f"object_noise: tracks must be (B, N, 5) with B = {shape[0]}, "
                         f"got {tracks.shape}")
    if isinstance(correlation, (int, float)) and not 0.0 <= correlation < 1.0:
        raise ValueError(f"object_noise: correlation={correlation} must be in [0, 1)")
    b, t, h, w, _ = shape
    tracks = tracks.astype(jnp.float32)
    k_shared, k_fresh = jax.random.split(key)
    shared = jax.random.normal(k_shared, (b,) + tuple(shape[2:]), dtype)
    fresh = jax.random.normal(k_fresh, shape, dtype)
    offsets = track_offsets(t, tracks[..., 2:4])  # (B, N, T, 2)
    inside = track_masks(tracks, t, h, w)  # (B, N, T, H, W)

    def roll(field: jax.Array, offset: jax.Array) -> jax.Array:  # (H, W, C), (2,)
        return jnp.roll(field, (offset[0], offset[1]), axis=(0, 1))

    field = jnp.broadcast_to(shared[:, None], shape)
    for n in range(tracks.shape[1]):  # a static, small number of objects
        moved = jax.vmap(lambda z, o: jax.vmap(lambda oi: roll(z, oi))(o))(shared,
                                                                          offsets[:, n])
        field = jnp.where(inside[:, n, ..., None], moved, field)
    c = jnp.reshape(jnp.asarray(correlation, jnp.float32), (-1, 1, 1, 1, 1))
    return (jnp.sqrt(c) * field + jnp.sqrt(1.0 - c) * fresh).astype(dtype)


def training_object_noise(key: jax.Array, shape: tuple[int, ...], tracks: jax.Array,
                          max_correlation: float, dtype=jnp.float32) -> jax.Array:
    """`object_noise` with each clip's true `tracks` and c_b ~ U(0, max_correlation)."""
    k_c, k_noise = jax.random.split(key)
    c = jax.random.uniform(k_c, (shape[0],), jnp.float32, 0.0, max_correlation)
    return object_noise(k_noise, shape, tracks, c, dtype)


def plan_tracks(key: jax.Array, velocity: jax.Array, present: jax.Array, radius: float,
                num_frames: int, height: int, width: int) -> jax.Array:
    """Tracks for sampling: object n of clip b moves with `velocity[b, n]` (px per frame)
    from a start drawn uniformly where its disc of `radius` px stays inside the frame for
    the whole clip (the frame's centre if it cannot). `velocity: (B, N, 2)`, `present:
    (B, N)` bool -> `(B, N, 5)` tracks for `object_noise` (r = 0 where not present)."""
    travel = velocity * (num_frames - 1)
    extent = jnp.asarray([height, width], jnp.float32)
    lo = radius - jnp.minimum(travel, 0.0)
    hi = extent - radius - jnp.maximum(travel, 0.0)
    u = jax.random.uniform(key, velocity.shape, jnp.float32)
    start = jnp.where(hi >= lo, lo + u * (hi - lo), (extent - travel) / 2.0)
    r = jnp.where(present, jnp.float32(radius), 0.0)[..., None]
    return jnp.concatenate([start, velocity.astype(jnp.float32), r], axis=-1)
