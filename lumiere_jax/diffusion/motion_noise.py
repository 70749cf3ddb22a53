"""Initial noise whose shared part translates over the frames: motion from the noise.

The demo STUNet draws the motion its starting noise suggests and ignores the direction
word (pretrained/moving_shapes/README.md). Starting the base sampler from noise that
itself moves the prompt's way (as in noise-warping motion control, e.g. Go-with-the-Flow,
Burgert et al. 2025) makes the drawn motion follow it:

    x_k = sqrt(c) * shift(z, floor((k - (T - 1) / 2) * v + 1/2)) + sqrt(1 - c) * e_k

z: one (H, W, C) Gaussian field per clip, e_k: fresh Gaussian noise per frame, shift: a
circular roll by whole pixels (so every frame is still exactly N(0, 1) per element),
v = (dy, dx) pixels per frame (y down), c: the correlation of the shared part in [0, 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def frame_offsets(num_frames: int, velocity: jax.Array) -> jax.Array:
    """`velocity: (B, 2)` pixels per frame -> `(B, T, 2)` whole-pixel shifts, centred on
    the middle of the clip."""
    t = jnp.arange(num_frames, dtype=jnp.float32) - (num_frames - 1) / 2.0
    # floor(x + 1/2), not round-half-to-even, so equal steps stay equal (0.5 -> 1, 1.5 -> 2)
    return jnp.floor(t[None, :, None] * velocity[:, None, :] + 0.5).astype(jnp.int32)


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
