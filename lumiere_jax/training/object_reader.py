"""Train an `ObjectReader` on clips the moving_shapes renderer draws (labels from the scene).

    reader, info = train_object_reader(num_clips=20000, steps=4000)   # ~12 min on 2 CPU cores

Each example is a random 16-frame scene (`moving_shapes.sample_scene`; objects stay inside
the frame), sometimes with a second object of a colour already there (`repeat_prob`: what
sampled clips do wrong most often) and sometimes with objects that stand still
(`still_prob`: they move no way). Labels: the (colour, shape) pairs, each moving object's
(colour, direction), and the colours seen twice. Clips are softened (mixed with their 3x3
box blur, plus noise) so the reader also sees the soft edges of sampled clips. Each step
reads 2 random frames and 2 random frame triplets of each clip. Sigmoid cross-entropy,
AdamW, warm-up then cosine decay.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lumiere_jax.data.moving_shapes import (COLORS, DIRECTIONS, SHAPES, Scene, render_scene,
                                            sample_scene)
from lumiere_jax.models.object_reader import MIN_FRAMES, TRIPLET, ObjectReader

DIRECTION_PHRASES = tuple(phrase for _, phrase in DIRECTIONS.values())


def blank_reader() -> ObjectReader:
    """An `ObjectReader` of moving_shapes' colours, shapes and direction phrases, no weights."""
    return ObjectReader(tuple(COLORS), tuple(SHAPES), DIRECTION_PHRASES, None)


def training_scene(rng: np.random.Generator, num_frames: int, size: int,
                   repeat_prob: float = 0.2, still_prob: float = 0.15) -> Scene:
    """`sample_scene`, plus with `repeat_prob` one more object of a colour already there
    (its shape too, 7 times in 10), and each object standing still (at its track's middle,
    velocity 0, direction None) with `still_prob`."""
    scene = sample_scene(rng, num_frames, size, size)
    objects = list(scene.objects)
    if rng.random() < repeat_prob:
        twin = objects[int(rng.integers(len(objects)))]
        extra = sample_scene(rng, num_frames, size, size, two_object_prob=0.0).objects[0]
        shape = twin.shape if rng.random() < 0.7 else extra.shape
        objects.append(dataclasses.replace(extra, color=twin.color, shape=shape))
    half = (num_frames - 1) / 2.0
    for i, o in enumerate(objects):
        if rng.random() < still_prob:
            middle = (o.start[0] + o.velocity[0] * half, o.start[1] + o.velocity[1] * half)
            objects[i] = dataclasses.replace(o, start=middle, velocity=(0.0, 0.0),
                                             direction=None)
    return Scene(tuple(objects), scene.background)


def scene_labels(reader: ObjectReader, scene: Scene) -> np.ndarray:
    """float32 `(reader.num_outputs,)`: 1 for each (colour, shape) in the scene, each moving
    object's (colour, direction), each colour seen more than once."""
    labels = np.zeros(reader.num_outputs, np.float32)
    colors = [o.color for o in scene.objects]
    for o in scene.objects:
        labels[reader.pair_index(o.color, o.shape)] = 1.0
        if o.direction is not None:
            labels[reader.motion_index(o.color, DIRECTIONS[o.direction][1])] = 1.0
        if colors.count(o.color) > 1:
            labels[reader.repeat_index(o.color)] = 1.0
    return labels


