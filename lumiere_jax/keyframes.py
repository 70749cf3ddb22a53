"""Keyframes for text-to-video: the T2I stage draws K images per prompt, the object reader
keeps the one it is surest shows the prompt's objects, and the pipeline animates that one
(image-to-video from the keyframe carried along the planned motion).

Text -> image -> video is how Emu Video (Girdhar et al. 2023) factorises text-to-video;
Lumiere draws every frame from text at once. On the shipped demo the T2I draws the
prompt's shape in one of 8 tries far more often than the base stage draws it in a clip,
and a still image is cheap to draw and to judge (README, "Design notes: text-to-video
through a keyframe").

    drawer = KeyframeDrawer.from_run(pretrained.load_stage(folder, "t2i"))
    images = drawer.draw(prompts, key, count=8, steps=32, guidance=3.0)  # (B, 8, H, W, 3) uint8
    scores = still_scores(reader, images, prompts)                      # (B, 8) log p
    keyframes = images[np.arange(len(prompts)), scores.argmax(1)]      # (B, H, W, 3)

A prompt that names several objects is drawn one object phrase at a time and layered
(`layering`); `plan_layered` picks its phrases' keyframes and stacking order together, by
the reader's score of each choice played as its plan (keyframes carried along the planned
motion, layered), so one object does not start where it hides another.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange, repeat

from lumiere_jax import runs
from lumiere_jax.diffusion.motion_noise import carried_frames
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import Schedule
from lumiere_jax.layering import layer_clips
from lumiere_jax.models.config import UNetConfig
from lumiere_jax.models.object_reader import MIN_FRAMES, TERMS_PER_OBJECT, ObjectReader
from lumiere_jax.sampling import TextEncoderFn, to_uint8, unet_model_fn
from lumiere_jax.xla_options import with_kernel_options

CPU_IMAGES_PER_CALL = 256  # as many images as the base stage's 16 clips of 16 frames


@dataclasses.dataclass(frozen=True)
class KeyframeDrawer:
    """A T2I (non-temporal) U-Net under its own text encoder, sampled on `schedule`."""

    config: UNetConfig
    params: Any
    text_encoder: TextEncoderFn
    schedule: Schedule
    prediction: str

    @classmethod
    def from_run(cls, run: tuple[Any, dict]) -> "KeyframeDrawer":
        """From a 't2i' run's (train config, `{'unet', 'text'}` weights)."""
        config, params = run
        if config.stage != "t2i":
            raise ValueError(f"keyframes are drawn by a 't2i' stage; got a {config.stage!r} run")
        return cls(runs.unet_config(config), params["unet"],
                   runs.text_encode_fn(config, params["text"]), runs.noise_schedule(config),
                   config.diffusion.prediction)

    def draw(self, prompts: Sequence[str], key: jax.Array, *, count: int, steps: int = 32,
             guidance: float = 3.0, images_per_call: int | None = None,
             progress: Any = None, xla_options: tuple[tuple[str, Any], ...] = ()
             ) -> np.ndarray:
        """uint8 `(B, count, H, W, 3)`: `count` images per prompt (`steps` DDIM steps,
        classifier-free guidance `guidance`). images_per_call: at most this many images
        per network call (None: 256 on CPU, the whole batch elsewhere). progress: None, or
        an object whose `callback('keyframes', steps)` gives the per-step function (the
        pipeline's `StageProgress`; part of the compiled function's key, so keep one).
        xla_options: XLA compiler options as (name, value) pairs (the pipeline passes its
        `SamplingConfig.xla_options`)."""
        text, mask = self.text_encoder(list(prompts))
        null_text, null_mask = self.text_encoder([""])
        if images_per_call is None and jax.default_backend() == "cpu":
            images_per_call = CPU_IMAGES_PER_CALL
        sampler = _t2i_sampler(self.config, self.schedule, self.prediction, tuple(xla_options))
        return np.asarray(sampler(
            self.params, jnp.asarray(text, jnp.float32), jnp.asarray(mask).astype(bool),
            jnp.asarray(null_text, jnp.float32), jnp.asarray(null_mask).astype(bool), key,
            count=count, steps=steps, guidance=float(guidance),
            images_per_call=images_per_call, progress=progress))


