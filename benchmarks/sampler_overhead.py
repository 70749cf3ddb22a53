"""Per-step sampler overhead relative to one model forward, on the tiny STUNet.

    python benchmarks/sampler_overhead.py [--steps 32 --batch 1 --frames 8 --size 16 ...]

For each sampler (DDIM, DDPM ancestral, DPM-Solver++ 2M, and DDIM with classifier-free
guidance) prints one JSON object (and, for `ddim_progress`, DDIM with the per-step
progress callback that drives sample.py's progress bars, a `progress_callback_overhead`
figure: its time over plain DDIM's, interleaved in the same run):
  overhead = (time of an N-step jitted `sample` / N - time of one jitted forward)
             / time of one forward,
where "one forward" is the model call a step makes (batch 2B for guidance), jitted and
called on its own. A standalone call also pays Python dispatch (flattening the params
tree), which the scan pays once, so the script also reports
`overhead_vs_forward_in_scan` = (sample time - time of N chained forwards in one lax.scan
without sampler math) / that time: the sampler's own arithmetic. Times are
medians of `--repeats` runs after a warm-up, with `block_until_ready`, sample and
forward runs interleaved so load drift on a shared machine hits both alike. Also prints the
forward's FLOPs (`cost_analysis`), achieved FLOP/s against a jitted-matmul peak measured in
the same run, and the compiled sampler's / forward's temp memory (`memory_analysis`).
Random-init weights (`init_params`), nothing downloaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.diffusion.guidance import classifier_free_guidance
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import cosine_schedule
from lumiere_jax.models import UNet, init_params
from lumiere_jax.models.presets import tiny_stunet
from lumiere_jax.xla_options import kernel_options
from timing import matmul_peak  # benchmarks/timing.py



def interleaved_medians(calls: dict, repeats: int) -> dict:
    """Median wall time per named (fn, args) pair, runs interleaved so that load drift on a
    shared machine hits every figure alike; one warm-up each."""
    for fn, fn_args in calls.values():
        jax.block_until_ready(fn(*fn_args))
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, (fn, fn_args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*fn_args))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}



def compiled_stats(fn, *args) -> dict:
    """FLOPs and temp / argument bytes of jit(fn) compiled for args."""
    compiled = fn.lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    mem = compiled.memory_analysis()
    return dict(flops=float(cost.get("flops", float("nan"))),
                temp_bytes=int(getattr(mem, "temp_size_in_bytes", -1)),
                argument_bytes=int(getattr(mem, "argument_size_in_bytes", -1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--text-len", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--samplers", default="ddim,ddpm,dpmpp_2m,ddim_cfg,ddim_progress")
    args = parser.parse_args()

    config = tiny_stunet(channels=args.channels, image_size=args.size, num_frames=args.frames)
    model = UNet(config)
    params = nn.meta.unbox(init_params(config, jax.random.key(0)))
    schedule = cosine_schedule(args.size, args.size)
    rng = np.random.default_rng(0)
    b = args.batch
    x = jnp.asarray(rng.standard_normal((b, args.frames, args.size, args.size, 3)), jnp.float32)
    text = jnp.asarray(rng.standard_normal((b, args.text_len, config.text_dim)), jnp.float32)
    mask = jnp.ones((b, args.text_len), bool)
    null_text, null_mask = jnp.zeros_like(text), jnp.zeros_like(mask)
    key = jax.random.key(1)

    def forward(params, x, t, text, mask):
        return model.apply({"params": params}, x, t, text, mask)

    def make_sampler(name: str):
        sampler = name.removesuffix("_cfg").removesuffix("_progress")
        guided = name.endswith("_cfg")
        calls = []
        progress = calls.append if name.endswith("_progress") else None

        def run(params, x, text, mask, key):
            if guided:
                cfg = classifier_free_guidance(
                    lambda x, t, c: forward(params, x, t, c[0], c[1]), scale=5.0)
                denoise = lambda x, t: cfg(x, t, (text, mask), (null_text, null_mask))
            else:
                denoise = lambda x, t: forward(params, x, t, text, mask)
            return sample(denoise, x, key, schedule=schedule, sampler=sampler,
                          num_steps=args.steps, prediction="v", progress=progress)

        return jax.jit(run, compiler_options=kernel_options()), guided

    def make_forward_loop(mult: int):
        """N forwards chained in one lax.scan with no sampler math: isolates the per-call
        dispatch cost of a standalone forward from the sampler's own arithmetic."""
        def loop(params, x, text, mask):
            xf, textf = jnp.concatenate([x] * mult), jnp.concatenate([text] * mult)
            maskf = jnp.concatenate([mask] * mult)

            def body(x, t):
                out = forward(params, x, jnp.full((x.shape[0],), t), textf, maskf)
                return out, None

            ts = jnp.linspace(1.0, 0.0, args.steps, endpoint=False)
            return jax.lax.scan(body, xf, ts)[0]

        return jax.jit(loop, compiler_options=kernel_options())

    fwd = jax.jit(forward, compiler_options=kernel_options())  # as the samplers compile
    peak = matmul_peak()
    geometry = dict(model="tiny_stunet", batch=b, frames=args.frames, size=args.size,
                    channels=args.channels, steps=args.steps, repeats=args.repeats,
                    backend=jax.default_backend(), device=str(jax.devices()[0].device_kind))
    loops = {1: make_forward_loop(1), 2: make_forward_loop(2)}
    for name in args.samplers.split(","):
        run, guided = make_sampler(name)
        if name.endswith("_progress"):
            plain, _ = make_sampler(name.removesuffix("_progress"))
            medians = interleaved_medians(
                dict(with_progress=(run, (params, x, text, mask, key)),
                     plain=(plain, (params, x, text, mask, key))), repeats=args.repeats)
            print(json.dumps(dict(
                figure="progress_callback_overhead", sampler=name,
                with_progress_ms=1e3 * medians["with_progress"], plain_ms=1e3 * medians["plain"],
                ratio=medians["with_progress"] / medians["plain"], **geometry)))
            continue
        mult = 2 if guided else 1
        # The forward a step makes: batch B, or 2B with classifier-free guidance.
        xf, tf = jnp.concatenate([x] * mult), jnp.full((mult * b,), 0.5, jnp.float32)
        textf, maskf = jnp.concatenate([text] * mult), jnp.concatenate([mask] * mult)
        fwd_stats = compiled_stats(fwd, params, xf, tf, textf, maskf)
        run_stats = compiled_stats(run, params, x, text, mask, key)
        # One sample per round against `steps` forwards per round, interleaved.
        medians = interleaved_medians(
            dict(sample=(run, (params, x, text, mask, key)),
                 forward=(fwd, (params, xf, tf, textf, maskf)),
                 forward_loop=(loops[mult], (params, x, text, mask))),
            repeats=args.repeats)
        t_sample, t_fwd, t_loop = medians["sample"], medians["forward"], medians["forward_loop"]
        per_step = t_sample / args.steps
        print(json.dumps(dict(
            figure="sampler_per_step_overhead", sampler=name, guidance_batch=mult * b,
            sample_ms=1e3 * t_sample, per_step_ms=1e3 * per_step, forward_ms=1e3 * t_fwd,
            overhead=(per_step - t_fwd) / t_fwd,
            forward_in_scan_ms=1e3 * t_loop / args.steps,
            overhead_vs_forward_in_scan=(t_sample - t_loop) / t_loop,
            forward_flops=fwd_stats["flops"],
            forward_achieved_flops_per_s=fwd_stats["flops"] / t_fwd,
            step_achieved_flops_per_s=fwd_stats["flops"] / per_step,
            matmul_peak_flops_per_s=peak,
            forward_utilization=fwd_stats["flops"] / t_fwd / peak,
            forward_temp_bytes=fwd_stats["temp_bytes"], sampler_temp_bytes=run_stats["temp_bytes"],
            **geometry)))


if __name__ == "__main__":
    main()
