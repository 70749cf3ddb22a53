"""An object reader: which objects a clip shows, which way each colour moves, for best of K.

Two small CNNs, max- and mean-pooled over the image, read three groups of sigmoid outputs:

- pairs `(C*S)`: an object of this (colour, shape) is in the clip (a per-frame CNN, mean
  over the clip's frames);
- repeats `(C)`: two or more objects of this colour (same network, mean-pooled too, so
  it can count);
- motions `(C*D)`: an object of this colour moves this way (a CNN over frame triplets
  (t, t+4, t+8) stacked as 9 channels, so a displacement is a local pattern; mean over t).

It is trained on rendered clips with labels from the renderer (`training.object_reader`),
and scores a sampled candidate by the log-probability that it shows what the prompt says:
each named object's (colour, shape) and (colour, direction), and only one object of each
named colour; the way text-to-image systems rerank samples with a learned image-text
score (DALL-E's CLIP reranking).

    reader = pretrained.load_object_reader("pretrained/moving_shapes")   # or read_object_reader
    index, want = reader.named_terms(["a red circle moving right"])      # (1, M) each
    scores = reader.scores(reader.params, clips, index, want)            # (B,) log p
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FRAME_WIDTHS = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1))  # (channels, stride), 3x3 convs
MOTION_WIDTHS = ((32, 1), (32, 2), (64, 1), (64, 2), (64, 1))
TRIPLET = (0, 4, 8)  # frame offsets the motion CNN sees at once
MAX_OBJECTS = 2  # object phrases read per prompt (moving_shapes captions name at most 2)
TERMS_PER_OBJECT = 3  # (colour, shape), (colour, direction), not repeated
MIN_FRAMES = TRIPLET[-1] + 1


def _pooled_features(h: jax.Array, widths: tuple[tuple[int, int], ...]) -> jax.Array:
    """`(N, H, W, C)` -> `(N, 2 * widths[-1][0])`: 3x3 conv + GroupNorm + SiLU layers, then
    the max and the mean over the image."""
    for width, stride in widths:
        h = nn.silu(nn.GroupNorm(4)(nn.Conv(width, (3, 3), strides=stride)(h)))
    return jnp.concatenate([h.max(axis=(1, 2)), h.mean(axis=(1, 2))], axis=-1)


class ObjectReaderNet(nn.Module):
    """`(B, T, H, W, 3)` in [-1, 1], T >= 9 -> `(B, C*S + C*D + C)` logits: pairs, motions,
    repeats. `frames` / `starts` (int arrays) pick the frames and triplet starts read
    (training reads a few); default all."""

    num_colors: int
    num_shapes: int
    num_directions: int

    @nn.compact
    def __call__(self, clips: jax.Array, frames: Any = None, starts: Any = None) -> jax.Array:
        b, t = clips.shape[:2]
        frames = np.arange(t) if frames is None else frames
        starts = np.arange(t - TRIPLET[-1]) if starts is None else starts
        c = self.num_colors
        picked = clips[:, frames]  # (B, F, H, W, 3)
        h = _pooled_features(picked.reshape((-1,) + clips.shape[2:]), FRAME_WIDTHS)
        h = nn.silu(nn.Dense(128)(h))
        frame_out = nn.Dense(c * self.num_shapes + c)(h).reshape(b, -1, c * self.num_shapes + c)
        frame_out = frame_out.mean(1)
        triplets = jnp.concatenate([clips[:, starts + o] for o in TRIPLET], axis=-1)
        m = _pooled_features(triplets.reshape((-1,) + triplets.shape[2:]), MOTION_WIDTHS)
        m = nn.silu(nn.Dense(128, name="motion_hidden")(m))
        motions = nn.Dense(c * self.num_directions, name="motion_out")(m)
        motions = motions.reshape(b, -1, c * self.num_directions).mean(1)
        pairs, repeats = frame_out[:, :c * self.num_shapes], frame_out[:, c * self.num_shapes:]
        return jnp.concatenate([pairs, motions, repeats], axis=-1)


def object_phrases(prompt: str) -> list[str]:
    """A prompt split into its objects' phrases at " and a " (as the motion planner does),
    without a trailing "on a ... background"."""
    prompt = re.sub(r"\s+on an?\s+\w+\s+background\s*$", "", prompt.strip().lower())
    return re.split(r"\s+and\s+(?=an?\s)", prompt)


@dataclasses.dataclass(frozen=True)
class ObjectReader:
    """`colors`, `shapes`: the words it knows; `directions`: the direction phrases ("left",
    "up and to the left", ...). Output index: pairs (colour * len(shapes) + shape), then
    motions (colour * len(directions) + direction), then repeats (colour). `params`: the
    `ObjectReaderNet` weights."""

    colors: tuple[str, ...]
    shapes: tuple[str, ...]
    directions: tuple[str, ...]
    params: Any

    @property
    def net(self) -> ObjectReaderNet:
        return ObjectReaderNet(len(self.colors), len(self.shapes), len(self.directions))

    @property
    def num_pairs(self) -> int:
        return len(self.colors) * len(self.shapes)

    @property
    def groups(self) -> dict[str, slice]:
        """The outputs by group, in order: 'pairs', 'motions', 'repeats'."""
        motions = self.num_pairs + len(self.colors) * len(self.directions)
        return {"pairs": slice(0, self.num_pairs), "motions": slice(self.num_pairs, motions),
                "repeats": slice(motions, motions + len(self.colors))}

    @property
    def num_outputs(self) -> int:
        return self.groups["repeats"].stop

    def pair_index(self, color: str, shape: str) -> int:
        return self.colors.index(color) * len(self.shapes) + self.shapes.index(shape)

    def motion_index(self, color: str, direction: str) -> int:
        return (self.groups["motions"].start + self.colors.index(color) * len(self.directions)
                + self.directions.index(direction))

    def repeat_index(self, color: str) -> int:
        return self.groups["repeats"].start + self.colors.index(color)

    def _direction(self, phrase: str) -> str | None:
        """The direction phrase after "moving [slowly|quickly] " (the longest that ends it)."""
        if " moving " not in f" {phrase} ":
            return None
        tail = phrase.split("moving", 1)[1].strip()
        found = [d for d in self.directions if tail == d or tail.endswith(" " + d)]
        return max(found, key=len) if found else None

    def named_objects(self, prompt: str) -> list[tuple[str, str | None, str | None]]:
        """(colour, shape or None, direction or None) of each of the prompt's first
        MAX_OBJECTS object phrases that names a colour the reader knows."""
        named = []
        for phrase in object_phrases(prompt)[:MAX_OBJECTS]:
            words = phrase.split()
            color = next((w for w in words if w in self.colors), None)
            if color is not None:
                named.append((color, next((w for w in words if w in self.shapes), None),
                              self._direction(phrase)))
        return named

    def named_terms(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per prompt, what its object phrases say, as output indices and wanted signs:
        int32 `index` and float32 `want` `(B, MAX_OBJECTS * 3)`; per phrase naming a colour,
        its (colour, shape) pair (+1) if it names a shape, its (colour, direction) (+1) if
        it names a direction, and the colour's repeat output (-1: one object of it) if no
        other phrase names that colour. Unused slots have want 0."""
        index = np.zeros((len(prompts), MAX_OBJECTS * TERMS_PER_OBJECT), np.int32)
        want = np.zeros(index.shape, np.float32)
        for row, prompt in enumerate(prompts):
            named = self.named_objects(prompt)
            colors = [c for c, _, _ in named]
            for n, (color, shape, direction) in enumerate(named):
                slot = n * TERMS_PER_OBJECT
                if shape is not None:
                    index[row, slot], want[row, slot] = self.pair_index(color, shape), 1.0
                if direction is not None:
                    index[row, slot + 1] = self.motion_index(color, direction)
                    want[row, slot + 1] = 1.0
                if colors.count(color) == 1:
                    index[row, slot + 2], want[row, slot + 2] = self.repeat_index(color), -1.0
        return index, want

    def logits(self, params: Any, clips: jax.Array) -> jax.Array:
        """`clips (B, T, H, W, 3)` in [-1, 1], T >= 9 -> `(B, num_outputs)` logits."""
        if clips.shape[1] < MIN_FRAMES:
            raise ValueError(f"the object reader reads clips of at least {MIN_FRAMES} frames "
                             f"(its motion CNN sees frames t, t+4, t+8); got {clips.shape[1]}")
        return self.net.apply({"params": params}, clips)

    def scores(self, params: Any, clips: jax.Array, index: jax.Array, want: jax.Array
               ) -> jax.Array:
        """`(B,)`: the sum over each clip's terms (`named_terms`) of log sigmoid(want * logit),
        the log-probability that the clip shows what its prompt says; 0 where it names
        nothing."""
        picked = jnp.take_along_axis(self.logits(params, clips), index, axis=1)
        return jnp.sum(jnp.where(want != 0, jax.nn.log_sigmoid(want * picked), 0.0), axis=1)

    def init_params(self, key: jax.Array, clip_shape: tuple[int, ...]) -> Any:
        """Fresh weights for clips of `clip_shape` = (T, H, W, 3), T >= 9."""
        return self.net.init(key, jnp.zeros((1,) + tuple(clip_shape)))["params"]
