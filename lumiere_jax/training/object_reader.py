"""Train an `ObjectReader` on frames the moving_shapes renderer draws (labels from the scene).

    reader, info = train_object_reader(num_clips=20000, steps=4000)   # ~5 min on 2 CPU cores

Each example is a few frames of a random scene (`moving_shapes.sample_scene`; objects stay
inside the frame, so every frame shows all of them) with its multi-hot (colour, shape)
labels. Frames are softened (mixed with their 3x3 box blur, plus noise) so the reader
also sees the soft edges of sampled clips. Sigmoid cross-entropy, AdamW, cosine decay.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lumiere_jax.data.moving_shapes import COLORS, SHAPES, render_scene, sample_scene
from lumiere_jax.models.object_reader import ObjectReader


def rendered_examples(reader: ObjectReader, rng: np.random.Generator, num_clips: int,
                      frames: int = 2, size: int = 32, clip_frames: int = 16
                      ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 `(N, frames, size, size, 3)` frames of random scenes (`frames` of the
    `clip_frames` rendered) and float32 `(N, P)` multi-hot labels of their objects."""
    video = np.zeros((num_clips, frames, size, size, 3), np.uint8)
    labels = np.zeros((num_clips, reader.num_pairs), np.float32)
    for i in range(num_clips):
        scene = sample_scene(rng, clip_frames, size, size)
        clip = render_scene(scene, clip_frames, size, size)
        video[i] = clip[rng.choice(clip_frames, frames, replace=False)]
        for o in scene.objects:
            labels[i, reader.pair_index(o.color, o.shape)] = 1.0
    return video, labels


def rendered_exact_set_accuracy(reader: ObjectReader, num_clips: int = 500, seed: int = 1,
                                size: int = 32) -> float:
    """The share of `num_clips` fresh renders (`rendered_examples`, generator `seed`) whose
    exact set of (colour, shape) objects the reader names (logit > 0 for those, < 0 else)."""
    video, labels = rendered_examples(reader, np.random.default_rng(seed), num_clips,
                                      size=size)
    logits = np.asarray(jax.jit(reader.logits)(reader.params, video / 127.5 - 1.0))
    return float(np.mean(((logits > 0) == (labels > 0.5)).all(1)))


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
                        lr: float = 2e-3, seed: int = 0, size: int = 32
                        ) -> tuple[ObjectReader, dict]:
    """A reader of moving_shapes' colours and shapes trained from scratch; `info`: steps,
    seconds, the mean loss of the last 100 steps."""
    for name, value in (("num_clips", num_clips), ("steps", steps), ("batch", batch)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"train_object_reader: {name}={value!r} must be an int >= 1")
    start = time.time()
    reader = ObjectReader(tuple(COLORS), tuple(SHAPES), None)
    rng = np.random.default_rng(seed)
    video, labels = rendered_examples(reader, rng, num_clips, size=size)
    params = reader.init_params(jax.random.key(seed), video.shape[1:])
    opt = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=1e-4)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, x, y, key):
        x = soften(key, x.astype(jnp.float32) / 127.5 - 1.0)
        loss_fn = lambda p: optax.sigmoid_binary_cross_entropy(reader.logits(p, x), y).mean()
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
