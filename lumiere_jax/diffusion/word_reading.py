"""Which of several interchangeable words a clip shows, read off the denoiser itself.

A diffusion classifier (Li et al. 2023, "Your diffusion model is secretly a zero-shot
classifier"; Clark & Jaini 2023): a denoising loss bounds `-log p(x | prompt)`, so noising
a clip at a few levels t and denoising it under its prompt and under the same prompt with
one word swapped for each alternative ("a red circle ..." -> "a red square ...", with the
same noise) ranks the alternatives by how well each explains the clip. The word whose
prompt denoises best is the word the model reads in the clip.

It needs no labels, no other network and no training: only the model and the words
that may stand in for each other (the demo's four shape names). On the shipped demo base it
reads the shape of rendered clips right in 0.98 of 64 (t = 0.5 ... 0.8), yet it reads the
prompt's shape in 0.93 of its own samples whether the analyzer calls their shape right or
wrong, so it cannot pick among them (`benchmarks/shape_reading.py`; README "Design notes:
the base reads shapes it does not draw").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from einops import reduce, repeat

from lumiere_jax.diffusion.objectives import DenoiseFn, per_example_loss
from lumiere_jax.diffusion.schedules import Schedule

__all__ = ["word_alternatives", "read_words", "reads_own_word"]


def word_alternatives(prompt: str, words: Sequence[str]) -> tuple[list[str], int]:
    """The prompt with its first whole word from `words` (case-insensitive) replaced by
    each of `words` in turn, and the index of the prompt's own word; `len(words)` copies of
    the prompt and -1 when it holds none of them (nothing to read)."""
    lowered = [w.lower() for w in words]
    match = re.search(r"\b(" + "|".join(map(re.escape, lowered)) + r")\b", prompt.lower())
    if match is None:
        return [prompt] * len(words), -1
    start, end = match.span()
    return ([prompt[:start] + w + prompt[end:] for w in words],
            lowered.index(match.group(0)))


def read_words(denoiser_for: Callable[[jax.Array, jax.Array], DenoiseFn], clips: jax.Array,
               text: jax.Array, mask: jax.Array, times: Sequence[float], key: jax.Array,
               schedule: Schedule, prediction: str) -> jax.Array:
    """Each clip's denoising loss under each alternative prompt, averaged over `times`.

    denoiser_for(text (M, L, D), mask (M, L)) -> `fn(x_t, t)` for M rows under those
    prompts. clips: (N, T, H, W, C) clean, in [-1, 1]. text: (N, A, L, D), mask (N, A, L):
    the A alternative prompts of each clip. Every clip is noised at every t with the same
    noise (one draw per t from `key`), so the A losses of a clip differ only through the
    words. Returns (N, A): the lower, the better that prompt explains the clip.
    """
    n, a = text.shape[:2]
    s = len(times)
    eps = jax.random.normal(key, (s,) + clips.shape[1:], clips.dtype)
    loss = per_example_loss(
        denoiser_for(repeat(text, "n a l d -> (n a s) l d", s=s),
                     repeat(mask, "n a l -> (n a s) l", s=s)),
        repeat(clips, "n ... -> (n a s) ...", a=a, s=s), key, schedule, prediction,
        t=repeat(jnp.asarray(times, jnp.float32), "s -> (n a s)", n=n, a=a),
        eps=repeat(eps, "s ... -> (n a s) ...", n=n, a=a))
    return reduce(loss, "(n a s) -> n a", "mean", a=a, s=s)


def reads_own_word(losses: jax.Array, own: jax.Array) -> jax.Array:
    """losses (N, A) from `read_words`, own (N,) int (-1: no word) -> (N,) bool: the own
    word's prompt has the lowest loss (False where there is no own word)."""
    return (own >= 0) & (jnp.argmin(losses, axis=1) == own)
