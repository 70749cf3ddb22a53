"""Sampling speed in one run, one JSON file, and the README table made from it.

    python benchmarks/run_all.py                      # -> benchmarks/results/sampling.json
    python benchmarks/run_all.py --table              # print the markdown table of that file

Figures (one JSON object each, all in the same run, on this machine):
  matmul_peak        a jitted 2048^2 fp32 matmul (the peak the other figures compare to)
  cascade_per_clip   the shipped cascade (`pretrained/moving_shapes`, its manifest's
                     text-to-video settings: with `keyframes`, the T2I draws that many
                     images, one is kept and the image-to-video stage animates it from
                     `image_start`), one prompt: the base stage alone
                     (`base_only=True`) and the whole cascade; SSR = the difference.
                     Median of `--repeats` warm runs; compile time apart.
  base_per_frame     one guided forward of the shipped base STUNet (batch 2: prompt and
                     null), 16 / 32 / 64 / 128 frames: time, time per frame, FLOPs.
  sampler overhead   `benchmarks/sampler_overhead.py` (DDIM etc. vs one forward)
  split_merge        `benchmarks/multidiffusion.py` (MultiDiffusion split + merge as a
                     fraction of one SSR step)
  ssr_step_vs_frames `benchmarks/ssr_step.py` (SSR step time and temp memory, 16 -> 128
                     frames, all windows at once and 2 at a time)
The three scripts run as subprocesses with their defaults; their JSON lines are copied in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(HERE, "results", "sampling.json")
FOLDER = os.path.join(ROOT, "pretrained", "moving_shapes")
SCRIPTS = ("sampler_overhead.py", "multidiffusion.py", "ssr_step.py")


def cascade_per_clip(repeats: int) -> dict:
    import jax

    from lumiere_jax.pipeline import LumierePipeline

    pipe = LumierePipeline.from_pretrained(FOLDER)
    prompt, key = ["a red circle moving right"], jax.random.key(0)
    out = {}
    for name, base_only in (("base", True), ("cascade", False)):
        start = time.perf_counter()
        jax.block_until_ready(pipe(prompt, key, base_only=base_only))
        first = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(pipe(prompt, key, base_only=base_only))
            times.append(time.perf_counter() - start)
        out[f"{name}_s"] = statistics.median(times)
        out[f"{name}_compile_s"] = first - out[f"{name}_s"]
    s = pipe.sampling
    return dict(figure="cascade_per_clip", base_s=out["base_s"], ssr_s=out["cascade_s"] -
                out["base_s"], cascade_s=out["cascade_s"], base_compile_s=out["base_compile_s"],
                cascade_compile_s=out["cascade_compile_s"], base_steps=s.base_steps,
                ssr_steps=s.ssr_steps, base_guidance=s.base_guidance,
                critic_scale=s.critic_scale, base_candidates=s.base_candidates,
                keyframes=s.keyframes, image_start=s.image_start,
                frames=pipe.base_config.num_frames, base_size=pipe.base_config.image_size,
                ssr_size=pipe.ssr_config.image_size, window=pipe.window, stride=pipe.stride)


def base_per_frame(frame_counts, repeats: int, peak: float) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lumiere_jax import pretrained
    from lumiere_jax.models import UNet
    from lumiere_jax.runs import unet_config
    from lumiere_jax.xla_options import kernel_options
    from timing import median_time

    cfg, weights = pretrained.load_stage(FOLDER, "base")
    config = unet_config(cfg)
    model = UNet(config)
    forward = jax.jit(lambda p, x, t, text, mask: model.apply({"params": p}, x, t, text, mask),
                      compiler_options=kernel_options())  # as the pipeline compiles
    rng = np.random.default_rng(0)
    text = jnp.asarray(rng.normal(size=(2, 8, config.text_input_dim)), jnp.float32)
    mask, t = jnp.ones((2, 8), bool), jnp.full((2,), 0.5)
    rows = []
    for frames in frame_counts:
        size = config.image_size
        x = jnp.asarray(rng.normal(size=(2, frames, size, size, 3)), jnp.float32)
        args = (weights["unet"], x, t, text, mask)
        compiled = forward.lower(*args).compile()
        flops = float(compiled.cost_analysis().get("flops", float("nan")))
        seconds = median_time(compiled, *args, repeats=repeats)
        rows.append(dict(figure="base_per_frame", frames=frames, batch=2, image_size=size,
                         forward_s=seconds, ms_per_frame=1e3 * seconds / frames, flops=flops,
                         achieved_flops_per_s=flops / seconds, ratio_to_peak=flops / seconds / peak,
                         temp_bytes=compiled.memory_analysis().temp_size_in_bytes))
    return rows


def script_figures(name: str) -> list[dict]:
    r = subprocess.run([sys.executable, os.path.join(HERE, name)], capture_output=True,
                       text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"{name} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return [dict(row, script=name) for row in rows]


def base_stage_label(r: dict) -> str:
    """'base stage (8 T2I keyframes, image-to-video from t = 0.1, 16 steps, guidance 3.0)',
    or with the critic and candidates: '..., critic guidance 100, best of 4)'."""
    scale, k = r.get("critic_scale") or 0, r.get("base_candidates") or 1
    parts = ([f"{r['keyframes']} T2I keyframes", f"image-to-video from t = {r['image_start']:g}"]
             if r.get("keyframes") else [])
    parts += [f"{r['base_steps']} steps", f"guidance {r['base_guidance']}"]
    parts += ([f"critic guidance {scale:g}"] if scale else []) + ([f"best of {k}"] if k > 1 else [])
    return f"base stage ({', '.join(parts)})"


def table(rows: list[dict]) -> str:
    """The README's markdown table of a run's figures."""
    by = lambda name: [r for r in rows if r.get("figure") == name]  # noqa: E731
    lines = ["| figure | value |", "|---|---|"]
    for r in by("matmul_peak"):
        lines.append(f"| matmul peak (2048^2 fp32) | {r['flops_per_s'] / 1e9:.0f} GFLOP/s |")
    for r in by("cascade_per_clip"):
        lines += [
            f"| cascade, one clip ({r['frames']} frames, {r['base_size']} -> {r['ssr_size']} px)"
            f" | {r['cascade_s']:.2f} s (+{r['cascade_compile_s']:.0f} s compile) |",
            f"| {base_stage_label(r)} | {r['base_s']:.2f} s |",
            f"| SSR stage ({r['ssr_steps']} steps, windows of {r['window']}, stride "
            f"{r['stride']}) | {r['ssr_s']:.2f} s |"]
    for r in by("base_per_frame"):
        lines.append(f"| base guided forward, {r['frames']} frames | {r['forward_s']:.3f} s "
                     f"({r['ms_per_frame']:.1f} ms / frame, "
                     f"{r['achieved_flops_per_s'] / 1e9:.0f} GFLOP/s) |")
    for r in by("sampler_per_step_overhead"):  # against forwards chained in one scan
        lines.append(f"| sampler math per step, {r['sampler']} (tiny STUNet) | "
                     f"{100 * r['overhead_vs_forward_in_scan']:.1f}% of a forward |")
    for r in by("progress_callback_overhead"):
        lines.append(f"| progress-bar callback, {r['sampler']} | x{r['ratio']:.3f} time |")
    for r in by("split_merge_fraction_of_ssr_step"):
        lines.append(f"| MultiDiffusion split + merge ({r['num_windows']} windows) | "
                     f"{100 * r['fraction']:.2f}% of an SSR step |")
    for r in by("ssr_step_vs_frames"):
        chunk = "all windows" if r["chunk_size"] is None else f"{r['chunk_size']} at a time"
        lines.append(f"| SSR step, {r['frames']} frames, {chunk} | {r['step_ms']:.0f} ms, "
                     f"temp {r['temp_bytes'] / 2 ** 20:.0f} MiB |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frames", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--table", action="store_true", help="print the table of --out and stop")
    a = p.parse_args()
    if a.table:
        if not os.path.isfile(a.out):
            p.error(f"--out={a.out!r} does not exist: run without --table first")
        print(table(json.load(open(a.out))["figures"]))
        return
    if a.repeats < 1 or any(f < 4 or f % 4 for f in a.frames):
        p.error(f"--repeats={a.repeats} must be >= 1 and --frames={a.frames} multiples of 4 "
                "(the base halves time twice)")
    sys.path[:0] = [ROOT, HERE]
    import jax

    from timing import matmul_peak

    peak = matmul_peak()
    rows = [dict(figure="matmul_peak", flops_per_s=peak)]
    rows.append(cascade_per_clip(a.repeats))
    rows += base_per_frame(a.frames, a.repeats, peak)
    for name in SCRIPTS:
        rows += script_figures(name)
    for row in rows:
        print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(dict(jax=jax.__version__, backend=jax.default_backend(),
                       device=str(jax.devices()[0].device_kind), cpu_count=os.cpu_count(),
                       figures=rows), f, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main()
