"""SSR sampling-step time and temporary memory versus frame count (16 -> 128 frames).

    python benchmarks/ssr_step.py [--frames 16 32 64 128 --chunk 2 --window 8 --stride 4]

One JSON object per (frames, chunking): median time of one MultiDiffusion SSR DDIM step
(random weights, `benchmarks/multidiffusion.py:ssr_step_fn`) and
`compiled.memory_analysis().temp_size_in_bytes`. On CPU the temp figure comes from a
second compile with XLA:CPU's YNNPACK fusions off: those fusions keep their scratch
outside XLA's buffer assignment, so the default compile under-reports the unchunked
step. With `--chunk k` the windows run k at a time inside a `lax.scan`, so temp memory
should stay flat in the number of windows while the unchunked step grows with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import multidiffusion as md_bench  # noqa: E402  (benchmarks/multidiffusion.py)

from lumiere_jax.diffusion.multidiffusion import window_starts  # noqa: E402
from lumiere_jax.models.presets import tiny_ssr  # noqa: E402

NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = tiny_ssr(channels=args.channels, image_size=args.size, num_frames=args.window)
    params = md_bench.random_params(config)
    rng = np.random.default_rng(0)
    text = jnp.asarray(rng.normal(size=(1, 8, config.text_dim)), jnp.float32)
    mask = jnp.ones((1, 8), bool)
    key = jax.random.key(0)
    on_cpu = jax.default_backend() == "cpu"

    for frames in args.frames:
        shape = (1, frames, args.size, args.size, 3)
        x = jnp.asarray(rng.normal(size=shape), jnp.float32)
        cond = jnp.asarray(rng.normal(size=shape), jnp.float32)
        for chunk in (None, args.chunk):
            step = md_bench.ssr_step_fn(config, params, frames, args.window, args.stride, chunk)
            lowered = step.lower(x, cond, text, mask, key)
            default = lowered.compile()
            accounted = lowered.compile(NO_YNN) if on_cpu else default
            seconds = md_bench.median_time(step, x, cond, text, mask, key, repeats=args.repeats)
            print(json.dumps(dict(
                figure="ssr_step_vs_frames", frames=frames, chunk_size=chunk,
                num_windows=len(window_starts(frames, args.window, args.stride)),
                step_ms=1e3 * seconds, ms_per_frame=1e3 * seconds / frames,
                temp_bytes=accounted.memory_analysis().temp_size_in_bytes,
                temp_bytes_default_compile=default.memory_analysis().temp_size_in_bytes,
                # XLA counts a while-loop body once: chunked FLOPs are per chunk, not per step.
                flops=default.cost_analysis().get("flops", float("nan")),
                flops_scope="step" if chunk is None else "one chunk (scan body)",
                size=args.size, channels=args.channels, window=args.window, stride=args.stride,
                backend=jax.default_backend())), flush=True)


if __name__ == "__main__":
    main()
