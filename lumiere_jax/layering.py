"""Layer clips that each show one object into one clip that shows them all.

A prompt that names several objects, each moving its own way, is drawn one object phrase
at a time (`text.phrases.object_prompts`: each with the prompt's background), and the
clips are stacked back to front: the first clip whole, then the foreground of each later
one on top. A clip's background is the median colour of its border pixels over all its
frames; its foreground, the pixels whose colour is further than `threshold` from it.

    layered = layer_clips(clips, present)   # (B, N, T, H, W, 3), (B, N) -> (B, T, H, W, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Foreground: summed |RGB difference| from the background above this, in [-1, 1] units:
# 89.25 levels of 255 summed over the channels (moving_shapes' colours are >= 162 from every
# background); not a multiple of half a level, so no uint8 pixel sits on it.
FOREGROUND_THRESHOLD = 0.7


def background_color(clip: jax.Array) -> jax.Array:
    """`(T, H, W, 3)` -> `(3,)`: the median colour of the border pixels of all frames."""
    border = jnp.concatenate([clip[:, 0], clip[:, -1], clip[:, 1:-1, 0], clip[:, 1:-1, -1]],
                             axis=1)  # (T, 2W + 2(H - 2), 3)
    return jnp.median(border.reshape(-1, clip.shape[-1]), axis=0)


def foreground(clip: jax.Array, threshold: float = FOREGROUND_THRESHOLD) -> jax.Array:
    """`(T, H, W, 3)` -> bool `(T, H, W)`: pixels further than `threshold` (summed absolute
    difference over the channels) from the clip's background colour."""
    return jnp.abs(clip - background_color(clip)).sum(-1) > threshold


def layer_clips(clips: jax.Array, present: jax.Array,
                threshold: float = FOREGROUND_THRESHOLD) -> jax.Array:
    """`clips: (B, N, T, H, W, 3)` in [-1, 1], clip n of row b drawn for object n;
    `present: (B, N)` bool (clip 0 is always the bottom layer) -> `(B, T, H, W, 3)`:
    clip 0 with the foreground of every later present clip on top, in order."""

    def one(row: jax.Array, keep: jax.Array) -> jax.Array:  # (N, T, H, W, 3), (N,)
        def add(out, layer):
            clip, on = layer
            mask = foreground(clip, threshold) & on
            return jnp.where(mask[..., None], clip, out), None

        out, _ = jax.lax.scan(add, row[0], (row[1:], keep[1:]))
        return out

    return jax.vmap(one)(clips, present.astype(bool))
