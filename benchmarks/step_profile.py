"""Where a train step's time goes: convolutions and matmuls vs everything else.

    python benchmarks/step_profile.py                    # t2i, stunet, ssr at the matched shape
    python benchmarks/step_profile.py --stages stunet --steps 5 --top 15

The matched shape of issue #16 (and of the lumiere-pytorch comparison): 32 px, base width
32, widths 32 / 64 / 128 (2 spatial downsamplings), 2 ResBlocks per level, self-attention
at the 8 px level, 16 frames, batch 4, fp32, AdamW; the SSR is the demo SSR's layout
(2 levels, 4-frame windows) at 64 px. Each stage's step is built as train.py builds it
(`build_run`), run a few times under `jax.profiler.trace`, and every executed XLA thunk
(one fused kernel) in the Perfetto trace is matched, by name, to its instruction in the
compiled HLO. A thunk is

  conv_matmul   a convolution or dot, or a fusion that contains one
  layout        a transpose / copy (alone or fused only with other layout ops)
  reduction     a fusion with a reduce and no conv / dot (norm statistics, losses, grad norm)
  elementwise   everything else (activations, norm scale / shift, the AdamW update, ...)

and each category's share of the summed thunk time is printed with the largest non-conv
thunks and their source (`op_name` metadata: which layer made them). One JSON object per
stage; `thunk_time_s / steps` against `step_time_s` shows how much of the step the
thunks cover (the rest: runtime overhead between them).

With XLA's own CPU kernels (`lumiere_jax.xla_options.kernel_options()`, which the step
compiles with) a convolution's thunk completes asynchronously on Eigen's threads and the
trace no longer times it: the traced kernels then cover about half the step, and
`shares` undercounts convolutions. `traced_share_of_wall` says how much the trace covers;
`conv_matmul_share_of_wall` = 1 - (non-conv thunk time / wall time) is the share of the
step left to convolutions, matmuls and what the trace does not see (an estimate: an upper
bound on the convolutions' share, a lower bound if non-conv thunks overlap).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import flax.linen as nn
import jax
import numpy as np

from timing import matmul_peak  # benchmarks/timing.py

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs.common import base_config  # noqa: E402  (the repository's configs/)
from lumiere_jax import host_memory  # noqa: E402
from lumiere_jax.models import presets  # noqa: E402
from lumiere_jax.parallel import make_mesh  # noqa: E402
from lumiere_jax.training import init_state, setup, split_params  # noqa: E402
from lumiere_jax.training.run import build_run  # noqa: E402

INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*?)\s([a-z][a-z0-9\-]*)\((.*)$")
CALLED = re.compile(r"(?:calls|to_apply|called_computations|body|condition)=\{?%?([\w.\-, %]+)\}?")
COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
OP_NAME = re.compile(r'op_name="([^"]*)"')
MATH = {"convolution", "dot"}
LAYOUT = {"transpose", "copy", "bitcast", "reshape", "broadcast", "parameter", "tuple",
          "get-tuple-element", "constant", "slice", "concatenate", "pad", "dynamic-slice",
          "dynamic-update-slice"}


def matched_config(stage: str, batch: int):
    """The issue's matched shape for `stage` ('t2i' | 'stunet' | 'ssr')."""
    shape = dict(channels=32, channel_mults=(1, 2, 4), num_res_blocks=2, attention_levels=(2,),
                 cross_attention_levels=(1, 2), text_dim=32, image_size=32)
    if stage == "t2i":
        model = presets.tiny_t2i(**shape)
    elif stage == "stunet":
        model = presets.tiny_stunet(**shape, num_frames=16)
    else:
        model = presets.demo_ssr(text_dim=32)
    c = base_config(stage, model)
    c.text.update(width=32, depth=1, num_heads=2, max_length=16, trainable=True)
    c.data.batch_size = batch
    if stage == "ssr":
        c.diffusion.ssr_low_res = 32
    return c


def parse_hlo(text: str) -> dict:
    """{instruction name: (opcode, called computation names, op_name, shape)} and, under
    the key None, {computation name: [instruction names]}."""
    instructions, computations, current = {}, collections.defaultdict(list), None
    for line in text.splitlines():
        m = COMPUTATION.match(line)
        if m and "=" not in line.split("{")[0]:
            current = m.group(1)
            continue
        m = INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, opcode, rest = m.groups()
        called = []
        for group in CALLED.findall(rest):
            called += [c.strip().lstrip("%") for c in group.split(",") if c.strip()]
        op = OP_NAME.search(rest)
        instructions[name] = (opcode, called, op.group(1) if op else "",
                              re.sub(r"\{[^}]*\}", "", shape)[:60])
        if current:
            computations[current].append(name)
    instructions[None] = computations
    return instructions


def opcodes_under(name: str, hlo: dict, seen=None) -> set:
    """Every opcode an instruction runs, through the computations it calls."""
    seen = set() if seen is None else seen
    opcode, called = hlo[name][:2]
    out = {opcode}
    for comp in called:
        if comp in seen:
            continue
        seen.add(comp)
        for inner in hlo[None].get(comp, ()):
            out |= opcodes_under(inner, hlo, seen)
    return out


