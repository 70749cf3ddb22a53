"""A motion planner: prompt -> how far (and which way) the scene moves over a clip.

A ridge regression from a prompt's words (their counts and pairwise products, so that
"quickly" can scale "right") to its objects' mean travel over the clip,
as a fraction of the frame, `(dy, dx)` with y down; fitted on training captions and the
travel stored with each training clip (`scripts/fit_motion_planner.py`). The cascade turns
the travel into translating initial noise for the base stage
(`diffusion.motion_noise`, `SamplingConfig.motion_noise`), the way layout planners feed
layout-conditioned video models (LLM-grounded Video Diffusion, Lian et al. 2024).

    planner = MotionPlanner.fit(captions, travel)        # travel: (N, 2)
    planner(["a red circle moving right"])               # (1, 2) ~ [[0.0, 0.37]]
    planner.save(path); MotionPlanner.load(path)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import numpy as np

from lumiere_jax.text.phrases import split_objects


def words(prompt: str) -> list[str]:
    """Lower-cased whitespace words of a prompt."""
    return prompt.lower().split()


def num_features(vocabulary_size: int) -> int:
    """F for V words: counts, pairwise products (i <= j) and a constant."""
    return vocabulary_size + vocabulary_size * (vocabulary_size + 1) // 2 + 1


@dataclasses.dataclass(frozen=True)
class MotionPlanner:
    """`vocabulary`: the words it knows (others are ignored); `weights: (F, 2)`, one travel
    vector per feature (`features`: F = V + V (V + 1) / 2 + 1)."""

    vocabulary: tuple[str, ...]
    weights: np.ndarray

    def __post_init__(self):
        if self.weights.shape != (num_features(len(self.vocabulary)), 2):
            raise ValueError(f"MotionPlanner: weights must be (F, 2) = "
                             f"({num_features(len(self.vocabulary))}, 2) for "
                             f"{len(self.vocabulary)} words, got {self.weights.shape}")

    def features(self, prompts: Sequence[str]) -> np.ndarray:
        """`(B, F)`: word counts `c (V)`, products `c_i c_j` (i <= j), a constant 1."""
        index = {w: i for i, w in enumerate(self.vocabulary)}
        counts = np.zeros((len(prompts), len(self.vocabulary)), np.float64)
        for row, prompt in enumerate(prompts):
            for w in words(prompt):
                if w in index:
                    counts[row, index[w]] += 1.0
        i, j = np.triu_indices(len(self.vocabulary))
        return np.concatenate([counts, counts[:, i] * counts[:, j],
                               np.ones((len(prompts), 1))], axis=1)

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        """prompts -> `(B, 2)` float32 travel over the clip, fraction of the frame: the mean
        over each prompt's object phrases."""
        return np.stack([(self.features(split_objects(p)) @ self.weights).mean(0)
                         for p in prompts]).astype(np.float32)

    def velocity(self, prompts: Sequence[str], image_size: int, num_frames: int) -> np.ndarray:
        """`(B, 2)` pixels per frame at `image_size` px over `num_frames` frames."""
        return self(prompts) * (image_size / max(num_frames - 1, 1))

    def object_velocities(self, prompts: Sequence[str], image_size: int, num_frames: int,
                          max_objects: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """Each object phrase's own travel (not the mean): velocity float32 `(B, N, 2)` px
        per frame and present bool `(B, N)`, N = `max_objects` (phrases past it dropped)."""
        velocity = np.zeros((len(prompts), max_objects, 2), np.float32)
        present = np.zeros((len(prompts), max_objects), bool)
        for row, prompt in enumerate(prompts):
            phrases = split_objects(prompt)[:max_objects]
            travel = self.features(phrases) @ self.weights  # (n, 2)
            velocity[row, :len(phrases)] = travel * (image_size / max(num_frames - 1, 1))
            present[row, :len(phrases)] = True
        return velocity, present

    @classmethod
    def fit(cls, captions: Sequence[str], travel: np.ndarray, ridge: float = 1e-3
            ) -> "MotionPlanner":
        """Least squares (+ `ridge` * |w|^2 on the word weights) of `travel: (N, 2)` on the
        features of the captions that name one object (others are left out: their travel
        is a mean over objects); the vocabulary is every word seen."""
        travel = np.asarray(travel, np.float64)
        if travel.shape != (len(captions), 2):
            raise ValueError(f"MotionPlanner.fit: travel must be (N, 2) = ({len(captions)}, 2),"
                             f" got {travel.shape}")
        single = [i for i, c in enumerate(captions) if len(split_objects(c)) == 1]
        if not single:
            raise ValueError("MotionPlanner.fit: no caption names a single object")
        captions, travel = [captions[i] for i in single], travel[single]
        vocabulary = tuple(sorted({w for c in captions for w in words(c)}))
        x = cls(vocabulary, np.zeros((num_features(len(vocabulary)), 2))).features(captions)
        penalty = ridge * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0
        weights = np.linalg.solve(x.T @ x + penalty, x.T @ travel)
        return cls(vocabulary, weights)

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.numpy import save_file
        save_file({"weights": self.weights.astype(np.float32)}, os.fspath(path),
                  metadata={"vocabulary": json.dumps(list(self.vocabulary))})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MotionPlanner":
        """From a safetensors file written by `save`; ValueError naming the file otherwise."""
        from safetensors import SafetensorError, safe_open

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"{path!r} (motion planner) is missing")
        try:
            with safe_open(path, framework="numpy") as f:
                vocabulary = tuple(json.loads((f.metadata() or {})["vocabulary"]))
                weights = f.get_tensor("weights")
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path!r} is not a motion planner file (safetensors with "
                             f"'weights' and a 'vocabulary' entry: {e})") from e
        try:
            return cls(vocabulary, weights.astype(np.float64))
        except ValueError as e:
            raise ValueError(f"{path!r}: {e}") from e
