"""How a clip moves, read from its pixels: one global Lucas-Kanade velocity per clip.

A label-free check of a sampled clip against the motion it was asked for (the planner's
velocity): best of K can keep the candidate whose measured motion agrees with the plan
(`SamplingConfig.candidate_score='motion'`), or the one whose change that single motion
explains best (`motion_coherence`, `candidate_score='coherence'`: objects that keep their
shape and colour while they travel). Nothing here knows about shapes or colours.

Brightness constancy, `I_t + v . grad I = 0`, solved in least squares for one velocity
`v = (vy, vx)` over every pixel, channel and pair of consecutive frames (Lucas & Kanade
1981, with the whole clip as the window). Static, flat regions have no gradient and no
change, so they do not pull `v` towards zero; a moving object's edges decide it. The clip
can first be mean-pooled `pool` x `pool`, to keep larger displacements in the linear range
of the constraint (velocities are returned in px of the input).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import reduce


def _total(a: jax.Array) -> jax.Array:
    """(B, ...) -> (B,): the sum over everything but the batch axis (5-D terms)."""
    return jnp.sum(a, axis=(1, 2, 3, 4))


def _brightness_terms(clips: jax.Array, pool: int) -> tuple[jax.Array, ...]:
    """(gy, gx, dt) over the inner pixels of `pool` x `pool`-pooled clips, each
    (B, T - 1, H' - 2, W' - 2, C): the spatial gradient between frames k and k + 1 and the
    change from frame k to k + 1."""
    x = reduce(clips.astype(jnp.float32), "b t (h p) (w q) c -> b t h w c", "mean",
               p=pool, q=pool)
    mid = 0.5 * (x[:, 1:] + x[:, :-1])  # the gradient between frames k and k + 1
    dt = x[:, 1:] - x[:, :-1]
    gy = 0.5 * (jnp.roll(mid, -1, axis=2) - jnp.roll(mid, 1, axis=2))
    gx = 0.5 * (jnp.roll(mid, -1, axis=3) - jnp.roll(mid, 1, axis=3))
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # no wrap-around edges
    return gy[inner], gx[inner], dt[inner]


def _solve_velocity(gy: jax.Array, gx: jax.Array, dt: jax.Array, ridge: float) -> jax.Array:
    """(B, 2): the least-squares (vy, vx) of `dt + vy gy + vx gx = 0`, in pooled px."""
    a = jnp.stack([jnp.stack([_total(gy * gy), _total(gy * gx)], -1),
                   jnp.stack([_total(gy * gx), _total(gx * gx)], -1)], -2)  # (B, 2, 2)
    b = -jnp.stack([_total(gy * dt), _total(gx * dt)], -1)  # (B, 2)
    scale = jnp.trace(a, axis1=-2, axis2=-1)[:, None, None] / 2.0 + 1e-12
    return jnp.linalg.solve(a + ridge * scale * jnp.eye(2), b[..., None])[..., 0]


def clip_velocity(clips: jax.Array, pool: int = 1, ridge: float = 1e-3) -> jax.Array:
    """`clips: (B, T, H, W, C)` (any range; H, W divisible by `pool`) -> `(B, 2)` the
    least-squares (vy, vx) in px per frame of the input (y down)."""
    return _solve_velocity(*_brightness_terms(clips, pool), ridge) * pool


def motion_coherence(clips: jax.Array, pool: int = 1, ridge: float = 1e-3) -> jax.Array:
    """`clips: (B, T, H, W, C)` -> `(B,)` in [0, 1]: the share of the clip's frame-to-frame
    change that its one global velocity (`clip_velocity`) explains, `1 - sum(r^2) /
    sum(dt^2)` with `r = dt + v . grad` (the fit's R^2). Near 1 when the content only
    translates; lower when objects split, merge, change colour or shape, or flicker; 0 for a
    clip that does not change at all. Knows nothing of the prompt."""
    gy, gx, dt = _brightness_terms(clips, pool)
    v = _solve_velocity(gy, gx, dt, ridge)
    r = dt + v[:, 0, None, None, None, None] * gy + v[:, 1, None, None, None, None] * gx
    change = _total(dt * dt)
    return jnp.where(change > 1e-12, 1.0 - _total(r * r) / jnp.maximum(change, 1e-12), 0.0)


def motion_agreement(clips: jax.Array, planned: jax.Array, pool: int = 1) -> jax.Array:
    """`(B,)` in [-1, 1]: `v . p / max(|v|, |p|)^2` for each clip's measured velocity v
    (`clip_velocity`) and its `planned: (B, 2)` one p; 1 only when v = p, 0 for a clip that
    stands still, < 0 when it moves against the plan."""
    v = clip_velocity(clips, pool)
    norm = jnp.maximum(jnp.sum(v * v, -1), jnp.sum(planned * planned, -1))
    return jnp.sum(v * planned, -1) / jnp.maximum(norm, 1e-12)
