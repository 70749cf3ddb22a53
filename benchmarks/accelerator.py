"""Accelerator figures in one short run (started by `benchmarks/accelerator.sh`).

    python benchmarks/accelerator.py            # on a GPU / TPU: the figures below
    python benchmarks/accelerator.py --smoke    # any backend, tiny sizes: checks the plumbing

One JSON object per figure:
  device            the device kind, and its dense bf16 peak from `DENSE_BF16_PEAKS`
                    (vendor datasheet figures, no sparsity; None when the kind is unknown)
  matmul_peak       a jitted 8192^2 bf16 matmul, measured in this run
  stunet_mfu        the STUNet train step `train.py` runs (`build_run`), bf16 compute with
                    fp32 master weights, at a size that loads the chip (the paper's widths
                    256/512/768/1024, 64 px, 16 frames, batch 4): step time, FLOPs from
                    `cost_analysis()`, MFU against the dense bf16 peak and against the
                    measured matmul
  paper_memory      the paper-scale STUNet step (80 frames, 128 px, remat), compiled for
                    this one device from shapes alone: `memory_analysis()`
  cascade_per_clip  the shipped cascade's sampling time (`benchmarks/run_all.py`)
Untested on an accelerator so far (no run has had one); `--smoke` runs on CPU. Sized
from shapes on XLA:CPU: the MFU step is 30.0 TFLOP and needs 46.2 GiB (compiled in 47 s);
the paper-scale step on one device needs 40.3 GiB (58 s), so both fit an 80 GB device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from timing import matmul_peak  # noqa: E402  (benchmarks/timing.py)

# Dense bf16 tensor throughput, FLOP/s, by `jax.devices()[0].device_kind` (prefix match).
DENSE_BF16_PEAKS = {
    "NVIDIA H200": 989e12, "NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100": 989e12, "NVIDIA A100": 312e12, "NVIDIA L40S": 362e12, "NVIDIA L4": 121e12,
    "NVIDIA A10G": 70e12, "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12,
    "TPU v5p": 459e12, "TPU v5": 459e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12,
}


def dense_bf16_peak(kind: str) -> float | None:
    matches = [k for k in DENSE_BF16_PEAKS if kind.startswith(k)]
    return DENSE_BF16_PEAKS[max(matches, key=len)] if matches else None


def stunet_mfu(smoke: bool, peak: float | None, measured: float) -> dict:
    from configs.common import base_config
    from lumiere_jax.models import presets
    from train_step import time_compiled_step

    if smoke:
        model, batch = presets.tiny_stunet(dtype="bfloat16"), 2
    else:
        model = presets.paper_stunet(image_size=64, num_frames=16, text_dim=512)
        batch = 4
    c = base_config("stunet", model)
    c.text.update(width=model.text_dim, depth=1, num_heads=8 if not smoke else 2,
                  max_length=16, trainable=False)
    c.data.batch_size = batch
    out = time_compiled_step(c, steps=5)
    achieved = out["achieved_flops_per_s"]
    return dict(figure="stunet_mfu", **out, compute_dtype=model.dtype,
                channels=[model.channels * m for m in model.channel_mults],
                dense_bf16_peak_flops_per_s=peak, mfu=achieved / peak if peak else None,
                measured_bf16_matmul_flops_per_s=measured,
                ratio_to_measured_matmul=achieved / measured)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, any backend")
    a = p.parse_args()
    device = jax.devices()[0]
    if not a.smoke and device.platform == "cpu":
        raise SystemExit("benchmarks/accelerator.py: no GPU / TPU visible to JAX (devices: "
                         f"{jax.devices()}); install jax for the accelerator, or use --smoke")
    kind, start = device.device_kind, time.perf_counter()
    peak = dense_bf16_peak(kind)
    print(json.dumps(dict(figure="device", platform=device.platform, device_kind=kind,
                          device_count=jax.device_count(), dense_bf16_peak_flops_per_s=peak,
                          jax=jax.__version__)), flush=True)
    measured = matmul_peak(1024 if a.smoke else 8192, dtype=jnp.bfloat16)
    print(json.dumps(dict(figure="matmul_peak", dtype="bfloat16", flops_per_s=measured,
                          of_dense_peak=measured / peak if peak else None)), flush=True)
    print(json.dumps(stunet_mfu(a.smoke, peak, measured)), flush=True)
    if not a.smoke:
        from train_step import paper_memory

        print(json.dumps(paper_memory(remat=True)), flush=True)
    from run_all import cascade_per_clip

    print(json.dumps(cascade_per_clip(repeats=1 if a.smoke else 3)), flush=True)
    print(json.dumps(dict(figure="total", seconds=time.perf_counter() - start)), flush=True)


if __name__ == "__main__":
    main()
