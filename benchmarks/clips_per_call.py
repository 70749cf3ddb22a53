"""The base STUNet on the whole batch at once or in chunks (`SamplingConfig.clips_per_call`).

    python benchmarks/clips_per_call.py                  # forward, 64 clips, alternating
    python benchmarks/clips_per_call.py --sample         # + the cascade's base stage, 8 x 4

On XLA:CPU a call on many clips leaves the cache: every activation of the 32 px level of
64 clips x 16 frames is 134 MB. `sampling.in_chunks` runs the network on at most k clips
at a time (`lax.map` over chunks). Measured here on the shipped base STUNet
(`pretrained/moving_shapes`):
  forward  one jitted forward of 64 clips (16 frames, 32 px): whole, and in chunks of
           16 / 8 / 4, alternating for `--rounds` rounds
  sample   (`--sample`) the shipped base stage with its defaults (guidance, best of 4) but
           4 of its 16 steps, on 8 prompts: 64 clips a call, whole (`clips_per_call=64`)
           against the CPU default (16), alternating, compile excluded
One JSON object per figure: median time, FLOPs from `cost_analysis()`, FLOP/s against a
2048^2 fp32 matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from timing import matmul_peak, median_time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from lumiere_jax import host_memory, pretrained, runs  # noqa: E402
from lumiere_jax.models.unet import UNet  # noqa: E402
from lumiere_jax.sampling import in_chunks  # noqa: E402

FOLDER = os.path.join(ROOT, "pretrained", "moving_shapes")
OPTIONS = {"xla_backend_optimization_level": 2}
BATCH = 64
SAMPLE_STEPS = 4  # of the shipped 16: the same calls, fewer of them


def forwards(chunks: tuple[int, ...]) -> tuple[dict, tuple]:
    """{k: compiled forward of BATCH clips, k at a time (k = BATCH: whole)}, its args."""
    config, params = pretrained.load_stage(FOLDER, "base")
    model_config = runs.unet_config(config)
    model = UNet(model_config)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((BATCH, 16, 32, 32, 3)), jnp.float32)
    c = dict(text=jnp.asarray(rng.standard_normal((BATCH, 16, model_config.text_input_dim)),
                              jnp.float32), mask=jnp.ones((BATCH, 16), bool))
    args = (jax.tree.map(jnp.asarray, params["unet"]), x, jnp.full((BATCH,), 0.5), c)

    def make(k):
        def forward(p, x, t, c):
            fn = lambda x, t, c: model.apply({"params": p}, x, t, c["text"], c["mask"])
            return (fn if k == BATCH else in_chunks(fn, k))(x, t, c)
        return jax.jit(forward, compiler_options=OPTIONS).lower(*args).compile()

    return {k: make(k) for k in (BATCH,) + chunks}, args


def sample_times(rounds: int) -> list[dict]:
    from lumiere_jax.data.moving_shapes import COLORS, DIRECTIONS, SHAPES
    from lumiere_jax.pipeline import LumierePipeline

    colors = list(COLORS)
    prompts = [f"a {colors[i]} {SHAPES[i % 4]} moving {phrase}"
               for i, (_, phrase) in enumerate(DIRECTIONS.values())]
    pipes = {k: LumierePipeline.from_pretrained(FOLDER, xla_options=tuple(OPTIONS.items()),
                                                base_steps=SAMPLE_STEPS, clips_per_call=k)
             for k in (BATCH, None)}
    times = {k: [] for k in pipes}
    for k, pipe in pipes.items():  # compile
        pipe(prompts, jax.random.key(0), base_only=True)
    for _ in range(rounds):
        for k, pipe in pipes.items():
            start = time.perf_counter()
            pipe(prompts, jax.random.key(1), base_only=True)
            times[k].append(time.perf_counter() - start)
    return [dict(figure="base_stage_sample", prompts=len(prompts), steps=SAMPLE_STEPS,
                 candidates=pipes[k].sampling.base_candidates,
                 clips_per_call=k or "default (16 on CPU)", time_s=float(np.median(v)),
                 rounds_s=[round(t, 2) for t in v]) for k, v in times.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2, help="timed calls per round")
    p.add_argument("--sample", action="store_true", help="also time the base stage")
    a = p.parse_args()
    host_memory.relaunch_with_tuned_malloc()
    peak = matmul_peak()
    print(json.dumps(dict(figure="matmul_peak", flops_per_s=peak)), flush=True)
    compiled, args = forwards((16, 8, 4))
    reference = np.asarray(compiled[BATCH](*args))
    times = {k: [] for k in compiled}
    for _ in range(a.rounds):
        for k, fn in compiled.items():
            times[k].append(median_time(fn, *args, repeats=a.repeats))
    # the same work in every form (XLA's cost analysis counts a loop's body once)
    flops = float(compiled[BATCH].cost_analysis()["flops"])
    for k, fn in compiled.items():
        seconds = float(np.median(times[k]))
        diff = float(np.abs(np.asarray(fn(*args)) - reference).max())
        print(json.dumps(dict(
            figure="base_forward", clips=BATCH, clips_per_call=k, time_s=seconds,
            seconds_per_clip=seconds / BATCH, rounds_s=[round(t, 3) for t in times[k]],
            flops=flops, flops_per_s=flops / seconds, of_matmul_peak=flops / seconds / peak,
            max_abs_diff_vs_whole=diff)), flush=True)
    if a.sample:
        for row in sample_times(a.rounds):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
