"""An object reader: which (colour, shape) objects a clip shows, for best of K.

A small CNN reads each frame, max-pooled over the image (an object anywhere counts), into
one sigmoid per (colour, shape) pair; a clip's logits are the mean over its frames. It is
trained on rendered frames with labels from the renderer (`training.object_reader`), and
scores a sampled candidate by how sure it is that every object the prompt names is there,
the way text-to-image systems rerank samples with a learned image-text score (DALL-E's
CLIP reranking). It reads no motion: the pipeline pairs it with `motion_coherence`.

    reader = pretrained.load_object_reader("pretrained/moving_shapes")   # or read_object_reader
    pairs, present = reader.named_pairs(["a red circle moving right"])   # (1, 2) each
    scores = reader.scores(reader.params, clips, pairs, present)         # (B,) log p
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

WIDTHS = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1))  # (channels, stride) per 3x3 conv
MAX_OBJECTS = 2  # object phrases read per prompt (moving_shapes captions name at most 2)


class ObjectReaderNet(nn.Module):
    """`(B, T, H, W, 3)` in [-1, 1] -> `(B, P)` logits, one per (colour, shape) pair: the
    mean over frames of a per-frame CNN max-pooled over the image."""

    num_pairs: int

    @nn.compact
    def __call__(self, clips: jax.Array) -> jax.Array:
        b, t = clips.shape[:2]
        h = clips.reshape((b * t,) + clips.shape[2:])
        for width, stride in WIDTHS:
            h = nn.silu(nn.GroupNorm(4)(nn.Conv(width, (3, 3), strides=stride)(h)))
        h = h.max(axis=(1, 2))
        h = nn.Dense(self.num_pairs)(nn.silu(nn.Dense(128)(h)))
        return h.reshape(b, t, self.num_pairs).mean(1)


def object_phrases(prompt: str) -> list[str]:
    """A prompt split into its objects' phrases at " and a " (as the motion planner does)."""
    return re.split(r"\s+and\s+(?=an?\s)", prompt.strip().lower())


@dataclasses.dataclass(frozen=True)
class ObjectReader:
    """`colors`, `shapes`: the words it knows; pair index = colour index * len(shapes) +
    shape index. `params`: the `ObjectReaderNet` weights."""

    colors: tuple[str, ...]
    shapes: tuple[str, ...]
    params: Any

    @property
    def num_pairs(self) -> int:
        return len(self.colors) * len(self.shapes)

    def pair_index(self, color: str, shape: str) -> int:
        return self.colors.index(color) * len(self.shapes) + self.shapes.index(shape)

    def named_pairs(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per prompt, the (colour, shape) pair of each object phrase that names both:
        int32 `(B, MAX_OBJECTS)` pair indices and bool `(B, MAX_OBJECTS)` present."""
        pairs = np.zeros((len(prompts), MAX_OBJECTS), np.int32)
        present = np.zeros((len(prompts), MAX_OBJECTS), bool)
        for row, prompt in enumerate(prompts):
            n = 0
            for phrase in object_phrases(prompt):
                words = phrase.split()
                color = next((w for w in words if w in self.colors), None)
                shape = next((w for w in words if w in self.shapes), None)
                if color is not None and shape is not None and n < MAX_OBJECTS:
                    pairs[row, n], present[row, n] = self.pair_index(color, shape), True
                    n += 1
        return pairs, present

    def logits(self, params: Any, clips: jax.Array) -> jax.Array:
        """`clips (B, T, H, W, 3)` in [-1, 1] -> `(B, P)` logits."""
        return ObjectReaderNet(self.num_pairs).apply({"params": params}, clips)

    def scores(self, params: Any, clips: jax.Array, pairs: jax.Array, present: jax.Array
               ) -> jax.Array:
        """`(B,)`: the sum over each clip's named objects (`pairs`, `present`: `(B, N)`) of
        log p(an object of that colour and shape is in the clip); 0 where none is named."""
        log_p = jax.nn.log_sigmoid(self.logits(params, clips))
        picked = jnp.take_along_axis(log_p, pairs, axis=1)
        return jnp.sum(jnp.where(present, picked, 0.0), axis=1)

    def init_params(self, key: jax.Array, clip_shape: tuple[int, ...]) -> Any:
        """Fresh weights for clips of `clip_shape` = (T, H, W, 3)."""
        return ObjectReaderNet(self.num_pairs).init(key, jnp.zeros((1,) + tuple(clip_shape)))[
            "params"]
