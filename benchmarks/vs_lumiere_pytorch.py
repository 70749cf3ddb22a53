"""Side by side: lumiere_jax's STUNet train step against lucidrains' lumiere-pytorch.

    python benchmarks/vs_lumiere_pytorch.py --torch_python /tmp/torchenv/bin/python

The matched step (as in issue 16): temporal layers trained, T2I weights frozen, 32 px,
16 frames, batch 4, base width 32, widths 32 / 64 / 128 (two spatial downsamplings, a
temporal one after each), 2 blocks per level, self-attention and temporal attention at
8 px, temporal convolutions at 32 and 16 px, fp32, AdamW.
  ours:  the step `train.py` runs (`build_run`: v-objective, AdamW, EMA), text encoder
         frozen (1 layer, width 32), no text cross-attention;
  torch: `lumiere_pytorch.Lumiere` inflating `KarrasUnet(dim=32, dim_max=128,
         num_downsamples=2, num_blocks_per_stage=2, attn_res=(8,))`: temporal conv blocks
         after downs.0/1/3/4 and ups.4-6/8-10, temporal attention after downs.6/7,
         mids.0 and ups.0-2, temporal down / upsampling at downs.2/5 and ups.3/7;
         MSE to the noise, `torch.optim.AdamW`, `torch.set_num_threads(<cores>)`.
Each side runs in its own subprocess (warm-up, then the median of `--steps` timed steps),
alternating, `--rounds` times; the summary is the median per side and the ratio of
clips/s. FLOPs: ours from `cost_analysis()`, torch's from `torch.utils.flop_counter`.
The matmul peak (2048^2 fp32, jitted) is measured in each of our rounds. Run it on an
idle machine: a ratio counts only when both sides ran in the same run.
Both workers get the same environment: by default glibc's malloc tuned as train.py tunes
it (`lumiere_jax.host_memory`: huge pages, freed memory kept; each side's step is faster
with it), `--malloc default` for glibc's defaults.

The torch side needs its own virtualenv (nothing else in the project needs torch):
    python3 -m venv /tmp/torchenv && . /tmp/torchenv/bin/activate
    pip install torch   # a CPU wheel
    pip install --no-deps lumiere-pytorch==0.0.24 denoising-diffusion-pytorch==2.3.4 \\
        x-transformers
    pip install beartype einops packaging loguru einx torch-einops-utils optree
`denoising_diffusion_pytorch/__init__.py` imports torchvision and more; the worker loads
only its `attend.py` and `karras_unet.py` files.
One JSON object per line; the last is the summary.
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
SIZE, FRAMES, BATCH, WIDTH, MAX_WIDTH = 32, 16, 4, 32, 128


# --- lumiere_jax worker --------------------------------------------------------------------

def jax_step(steps: int) -> dict:
    sys.path[:0] = [ROOT, HERE]
    import jax

    from step_profile import matched_config
    from timing import matmul_peak
    from train_step import time_compiled_step

    config = matched_config("stunet", BATCH)  # step_profile's matched shape, less the text
    config.model.cross_attention_levels = ()  # lumiere-pytorch's U-Net reads no text
    config.text.trainable = False
    peak = matmul_peak()
    out = time_compiled_step(config, steps=steps)
    out.update(side="lumiere_jax", jax=jax.__version__, matmul_peak_flops_per_s=peak,
               ratio_to_peak=out["achieved_flops_per_s"] / peak,
               clips_per_s=BATCH / out["step_time_s"], threads=os.cpu_count())
    return out


# --- lumiere-pytorch worker ----------------------------------------------------------------

def load_karras_unet():
    import importlib.util
    import site
    import types

    for base in site.getsitepackages():
        folder = os.path.join(base, "denoising_diffusion_pytorch")
        if os.path.isdir(folder):
            break
    else:
        raise SystemExit("denoising-diffusion-pytorch is not installed in this Python; see "
                         "the docstring of benchmarks/vs_lumiere_pytorch.py")
    package = types.ModuleType("denoising_diffusion_pytorch")
    package.__path__ = [folder]
    sys.modules["denoising_diffusion_pytorch"] = package
    for name in ("attend", "karras_unet"):
        spec = importlib.util.spec_from_file_location(f"denoising_diffusion_pytorch.{name}",
                                                      os.path.join(folder, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["denoising_diffusion_pytorch.karras_unet"].KarrasUnet


def torch_step(steps: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lumiere_pytorch import Lumiere

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    karras = load_karras_unet()(image_size=SIZE, dim=WIDTH, dim_max=MAX_WIDTH, channels=3,
                                num_downsamples=2, num_blocks_per_stage=2, attn_res=(8,),
                                dropout=0.0)
    model = Lumiere(karras, image_size=SIZE, unet_time_kwarg="time",
                    conv_module_names=["downs.0", "downs.1", "downs.3", "downs.4", "ups.4",
                                       "ups.5", "ups.6", "ups.8", "ups.9", "ups.10"],
                    attn_module_names=["downs.6", "downs.7", "mids.0", "ups.0", "ups.1",
                                       "ups.2"],
                    downsample_module_names=["downs.2", "downs.5"],
                    upsample_module_names=["ups.3", "ups.7"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    video = torch.randn(BATCH, 3, FRAMES, SIZE, SIZE)
    noise = torch.randn_like(video)
    t = torch.rand(BATCH)

    def step():
        optimizer.zero_grad(set_to_none=True)
        prediction = model(video + noise, time=t)
        loss = torch.nn.functional.mse_loss(prediction, noise)
        loss.backward()
        optimizer.step()
        return float(loss)

    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return dict(side="lumiere_pytorch", torch=torch.__version__, threads=torch.get_num_threads(),
                frames=FRAMES, image_size=SIZE, batch=BATCH, step_time_s=step_s,
                clips_per_s=BATCH / step_s, flops_per_step=flops,
                achieved_flops_per_s=flops / step_s, loss=loss,
                trainable_params=sum(p.numel() for p in trainable),  # Lumiere.parameters():
                frozen_params=sum(p.numel() for p in model.model.parameters()))  # temporal only


# --- orchestration -------------------------------------------------------------------------

def worker_environ(malloc: str) -> dict:
    """Both workers' environment: glibc's malloc tuned as train.py tunes it, or as given."""
    if malloc == "default":
        return dict(os.environ)
    sys.path.insert(0, ROOT)
    from lumiere_jax import host_memory  # stdlib only: the torch side needs no jax
    return host_memory.tuned_environ(os.environ) or dict(os.environ)


def run_worker(python: str, side: str, steps: int, base_env: dict) -> dict:
    env = dict(base_env)
    if side == "torch":  # keep our venv's site-packages out of the torch interpreter
        env.pop("PYTHONPATH", None)
    r = subprocess.run([python, os.path.abspath(__file__), "--worker", side, "--steps",
                        str(steps)], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"{side} worker failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch_python", help="the Python of the virtualenv with lumiere-pytorch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed steps per worker")
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="glibc malloc settings of both workers (lumiere_jax.host_memory)")
    p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.rounds < 1 or a.steps < 1:
        p.error(f"--rounds={a.rounds} and --steps={a.steps} must be >= 1")
    if a.worker:
        result = jax_step(a.steps) if a.worker == "jax" else torch_step(a.steps)
        result["glibc_tunables"] = os.environ.get("GLIBC_TUNABLES", "")
        print(json.dumps(result), flush=True)
        return
    if not a.torch_python or not os.access(a.torch_python, os.X_OK):
        p.error(f"--torch_python={a.torch_python!r}: give an executable Python with "
                "lumiere-pytorch installed (setup in this script's docstring)")
    results = {"lumiere_jax": [], "lumiere_pytorch": []}
    env = worker_environ(a.malloc)
    for i in range(a.rounds):
        order = ("jax", "torch") if i % 2 == 0 else ("torch", "jax")
        for side in order:
            r = run_worker(sys.executable if side == "jax" else a.torch_python, side, a.steps,
                           env)
            r["round"] = i
            results[r["side"]].append(r)
            print(json.dumps(r), flush=True)
    median = {k: statistics.median(r["clips_per_s"] for r in v) for k, v in results.items()}
    print(json.dumps(dict(
        figure="vs_lumiere_pytorch", rounds=a.rounds, malloc=a.malloc,
        median_clips_per_s=median,
        median_step_time_s={k: statistics.median(r["step_time_s"] for r in v)
                            for k, v in results.items()},
        ratio_clips_per_s=median["lumiere_jax"] / median["lumiere_pytorch"],
        per_round_ratio=[j["clips_per_s"] / t["clips_per_s"] for j, t in
                         zip(results["lumiere_jax"], results["lumiere_pytorch"])])),
        flush=True)


if __name__ == "__main__":
    main()
