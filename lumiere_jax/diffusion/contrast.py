"""Caption contrast on time-reversal pairs: a denoiser that must tell "left" from "right".

A batch of reversal pairs (`data.time_reversal_pairs`) holds, in rows `2i, 2i + 1`, a clip
and itself played backwards with every direction in its caption reversed, noised with the
same t and the same noise played backwards. Denoising each row once with its own caption
and once with its pair's caption (`swap_pairs`) gives two losses that differ only through
the direction words. A diffusion model's loss is a bound on `-log p(x | caption)`, so

    p(own caption | x_t) = sigmoid(sharpness * (loss_swapped - loss_own))

is a two-way classifier read off the denoiser itself (a diffusion classifier, Li et al.
2023, "Your diffusion model is secretly a zero-shot classifier"). Its cross-entropy,
`softplus(sharpness * (loss_own - loss_swapped))`, added to the denoising loss, pushes the
prediction under "right" towards rightward motion and under "left" towards leftward
motion. The plain loss wants the same thing, but knowing the direction lowers it by
well under 1% at the noise levels where the direction is chosen, a gradient lost among
the rest (pretrained/moving_shapes/README.md); the contrast has a gradient of order one
until the denoiser separates the pair, then saturates. Applied only at `t >= min_t`:
below it the noisy clip shows its own motion, and a wrong caption could only be
"detected", not followed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange


def swap_pairs(x: jax.Array) -> jax.Array:
    """Rows `2i` and `2i + 1` exchanged: `(B, ...) -> (B, ...)`, B even."""
    return rearrange(rearrange(x, "(b pair) ... -> b pair ...", pair=2)[:, ::-1],
                     "b pair ... -> (b pair) ...")


def caption_contrast(loss_own: jax.Array, loss_swapped: jax.Array, t: jax.Array,
                     sharpness: float, min_t: float) -> jax.Array:
    """Per-row cross-entropy of the own caption against the pair's: `(B,)` losses and
    times -> `(B,)`, `softplus(sharpness * (own - swapped))` where `t >= min_t`, else 0."""
    return jnp.where(t >= min_t, jax.nn.softplus(sharpness * (loss_own - loss_swapped)), 0.0)
