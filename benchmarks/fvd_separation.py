"""How far FVD separates real clips from real clips with their frames shuffled, against N.

    python benchmarks/fvd_separation.py [--clips 256 --frames 16 --size 64 --cache F.npz]

Real `moving_shapes` test clips: two disjoint sets A and B of --clips each, shuffle(B)
(each B clip's frames in a random order: same scenes, no motion order) and 32 clips of
uniform noise.
The I3D features (Kinetics-400, 400-d logits) of all of them are computed once (and kept
in --cache, so a rerun only recomputes the distances); then, for N = 16, 32, ... up to
--clips, the first N of each set give FVD(A, B), FVD(A, shuffle(B)) and FVD(A, noise).

FVD(A, B) of two samples of one distribution is pure small-sample bias and falls like
1/N; FVD(A, shuffle(B)) keeps a floor (the true distance) plus the same bias. So the
ratio grows with N, and the figure to quote is the ratio at the N an evaluation uses.
(A line in 1/N through these points does not reach 0 for real vs real: below N = 400,
the feature dimension, the bias is not yet 1/N, so no extrapolation is printed.)

Prints one JSON object (and writes it to --out if given).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from lumiere_jax.data.moving_shapes import make_example
from lumiere_jax.eval import I3DFeatures, frechet_distance

NOISE_CLIPS = 32


def clip_sets(clips: int, frames: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """{'a', 'b', 'shuffled_b', 'noise'}: uint8 (clips, frames, size, size, 3) each."""
    rng = np.random.default_rng(seed)
    real = np.stack([make_example(0, "test", i, frames, size, size)["video"]
                     for i in range(2 * clips)])
    a, b = real[:clips], real[clips:]
    shuffled = np.stack([v[rng.permutation(frames)] for v in b])
    noise = rng.integers(0, 256, (NOISE_CLIPS,) + a.shape[1:], dtype=np.uint8)
    return {"a": a, "b": b, "shuffled_b": shuffled, "noise": noise}


def features(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], float | None]:
    """I3D features of every set, from --cache when it holds this exact setting."""
    key = f"{args.clips}x{args.frames}x{args.size}"
    if args.cache and os.path.isfile(args.cache):
        with np.load(args.cache) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in ("a", "b", "shuffled_b", "noise")}, None
    extractor = I3DFeatures(batch_size=args.batch, progress=True)
    sets = clip_sets(args.clips, args.frames, args.size)
    start = time.perf_counter()
    feats = {name: extractor(videos, name=name) for name, videos in sets.items()}
    seconds_per_clip = (time.perf_counter() - start) / (3 * args.clips + NOISE_CLIPS)
    if args.cache:
        np.savez(args.cache, key=key, **feats)
    return feats, seconds_per_clip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=256, help="clips per set (A, B, ...)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8, help="clips per I3D forward")
    p.add_argument("--cache", default="", help="an .npz to keep / reuse the features in")
    p.add_argument("--out", default="", help="also write the JSON here")
    args = p.parse_args()
    if args.clips < 32 or args.clips & (args.clips - 1):
        p.error(f"--clips={args.clips}: a power of two >= 32 (the N ladder doubles from 16)")

    feats, seconds_per_clip = features(args)
    ns = [n for n in (16, 32, 64, 128, 256, 512, 1024) if n <= args.clips]
    rows = []
    for n in ns:
        a = feats["a"][:n]
        rows.append({"n": n, "real_vs_real": frechet_distance(a, feats["b"][:n]),
                     "real_vs_shuffled": frechet_distance(a, feats["shuffled_b"][:n]),
                     "real_vs_noise": frechet_distance(a, feats["noise"])})
        rows[-1]["shuffled_over_real"] = rows[-1]["real_vs_shuffled"] / rows[-1]["real_vs_real"]
    result = {
        "clips": args.clips, "frames": args.frames, "size": args.size,
        "i3d_seconds_per_clip": seconds_per_clip, "by_n": rows}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
