"""Train-step throughput (T2I, STUNet) and the paper-scale STUNet step's memory.

    python benchmarks/train_step.py                # step time, FLOPs, FLOP/s vs matmul peak
    python benchmarks/train_step.py --paper-memory # needs 8 devices, e.g.
        XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
            python benchmarks/train_step.py --paper-memory
    ... --paper-memory --no-remat                  # the same step without rematerialization

Default: 32 px, 16 frames, U-Net base width 32, batch 4, fp32, no remat, one device.
FLOPs are `cost_analysis()['flops']` of the compiled train step (forward, backward,
AdamW). The peak is a jitted 2048^3 fp32 matmul timed in the same run.
--paper-memory: `paper_stunet` (80 frames, 128 px, bf16 compute, fp32 master weights,
remat on), batch 1 per device, fsdp over all devices, compiled from ShapeDtypeStructs
(nothing materialized); prints `memory_analysis()` per device. The text encoder in the
step is a 1-layer, width-4096 stand-in for T5-XXL (whose outputs would be cached).
Compiled with `parallel.remat_compiler_options()`: on XLA:CPU the optimization barriers
that keep `jax.checkpoint`'s recomputation apart are otherwise removed before a CSE pass
that merges it back (no memory saved); GPU/TPU remove them only after scheduling.
A `remat_probe` figure comes first: a 10-layer MLP's gradient, temp memory without remat,
with remat under default options, and with remat under those options.
One JSON object per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax import host_memory
from lumiere_jax.models import presets
from lumiere_jax.parallel import make_mesh, memory_report, remat_compiler_options
from lumiere_jax.training import init_state, split_params
from lumiere_jax.training import setup
from lumiere_jax.training.run import build_run
from timing import matmul_peak  # benchmarks/timing.py

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs.common import base_config  # noqa: E402  (the repository's configs/)




def param_count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def build(config, mesh):
    """The run train.py builds (`build_run`: abstract sharded state, frozen weights, batch,
    jitted step) and a random-init function for real weights (no T2I to inflate)."""
    run = build_run(config, mesh)
    return run, setup.make_init_fn(run.model, run.encoder, config)


def bench_config(stage: str, frames: int, size: int, width: int, batch: int):
    if stage == "t2i":
        model = presets.tiny_t2i(channels=width, image_size=size, text_dim=32)
    else:
        model = presets.tiny_stunet(channels=width, image_size=size, num_frames=frames,
                                          text_dim=32)
    c = base_config(stage, model)
    c.text.update(width=32, depth=1, num_heads=2, max_length=16, trainable=True)
    c.data.batch_size = batch
    return c


def time_compiled_step(config, steps: int = 5) -> dict:
    """Compile the run `train.py` builds for `config` on one device, then time `steps`
    steps (after two warm-up steps) on random weights and a random batch: median step
    time, FLOPs from `cost_analysis()`, compile time, the last loss."""
    mesh = make_mesh({"data": 1}, devices=jax.devices()[:1])
    run, init_fn = build(config, mesh)
    state_a, frozen_a, batch_a = run.state, run.frozen, run.batch
    t = time.perf_counter()
    compiled = run.compile()  # with train.py's compiler options
    compile_s = time.perf_counter() - t
    flops = float(compiled.cost_analysis()["flops"])
    params = nn.meta.unbox(jax.jit(init_fn)(jax.random.key(0, impl="rbg")))
    trainable, frozen = split_params(params, run.mask)
    state = init_state(trainable, run.tx, jax.random.key(1))
    rng = np.random.default_rng(0)
    batch_np = {k: (rng.integers(0, 256, v.shape).astype(v.dtype) if k == "pixels" else
                    np.ones(v.shape, v.dtype)) for k, v in batch_a.items()}
    batch_dev = jax.device_put(batch_np, jax.tree.map(lambda x: x.sharding, batch_a))
    frozen = jax.device_put(frozen, jax.tree.map(lambda x: x.sharding, frozen_a))
    state = jax.device_put(state, jax.tree.map(lambda x: x.sharding, state_a))
    times = []
    for i in range(steps + 2):  # the state is donated: thread it through
        t = time.perf_counter()
        state, metrics = compiled(state, frozen, batch_dev)
        jax.block_until_ready((state, metrics))
        if i >= 2:
            times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    model = config.model
    return dict(trainable_params=param_count(state_a["params"]),
                frozen_params=param_count(frozen_a),
                frames=model.num_frames if model.temporal else 1, image_size=model.image_size,
                width=model.channels, batch=config.data.batch_size, step_time_s=step_s,
                flops_per_step=flops, achieved_flops_per_s=flops / step_s,
                compile_s=compile_s, device=str(jax.devices()[0].device_kind),
                loss=float(metrics["loss"]))


def throughput(stage: str, peak: float, frames: int, size: int, width: int, batch: int) -> dict:
    out = time_compiled_step(bench_config(stage, frames, size, width, batch))
    return dict(figure=f"train_step_{stage}", **out, matmul_peak_flops_per_s=peak,
                ratio_to_peak=out["achieved_flops_per_s"] / peak)


def remat_probe() -> dict:
    """Does this backend's `memory_analysis()` reflect `jax.checkpoint`? A 10-layer MLP's
    gradient compiled with and without per-layer checkpointing (temp bytes)."""
    def loss(ws, x, remat):
        layer = lambda w, h: jnp.tanh(jnp.tanh(h @ w) @ w)
        layer = jax.checkpoint(layer) if remat else layer
        for w in ws:
            x = layer(w, x)
        return jnp.sum(x ** 2)

    ws = [jax.ShapeDtypeStruct((512, 512), jnp.float32)] * 10
    x = jax.ShapeDtypeStruct((8192, 512), jnp.float32)
    temp = lambda remat, options: int(jax.jit(jax.grad(lambda w, h: loss(w, h, remat))).lower(
        ws, x).compile(options).memory_analysis().temp_size_in_bytes)
    options = remat_compiler_options()
    return dict(figure="remat_probe", backend=jax.default_backend(), compiler_options=options,
                temp_bytes_no_remat=temp(False, None), temp_bytes_remat_default=temp(True, None),
                temp_bytes_remat=temp(True, options))


def paper_memory(remat: bool = True) -> dict:
    n = jax.device_count()
    model = presets.paper_stunet(remat=remat)
    c = base_config("stunet", model)
    c.text.update(width=model.text_dim, depth=1, num_heads=32, max_length=64, trainable=False)
    c.data.batch_size = n
    c.train.init_from = "(abstract)"
    mesh = make_mesh({"fsdp": n})
    run = build_run(c, mesh)
    state_a, frozen_a = run.state, run.frozen
    t = time.perf_counter()
    compiled = run.compile()  # setup.compiler_options: the remat options, as train.py
    compile_s = time.perf_counter() - t
    report = memory_report(compiled)
    return dict(figure="paper_stunet_train_step_memory", devices=n, mesh={"fsdp": n},
                frames=model.num_frames, image_size=model.image_size, batch_per_device=1,
                remat=remat, compiler_options=setup.compiler_options(c), compute_dtype=model.dtype,
                trainable_params=param_count(state_a["params"]),
                frozen_params=param_count(frozen_a), per_device=report,
                fits_80GB=report["total_bytes"] < 80e9, compile_s=compile_s)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paper-memory", action="store_true")
    p.add_argument("--no-remat", action="store_true", help="--paper-memory without remat")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=4)
    a = p.parse_args()
    host_memory.relaunch_with_tuned_malloc()  # as train.py runs (LUMIERE_MALLOC_TUNING=0: off)
    if a.paper_memory:
        print(json.dumps(remat_probe()), flush=True)
        print(json.dumps(paper_memory(remat=not a.no_remat)), flush=True)
        return
    peak = matmul_peak()
    print(json.dumps(dict(figure="matmul_peak", flops_per_s=peak)), flush=True)
    for stage in ("t2i", "stunet"):
        print(json.dumps(throughput(stage, peak, a.frames, a.size, a.width, a.batch)), flush=True)


if __name__ == "__main__":
    main()