@functools.lru_cache(maxsize=None)
def _t2i_sampler(config: UNetConfig, schedule: Schedule, prediction: str,
                 xla_options: tuple[tuple[str, Any], ...]) -> Callable:
    """One jitted T2I sampler per (config, schedule, prediction, XLA options), shared by
    every drawer of them (the weights are an argument), so swapping weights (a style
    blend) recompiles nothing."""

    def run(params, text, mask, null_text, null_mask, key, *, count, steps, guidance,
            images_per_call, progress):
        text, mask = (repeat(a, "b ... -> (b k) ...", k=count) for a in (text, mask))
        fn = unet_model_fn(config, params, text, mask, guidance_scale=guidance,
                           null_text=null_text, null_mask=null_mask,
                           clips_per_call=images_per_call)
        k_noise, k_sample = jax.random.split(key)
        x = jax.random.normal(k_noise, (text.shape[0], config.image_size, config.image_size,
                                        3), jnp.float32)
        images = sample(lambda x, t: fn(x, t, None), x, k_sample, schedule=schedule,
                        num_steps=steps, prediction=prediction, clip="dynamic",
                        progress=progress and progress.callback("keyframes", steps))
        return rearrange(to_uint8(images), "(b k) h w c -> b k h w c", k=count)

    return jax.jit(run, static_argnames=("count", "steps", "guidance", "images_per_call",
                                         "progress"),
                   compiler_options=with_kernel_options(xla_options))


