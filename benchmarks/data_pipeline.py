"""Input-pipeline throughput (clips/s) at a training-like config; prints one JSON per figure.

    python benchmarks/data_pipeline.py                      # 16 frames, 32 px, batch 4
    python benchmarks/data_pipeline.py --num_frames 16 --size 64 --batch_size 8 --threads 4

Figures:
  build: moving_shapes generation + array_record write rate (offline, once per dataset).
  pipeline: make_dataset clips/s (read + zlib decode + shuffle + crop + batch + prefetch),
    median of --repeats windows of --batches batches after --warmup batches.
  pipeline_resize: the same with a center-crop + resize per clip (source at 2x size).
  pipeline_images: T2I batches (one frame per clip).
  pipeline_workers: the `pipeline` figure with --workers decode processes (grain
    mp_prefetch), the setting to use when one Python process cannot keep up.
Compare clips/s with the train step's consumption (batch_size / step time): the pipeline
must deliver more clips/s than the step eats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

from lumiere_jax.data import load_source, make_dataset
from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig


def _build(data_dir: str, name: str, num_frames: int, size: int, n: int) -> tuple[str, float]:
    config = MovingShapesConfig(name=name, num_frames=num_frames, height=size, width=size,
                                num_train=n, num_test=0)
    builder = MovingShapes(data_dir=data_dir, config=config)
    t0 = time.perf_counter()
    builder.download_and_prepare()
    return str(builder.data_dir), time.perf_counter() - t0


def _throughput(source, args, **kw) -> dict:
    it = iter(make_dataset(source, batch_size=args.batch_size, seed=0, num_threads=args.threads,
                           prefetch_buffer_size=2 * args.threads, **kw))
    for _ in range(args.warmup):
        next(it)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.batches):
            batch = next(it)
        times.append((time.perf_counter() - t0) / args.batches)
    per_batch = statistics.median(times)
    key = "image" if "image" in batch else "video"
    return {"batch_shape": list(batch[key].shape), "ms_per_batch": 1e3 * per_batch,
            "clips_per_s": args.batch_size / per_batch,
            "ms_per_batch_min": 1e3 * min(times), "ms_per_batch_max": 1e3 * max(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_frames", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--num_records", type=int, default=512)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data_dir", default=None, help="reuse/keep builds here (default: temp)")
    args = p.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="lumiere_bench_data_")
    common = {"dataset": "moving_shapes", "num_frames": args.num_frames, "size": args.size,
              "batch_size": args.batch_size, "threads": args.threads,
              "cpu_count": os.cpu_count()}
    try:
        path, secs = _build(data_dir, f"bench_f{args.num_frames}_s{args.size}", args.num_frames,
                            args.size, args.num_records)
        print(json.dumps({"figure": "build", **common, "num_records": args.num_records,
                          "seconds": secs, "clips_per_s": args.num_records / secs}))
        source = load_source(path, "train")
        print(json.dumps({"figure": "pipeline", **common, **_throughput(source, args)}))
        if args.workers:
            print(json.dumps({"figure": "pipeline_workers", **common, "workers": args.workers,
                              **_throughput(source, args, num_workers=args.workers)}))

        big, _ = _build(data_dir, f"bench_f{args.num_frames}_s{2 * args.size}", args.num_frames,
                        2 * args.size, args.num_records)
        print(json.dumps({"figure": "pipeline_resize", **common, "source_size": 2 * args.size,
                          **_throughput(load_source(big, "train"), args, size=args.size)}))
        print(json.dumps({"figure": "pipeline_images", **common,
                          **_throughput(source, args, images=True)}))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
