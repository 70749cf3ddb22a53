"""Can a STUNet's temporal weights make the direction word matter at all? (diagnostic)

    python benchmarks/caption_gap_ascent.py pretrained/moving_shapes base 0.95 40

Takes 8 single-object held-out test clips at one noise level t, each under its short
caption and under the same caption moving the opposite way (same noise), and runs Adam
(lr 1e-3) on the stage's trainable weights (`temporal_*`) to *raise* the paired loss
difference (opposite - own) on that one fixed batch, nothing else in the objective.
Prints one JSON object every 5 steps: the gap, the own-caption loss, the gradient norm.
If the gap rises, the temporal text path can make the caption matter; whether what it
learns is a direction (own loss kept) or caption-dependent damage (own loss up) shows
in the own-caption loss. About 10 s a step on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from direction_sensitivity import single_object_clips  # noqa: E402

from lumiere_jax import pretrained, runs  # noqa: E402
from lumiere_jax.models import UNet  # noqa: E402
from lumiere_jax.text import TextEncoder  # noqa: E402
from lumiere_jax.training import merge_params, setup, split_params  # noqa: E402

NUM_CLIPS = 8


def main(folder: str, stage: str, t: float, steps: int) -> None:
    config, params = pretrained.load_stage(folder, stage)
    schedule = runs.noise_schedule(config)
    tok, encoder = setup.tokenizer(config), TextEncoder(setup.text_config(config))
    model = UNet(runs.unet_config(config))
    captions, flipped, video = single_object_clips(config, NUM_CLIPS)
    ids, mask = (jnp.asarray(a) for a in tok.encode(captions + flipped))
    x0 = jnp.asarray(np.concatenate([video, video]))
    eps = jax.random.normal(jax.random.key(0), video.shape)
    eps = jnp.concatenate([eps, eps])
    alpha, sigma = (a[:, None, None, None, None]
                    for a in schedule.alpha_sigma(jnp.full((2 * NUM_CLIPS,), t)))
    trainable, frozen = split_params(params, setup.trainable_tree(config, params))

    def gap_and_loss(trained):
        p = merge_params(trained, frozen)
        states, smask = encoder.apply({"params": p["text"]}, ids, mask)
        pred = model.apply({"params": p["unet"]}, alpha * x0 + sigma * eps,
                           jnp.full((2 * NUM_CLIPS,), t), states, smask)
        per = jnp.mean((pred - (alpha * eps - sigma * x0)) ** 2, axis=(1, 2, 3, 4))
        own, opposite_loss = per[:NUM_CLIPS], per[NUM_CLIPS:]
        return jnp.mean(opposite_loss - own), jnp.mean(own)

    def minus_gap(trained):  # Adam minimises: descend on -gap, carry the own loss along
        gap, own = gap_and_loss(trained)
        return -gap, own

    tx = optax.adam(1e-3)

    @jax.jit
    def step(trained, opt_state):
        (neg_gap, own), grads = jax.value_and_grad(minus_gap, has_aux=True)(trained)
        updates, opt_state = tx.update(grads, opt_state, trained)
        return (optax.apply_updates(trained, updates), opt_state, -neg_gap, own,
                optax.tree.norm(grads))

    opt_state, start = tx.init(trainable), time.perf_counter()
    for i in range(steps):
        trainable, opt_state, gap, own, grad_norm = step(trainable, opt_state)
        if i % 5 == 0 or i == steps - 1:
            print(json.dumps(dict(figure="caption_gap_ascent", source=folder, stage=stage, t=t,
                                  step=i, gap=float(gap), own_caption_loss=float(own),
                                  grad_norm=float(grad_norm),
                                  seconds=round(time.perf_counter() - start, 1))), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
