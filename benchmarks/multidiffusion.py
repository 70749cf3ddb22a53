"""MultiDiffusion overhead: time of split + merge as a fraction of one SSR sampling step.

    python benchmarks/multidiffusion.py [--frames 16 --size 32 --window 8 --stride 4 ...]

Prints one JSON object per figure: the split + merge time alone, one full SSR DDIM step
(windows -> SSR UNet -> merge -> update, `sample(..., num_steps=1)`), their ratio
(target <= 1%), and the step's FLOPs / achieved FLOP/s against a jitted-matmul peak.
Random SSR weights (shapes from `jax.eval_shape(UNet.init)`), so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.diffusion.multidiffusion import (merge_windows, multidiffusion_denoiser,
                                                  split_windows, window_starts)
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import cosine_schedule
from lumiere_jax.models import UNet, dummy_inputs
from lumiere_jax.models.presets import tiny_ssr
from lumiere_jax.xla_options import kernel_options
from timing import matmul_peak, median_time  # benchmarks/timing.py


def random_params(config, seed: int = 0):
    """Fan-in scaled random weights with the UNet's tree (no init compile)."""
    shapes = nn.meta.unbox(jax.eval_shape(
        lambda: UNet(config).init(jax.random.key(0), **dummy_inputs(config))["params"]))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if len(leaf.shape) >= 2:
            return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1])),
                               leaf.dtype)
        scale = "scale" in jax.tree_util.keystr(path)
        return jnp.ones(leaf.shape, leaf.dtype) if scale else jnp.zeros(leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)




def ssr_step_fn(config, params, num_frames, window, stride, chunk_size, text_len=8):
    """jitted (x, cond, text, mask, key) -> one DDIM step of the MultiDiffusion SSR."""
    schedule = cosine_schedule(config.image_size, config.image_size // 2)
    model = UNet(config)

    def step(x, cond, text, mask, key):
        level = jnp.full((x.shape[0],), 0.1, jnp.float32)

        def window_fn(x_w, t, cond_w):
            return model.apply({"params": params}, x_w, t, text, mask, cond=cond_w,
                               cond_level=level)

        md = multidiffusion_denoiser(window_fn, num_frames, window, stride, chunk_size)
        return sample(lambda x, t: md(x, t, cond), x, key, schedule=schedule, sampler="ddim",
                      num_steps=1, prediction="v", t_start=0.5)

    return jax.jit(step, compiler_options=kernel_options())  # as the pipeline compiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=0, help="0: all windows at once")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    config = tiny_ssr(channels=args.channels, image_size=args.size, num_frames=args.window)
    params = random_params(config)
    chunk = args.chunk or None
    starts = window_starts(args.frames, args.window, args.stride)
    shape = (args.batch, args.frames, args.size, args.size, 3)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    cond = jnp.asarray(rng.normal(size=shape), jnp.float32)
    text = jnp.asarray(rng.normal(size=(args.batch, 8, config.text_dim)), jnp.float32)
    mask = jnp.ones((args.batch, 8), bool)
    preds = jnp.asarray(rng.normal(size=(len(starts), args.batch, args.window) + shape[2:]),
                        jnp.float32)

    # split of x (and of the cond video) + merge of the window predictions, as in one step.
    split_merge = jax.jit(lambda x, c, p: (split_windows(x, starts, args.window),
                                           split_windows(c, starts, args.window),
                                           merge_windows(p, starts, args.frames)),
                          compiler_options=kernel_options())
    t_split_merge = median_time(split_merge, x, cond, preds, repeats=args.repeats * 4)

    step = ssr_step_fn(config, params, args.frames, args.window, args.stride, chunk)
    key = jax.random.key(0)
    compiled = step.lower(x, cond, text, mask, key).compile()
    flops = compiled.cost_analysis().get("flops", float("nan"))
    t_step = median_time(step, x, cond, text, mask, key, repeats=args.repeats)
    peak = matmul_peak()

    geometry = dict(frames=args.frames, size=args.size, channels=args.channels,
                    window=args.window, stride=args.stride, num_windows=len(starts),
                    chunk_size=chunk, batch=args.batch, backend=jax.default_backend(),
                    device=str(jax.devices()[0].device_kind))
    print(json.dumps(dict(figure="split_merge_fraction_of_ssr_step",
                          split_merge_ms=1e3 * t_split_merge, ssr_step_ms=1e3 * t_step,
                          fraction=t_split_merge / t_step, target=0.01, **geometry)))
    # XLA counts a while-loop body once, so with --chunk the FLOPs (and utilization) are
    # those of one chunk; run without --chunk for the step's FLOP/s.
    print(json.dumps(dict(figure="ssr_step_flops", flops=flops,
                          flops_scope="step" if chunk is None else "one chunk (scan body)",
                          achieved_flops_per_s=flops / t_step, matmul_peak_flops_per_s=peak,
                          utilization=flops / t_step / peak, **geometry)))


if __name__ == "__main__":
    main()