def rendered_examples(reader: ObjectReader, rng: np.random.Generator, num_clips: int,
                      size: int = 32, num_frames: int = 16, **scene_kw
                      ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 `(N, num_frames, size, size, 3)` clips of `training_scene`s and float32
    `(N, reader.num_outputs)` labels (`scene_labels`)."""
    if num_frames < MIN_FRAMES:
        raise ValueError(f"num_frames={num_frames}: the reader needs at least {MIN_FRAMES}")
    video = np.zeros((num_clips, num_frames, size, size, 3), np.uint8)
    labels = np.zeros((num_clips, reader.num_outputs), np.float32)
    for i in range(num_clips):
        scene = training_scene(rng, num_frames, size, **scene_kw)
        video[i] = render_scene(scene, num_frames, size, size)
        labels[i] = scene_labels(reader, scene)
    return video, labels


def rendered_exact_set_accuracy(reader: ObjectReader, num_clips: int = 500, seed: int = 1,
                                size: int = 32) -> dict[str, float]:
    """Per output group, the share of `num_clips` fresh renders (`rendered_examples`,
    generator `seed`) whose exact set the reader names (logit > 0 for those, < 0 else)."""
    video, labels = rendered_examples(reader, np.random.default_rng(seed), num_clips,
                                      size=size)
    read = jax.jit(reader.logits)
    logits = np.concatenate([np.asarray(read(reader.params, video[i:i + 64] / 127.5 - 1.0))
                             for i in range(0, num_clips, 64)])
    return {name: float(np.mean(((logits[:, g] > 0) == (labels[:, g] > 0.5)).all(1)))
            for name, g in reader.groups.items()}


def soften(key: jax.Array, clips: jax.Array, max_noise: float = 0.15) -> jax.Array:
    """`(B, T, H, W, C)` in [-1, 1]: each clip mixed with its 3x3 box blur (weight ~ U(0, 1))
    plus Gaussian noise (std ~ U(0, max_noise))."""
    k_mix, k_std, k_noise = jax.random.split(key, 3)
    shape = (clips.shape[0],) + (1,) * (clips.ndim - 1)
    mix = jax.random.uniform(k_mix, shape)
    blur = sum(jnp.roll(clips, (dy, dx), axis=(2, 3))
               for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    std = jax.random.uniform(k_std, shape, maxval=max_noise)
    return (1.0 - mix) * clips + mix * blur + std * jax.random.normal(k_noise, clips.shape)


def train_object_reader(num_clips: int = 20000, steps: int = 4000, batch: int = 32,
                        lr: float = 2e-3, seed: int = 0, size: int = 32, num_frames: int = 16
                        ) -> tuple[ObjectReader, dict]:
    """A reader of moving_shapes' colours, shapes and directions trained from scratch;
    `info`: steps, seconds, the mean loss of the last 100 steps."""
    for name, value in (("num_clips", num_clips), ("steps", steps), ("batch", batch)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"train_object_reader: {name}={value!r} must be an int >= 1")
    start = time.time()
    reader = blank_reader()
    rng = np.random.default_rng(seed)
    video, labels = rendered_examples(reader, rng, num_clips, size=size, num_frames=num_frames)
    params = reader.init_params(jax.random.key(seed), video.shape[1:])
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(100, steps // 10 + 1), steps)
    opt = optax.adamw(schedule, weight_decay=1e-4)
    opt_state = opt.init(params)
    last_start = num_frames - TRIPLET[-1]

    @jax.jit
    def step(params, opt_state, x, y, key):
        k_soft, k_frames, k_starts = jax.random.split(key, 3)
        x = soften(k_soft, x.astype(jnp.float32) / 127.5 - 1.0)
        frames = jax.random.randint(k_frames, (2,), 0, num_frames)
        starts = jax.random.randint(k_starts, (2,), 0, last_start)

        def loss_fn(p):
            logits = reader.net.apply({"params": p}, x, frames, starts)
            return optax.sigmoid_binary_cross_entropy(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []  # on the device: no host sync per step
    key = jax.random.key(seed + 1)
    for i in range(steps):
        idx = rng.integers(0, num_clips, batch)
        params, opt_state, loss = step(params, opt_state, video[idx], labels[idx],
                                       jax.random.fold_in(key, i))
        losses.append(loss)
    final_loss = float(np.mean(np.asarray(jnp.stack(losses[-100:]))))
    info = dict(num_clips=num_clips, steps=steps, batch=batch, lr=lr, seed=seed,
                seconds=round(time.time() - start, 1), final_loss=round(final_loss, 5))
    return dataclasses.replace(reader, params=jax.tree.map(np.asarray, params)), info