def still_terms(reader: ObjectReader, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`ObjectReader.named_terms` without the direction terms (a still image moves no way):
    each named object's (colour, shape), one object of each named colour; and nothing the
    prompt does not name: every (colour, shape) pair of a colour no object phrase names is
    absent (want -1). int32 `index` and float32 `want` `(B, MAX_OBJECTS * 3 + C * S)`.

    The T2I, trained on captions that often name two objects, draws a second object for
    a one-object phrase: without the absent terms in 10 of 66 picked keyframes, with them
    in 1 (README, "Design notes: text-to-video through a keyframe")."""
    index, want = reader.named_terms(prompts)
    direction = np.arange(want.shape[1]) % TERMS_PER_OBJECT == 1
    want = np.where(direction, 0.0, want)
    shapes = len(reader.shapes)
    absent_index = np.arange(reader.num_pairs, dtype=np.int32)[None].repeat(len(prompts), 0)
    absent_want = np.zeros(absent_index.shape, np.float32)
    for row, prompt in enumerate(prompts):
        named = {color for color, _, _ in reader.named_objects(prompt)}
        for c, color in enumerate(reader.colors):
            if color not in named:
                absent_want[row, c * shapes:(c + 1) * shapes] = -1.0
    return (np.concatenate([index, absent_index], 1),
            np.concatenate([want, absent_want], 1).astype(np.float32))


@functools.partial(jax.jit, static_argnames=("reader",))
def _still_scores(reader: ObjectReader, params: Any, images: jax.Array, index: jax.Array,
                  want: jax.Array) -> jax.Array:
    b, k = images.shape[:2]
    stills = repeat(images.astype(jnp.float32) / 127.5 - 1.0, "b k h w c -> (b k) t h w c",
                    t=MIN_FRAMES)
    rows = lambda a: repeat(a, "b m -> (b k) m", k=k)
    return reader.scores(params, stills, rows(index), rows(want)).reshape(b, k)


def still_scores(reader: ObjectReader, images: np.ndarray, prompts: Sequence[str]
                 ) -> np.ndarray:
    """`(B, K)`: the reader's log p that each of a prompt's `images` (uint8 `(B, K, H, W,
    3)`), held still, shows the prompt's objects (`still_terms`)."""
    index, want = still_terms(reader, prompts)
    return np.asarray(_still_scores(dataclasses.replace(reader, params=None), reader.params,
                                    jnp.asarray(images), jnp.asarray(index), jnp.asarray(want)))


# ---------------------------------------------------------------- several objects at once

LAYERED_CHOICES = 4  # each object phrase's best stills the joint pick of a layered prompt tries


def layered_choices(still: np.ndarray, present: np.ndarray, top: int = LAYERED_CHOICES
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The ways to draw a prompt of N object phrases through keyframes: one of each present
    phrase's `top` best stills (by `still (B, N, K)` scores) and an order to stack them in
    (present phrases permuted among themselves; absent ones stay last).

    Returns int32 `picks (B, C, N)` (the keyframe of each phrase) and `order (B, C, N)`
    (the phrases from the bottom layer up), C = top^N * N!; a prompt of one present phrase
    has one way (its best still), and every prompt repeats its first way to fill C."""
    b, n, k = still.shape
    top = min(top, k)
    best = np.argsort(-still, axis=2, kind="stable")[:, :, :top]  # (B, N, top)
    size = top ** n * math.factorial(n)
    picks = np.zeros((b, size, n), np.int32)
    order = np.zeros((b, size, n), np.int32)
    for row in range(b):
        on = [i for i in range(n) if present[row, i]]
        off = [i for i in range(n) if not present[row, i]]
        tries = top if len(on) > 1 else 1  # one object: its best still, as `still_scores`
        choices = [(ranks, perm + tuple(off))
                   for ranks in itertools.product(range(tries), repeat=len(on))
                   for perm in itertools.permutations(on)]
        choices += choices[:1] * (size - len(choices))
        for c, (ranks, perm) in enumerate(choices):
            picks[row, c, on] = best[row, on, list(ranks)]
            order[row, c] = perm
    return picks, order


@functools.partial(jax.jit, static_argnames=("reader", "num_frames"))
def _planned_scores(reader: ObjectReader, params: Any, images: jax.Array, velocity: jax.Array,
                    present: jax.Array, picks: jax.Array, order: jax.Array, index: jax.Array,
                    want: jax.Array, *, num_frames: int) -> jax.Array:
    b, c, n = picks.shape
    chosen = jax.vmap(lambda im, p: im[jnp.arange(n)[None], p])(images, picks)  # (B, C, N, ...)
    moves = repeat(velocity, "b n v -> (b c n) v", c=c)
    clips = carried_frames(rearrange(chosen, "b c n h w x -> (b c n) h w x"), moves, num_frames)
    clips = rearrange(clips, "(b c n) t h w x -> b c n t h w x", b=b, c=c)
    stacked = jnp.take_along_axis(clips, order[..., None, None, None, None], axis=2)
    on = jnp.take_along_axis(jnp.broadcast_to(present[:, None], order.shape), order, axis=2)
    layered = layer_clips(rearrange(stacked, "b c n t h w x -> (b c) n t h w x"),
                          rearrange(on, "b c n -> (b c) n"))
    rows = lambda a: repeat(a, "b m -> (b c) m", c=c)
    return reader.scores(params, layered, rows(index), rows(want)).reshape(b, c)


def plan_layered(reader: ObjectReader, images: jax.Array, still: np.ndarray,
                 velocity: np.ndarray, present: np.ndarray, prompts: Sequence[str],
                 num_frames: int, top: int = LAYERED_CHOICES) -> tuple[np.ndarray, np.ndarray]:
    """Keyframes for a prompt that names several objects, chosen together.

    Each object phrase is drawn and animated alone and the clips are layered
    (`layering.layer_clips`); picked one phrase at a time, two objects can start where
    their planned paths cross, and the top one hides the other. So every way of
    `layered_choices` (one of each phrase's `top` best stills, an order to stack them) is
    played as its plan: each keyframe carried along its phrase's planned velocity
    (`carried_frames`, as image-to-video starts), the clips layered in that order. The one
    kept has the highest sum of its stills' scores and the reader's log p that the planned
    clip shows the whole prompt (`ObjectReader.named_terms`: each object's colour, shape and
    direction, one object of each colour).

    images: float `(B, N, K, H, W, 3)` in [-1, 1] at the base size, K stills of each of a
    prompt's N phrases; still: their `(B, N, K)` scores; velocity: `(B, N, 2)` px per frame;
    present: bool `(B, N)` (phrase n exists; absent ones last); prompts: the B whole prompts.
    Returns the kept keyframe of each phrase, int `(B, N)`, and the stacking order from the
    bottom layer up, int `(B, N)`."""
    if num_frames < MIN_FRAMES:
        raise ValueError(f"plan_layered: the object reader reads clips of at least "
                         f"{MIN_FRAMES} frames; got num_frames={num_frames}")
    picks, order = layered_choices(still, present, top)
    index, want = reader.named_terms(prompts)
    planned = np.asarray(_planned_scores(
        dataclasses.replace(reader, params=None), reader.params, jnp.asarray(images, jnp.float32),
        jnp.asarray(velocity, jnp.float32), jnp.asarray(present, bool), jnp.asarray(picks),
        jnp.asarray(order), jnp.asarray(index), jnp.asarray(want), num_frames=num_frames))
    stills = np.take_along_axis(still[:, None], picks[..., None], axis=3)[..., 0]  # (B, C, N)
    total = planned + np.where(present[:, None], stills, 0.0).sum(-1)
    best = total.argmax(1)
    rows = np.arange(len(best))
    return picks[rows, best], order[rows, best]
