"""Best of K by measured motion: how many candidates does it take to follow the prompt?

    python benchmarks/motion_rerank.py [--pretrained pretrained/moving_shapes] \
        [--prompts 32] [--candidates 4] [--out FILE.json]

For the first `--prompts` of evaluate.py's held-out short test prompts (same seed, same
draw), the base stage samples `--candidates` clips per prompt from different noise (the
folder's sampling defaults, one clip per call: the folder's own best-of-K default is
turned off, since this script does the picking). Each candidate is read by the analyzer
(`score_clip`, the judge) and scored by `diffusion.clip_motion.motion_agreement` against
the planner's velocity (the picker, which reads no labels). Reports, for k = 1 ... K, the
accuracy per attribute when the best of the first k candidates by motion agreement is kept
(k = 1: the base alone), and the oracle (any of the K right). One JSON line per prompt,
then the summary (also written to `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.critic_rerank import held_out_prompts  # noqa: E402
from lumiere_jax.diffusion.clip_motion import motion_agreement  # noqa: E402
from lumiere_jax.eval import analyze_clip  # noqa: E402
from lumiere_jax.eval.scoring import score_clip  # noqa: E402
from lumiere_jax.pipeline import LumierePipeline  # noqa: E402

ATTRIBUTES = ("direction", "color", "shape", "count", "color_shape_direction")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrained", default="pretrained/moving_shapes")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.prompts < 1 or a.candidates < 2:
        ap.error("--prompts must be >= 1 and --candidates >= 2 (a pick needs a choice)")
    pipe = LumierePipeline.from_pretrained(a.pretrained, progress=False, base_candidates=1)
    if not pipe.sampling.motion_noise:
        raise SystemExit(f"{a.pretrained}: its sampling defaults have motion_noise 0; the "
                         "motion score compares with the planner's velocity")
    prompts = held_out_prompts(a.prompts, a.seed)
    key = jax.random.key(a.seed)
    candidates = np.stack([np.asarray(pipe(prompts, jax.random.fold_in(key, k), base_only=True))
                           for k in range(a.candidates)], axis=1)       # (P, K, T, H, W, 3)
    size, frames = candidates.shape[3], candidates.shape[2]
    plan = pipe.motion_planner.velocity(prompts, size, frames)             # (P, 2)
    rows = []
    for p, prompt in enumerate(prompts):
        matches = [score_clip(analyze_clip(v), prompt)["matches"] for v in candidates[p]]
        right = {m: np.array([bool(x[m]) for x in matches]) for m in ATTRIBUTES}
        x = jnp.asarray(candidates[p], jnp.float32) / 127.5 - 1.0
        score = np.asarray(motion_agreement(x, jnp.tile(jnp.asarray(plan[p])[None],
                                                        (len(x), 1))))
        rows.append(dict(right=right, score=score))
        print(json.dumps(dict(prompt=prompt, score=score.round(3).tolist(),
                              **{m: r.tolist() for m, r in right.items()})), flush=True)
    summary = dict(pretrained=a.pretrained, prompts=len(prompts), candidates=a.candidates,
                   sampling=dict(motion_noise=pipe.sampling.motion_noise,
                                 motion_layout=pipe.sampling.motion_layout))
    for m in ATTRIBUTES:
        summary[m] = {f"best_of_{k}": float(np.mean(
            [r["right"][m][int(np.argmax(r["score"][:k]))] for r in rows]))
            for k in range(1, a.candidates + 1)}
        summary[m]["oracle"] = float(np.mean([r["right"][m].any() for r in rows]))
    print(json.dumps(summary))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
