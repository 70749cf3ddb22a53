"""How well a guidance critic reads the direction of motion through the noise.

    python benchmarks/critic_pairs.py [RUN=runs/demo_critic] [BATCHES=4]

On held-out moving_shapes test clips in time-reversal pairs (each clip beside itself
played backwards, its caption's directions reversed), noised at each t: how often the
critic scores a clip's own caption above its pair's (chance 0.5), the mean score margin,
and the RMS of the score's gradient with respect to x_t (what critic guidance adds, per
pixel, before its scale). Prints one JSON object per t.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lumiere_jax import runs
from lumiere_jax.diffusion.objectives import bcast
from lumiere_jax.models.critic import VideoTextCritic
from lumiere_jax.training import setup


def main() -> None:
    run = sys.argv[1] if len(sys.argv) > 1 else "runs/demo_critic"
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    config, params = runs.load_run(run, "critic")
    critic = VideoTextCritic(runs.critic_config(config))
    tok, schedule = runs.tokenizer(config), runs.noise_schedule(config)
    config.data.split = "test"
    it = setup.train_batches(config, tok)
    held = [next(it) for _ in range(batches)]
    weights = {"params": params["critic"]}
    swap = lambda z: z.reshape(-1, 2, z.shape[-1])[:, ::-1].reshape(z.shape)  # the pair's

    @jax.jit
    def measure(batch, t, key):
        x0 = batch["pixels"].astype(jnp.float32) / 127.5 - 1.0
        alpha, sigma = schedule.alpha_sigma(jnp.full(len(x0), t))
        x_t = bcast(alpha, x0) * x0 + bcast(sigma, x0) * jax.random.normal(key, x0.shape)
        tt = jnp.full(len(x0), t)
        score = lambda x, ids, mask: critic.apply(weights, x, tt, ids, mask)
        own = score(x_t, batch["ids"], batch["mask"])
        other = score(x_t, swap(batch["ids"]), swap(batch["mask"]))
        grad = jax.grad(lambda x: jnp.sum(score(x, batch["ids"], batch["mask"])))(x_t)
        return jnp.mean(own > other), jnp.mean(own - other), jnp.sqrt(jnp.mean(grad ** 2))

    for t in (0.3, 0.6, 0.8, 0.9, 0.95, 0.98):
        acc, margin, grad = np.mean([np.asarray(measure(b, t, jax.random.key(i)))
                                     for i, b in enumerate(held)], axis=0)
        print(json.dumps({"figure": "critic_pairs", "run": run, "t": t,
                          "pairs": batches * len(held[0]["ids"]) // 2,
                          "pair_accuracy": round(float(acc), 3),
                          "margin": round(float(margin), 3), "grad_rms": float(grad)}),
              flush=True)


if __name__ == "__main__":
    main()