def category(name: str, hlo: dict) -> str:
    ops = opcodes_under(name, hlo) - {"fusion"}
    if ops & MATH or any("conv" in o for o in ops):
        return "conv_matmul"
    if "reduce" in ops or "reduce-window" in ops:
        return "reduction"
    if ops <= LAYOUT and ops & {"transpose", "copy", "concatenate", "pad", "slice",
                                 "dynamic-slice", "dynamic-update-slice"}:
        return "layout"
    return "elementwise"


def layer_of(op_name: str) -> str:
    """The model part an op came from: its `op_name` without the transformation wrappers
    and the primitive (e.g. 'down0_0_res/GroupNorm_0'); '(no source)' for compiler copies."""
    parts = [p for p in op_name.split("/") if p and not re.match(
        r"^(jit|jvp|transpose|vmap|remat|checkpoint|cond|while|pjit)\(|^\w+\(", p)]
    parts = [p for p in parts if not re.fullmatch(r"[a-z_]+", p) or "_" in p and p[-1].isdigit()]
    return "/".join(parts[-3:]) or "(no source)"


def thunk_times(trace_dir: str) -> dict:
    """{event name: (total microseconds, count)} of the complete ('X') events."""
    path = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
    if not path:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {trace_dir}")
    with gzip.open(path[0]) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    out = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.get("ph") == "X":
            out[e["name"]][0] += float(e.get("dur", 0.0))
            out[e["name"]][1] += 1
    return out


def profile(stage: str, batch: int, steps: int, top: int, peak: float) -> dict:
    config = matched_config(stage, batch)
    run = build_run(config, make_mesh({"data": 1}, devices=jax.devices()[:1]))
    compiled = run.compile()
    hlo = parse_hlo(compiled.as_text())
    params = nn.meta.unbox(jax.jit(setup.make_init_fn(run.model, run.encoder, config))(
        jax.random.key(0, impl="rbg")))
    trainable, frozen = split_params(params, run.mask)
    put = lambda tree, like: jax.device_put(tree, jax.tree.map(lambda x: x.sharding, like))
    state = put(init_state(trainable, run.tx, jax.random.key(1)), run.state)
    frozen = put(frozen, run.frozen)
    rng = np.random.default_rng(0)
    batch_np = {k: (rng.integers(0, 256, v.shape).astype(v.dtype) if k == "pixels" else
                    np.ones(v.shape, v.dtype)) for k, v in run.batch.items()}
    batch_dev = put(batch_np, run.batch)
    for _ in range(2):  # warm-up; the state is donated, so thread it through
        state, metrics = compiled(state, frozen, batch_dev)
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(steps):
                state, metrics = compiled(state, frozen, batch_dev)
            jax.block_until_ready((state, metrics))
            wall = time.perf_counter() - start
        times = thunk_times(trace_dir)
    shares, unmatched, rows = collections.Counter(), 0.0, []
    for name, (us, count) in times.items():
        if name not in hlo:
            continue
        kind = category(name, hlo)
        shares[kind] += us
        rows.append((us, name, kind, hlo[name][0], hlo[name][2], hlo[name][3]))
    total = sum(shares.values())
    non_conv = total - shares["conv_matmul"]
    rows.sort(reverse=True)
    by_layer = collections.Counter()
    for us, _, kind, _, src, _ in rows:
        if kind != "conv_matmul":
            by_layer[layer_of(src)] += us
    flops = float(compiled.cost_analysis()["flops"])
    return dict(
        figure=f"step_profile_{stage}", steps=steps, batch=batch,
        frames=run.model_config.num_frames if stage != "t2i" else 1,
        image_size=run.model_config.image_size, step_time_s=wall / steps,
        thunk_time_s=total / 1e6, flops_per_step=flops,
        achieved_flops_per_s=flops * steps / wall, matmul_peak_flops_per_s=peak,
        shares={k: round(v / total, 4) for k, v in sorted(shares.items())},
        traced_share_of_wall=round(total / 1e6 / wall, 4),
        conv_matmul_share_of_wall=round(1.0 - non_conv / 1e6 / wall, 4),
        non_conv_by_layer=[dict(layer=layer, time_share=round(us / total, 4))
                           for layer, us in by_layer.most_common(top)],
        top_non_conv=[dict(thunk=name, kind=kind, opcode=op, shape=shape,
                           time_share=round(us / total, 4), layer=layer_of(src))
                      for us, name, kind, op, src, shape in rows if kind != "conv_matmul"][:top],
        device=str(jax.devices()[0].device_kind),
        glibc_tunables=os.environ.get("GLIBC_TUNABLES", ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", default="t2i,stunet,ssr")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=10)
    a = p.parse_args()
    host_memory.relaunch_with_tuned_malloc()  # as train.py runs (LUMIERE_MALLOC_TUNING=0: off)
    peak = matmul_peak()
    print(json.dumps(dict(figure="matmul_peak", flops_per_s=peak)), flush=True)
    for stage in a.stages.split(","):
        if stage not in ("t2i", "stunet", "ssr"):
            sys.exit(f"--stages: {stage!r} is not one of t2i, stunet, ssr")
        print(json.dumps(profile(stage, a.batch, a.steps, a.top, peak)), flush=True)


if __name__ == "__main__":
    main()
