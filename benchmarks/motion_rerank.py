"""Best of K from the pixels: how many candidates does it take to follow the prompt?

    python benchmarks/motion_rerank.py [--pretrained pretrained/moving_shapes] \
        [--prompts 32] [--candidates 4] [--sampling NAME=VALUE ...] [--out FILE.json] \
        [--save FILE.npz | --load FILE.npz]

For the first `--prompts` of evaluate.py's held-out short test prompts (same seed, same
draw), the base stage samples `--candidates` clips per prompt from different noise (the
folder's sampling defaults, one clip per call: the folder's own best-of-K default is
turned off, since this script does the picking). Each candidate is read by the analyzer
(`score_clip`, the judge) and scored by each pick rule (the pickers, which read no labels):
'motion' (`diffusion.clip_motion.motion_agreement` against the planner's velocity) and
'coherence' (`motion_coherence`). Reports, per rule and for k = 1 ... K, the accuracy per
attribute when the best of the first k candidates is kept (k = 1: the base alone), a
random candidate's accuracy (the mean over all K) and the oracle (any of the K right).
`--save` keeps the candidates (uint8) with their prompts and plans; `--load` re-scores
saved ones without sampling. One JSON line per prompt, then the summary (also written to
`--out`).
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
from lumiere_jax import cli  # noqa: E402
from lumiere_jax.diffusion.clip_motion import motion_agreement, motion_coherence  # noqa: E402
from lumiere_jax.eval import analyze_clip  # noqa: E402
from lumiere_jax.eval.scoring import score_clip  # noqa: E402
from lumiere_jax.pipeline import LumierePipeline  # noqa: E402

ATTRIBUTES = ("direction", "color", "shape", "count", "color_shape_direction")
RULES = ("motion", "coherence")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrained", default="pretrained/moving_shapes")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--sampling", action="append", default=[], metavar="NAME=VALUE",
                    help="a SamplingConfig field over the folder's default, e.g. "
                         "base_guidance=6 or base_time_shift=-1.5 (repeatable)")
    ap.add_argument("--save", default="", help="write the candidates to this .npz")
    ap.add_argument("--load", default="", help="re-score the candidates of a --save file")
    a = ap.parse_args()
    if a.prompts < 1 or a.candidates < 2:
        ap.error("--prompts must be >= 1 and --candidates >= 2 (a pick needs a choice)")
    if a.load and (a.sampling or a.save):
        ap.error("--load re-scores saved candidates: --sampling and --save do not apply")
    if a.load:
        saved = np.load(a.load)
        candidates, plan = saved["candidates"], saved["plan"]
        prompts = [str(p) for p in saved["prompts"]]
        settings = json.loads(str(saved["settings"]))
    else:
        extra = {}
        for item in a.sampling:
            name, sep, value = item.partition("=")
            if not sep:
                ap.error(f"--sampling {item!r}: expected NAME=VALUE, e.g. base_guidance=6")
            extra[name] = cli.setting_value(value)
        pipe = LumierePipeline.from_pretrained(a.pretrained, progress=False, base_candidates=1,
                                               **extra)
        if not pipe.sampling.motion_noise:
            raise SystemExit(f"{a.pretrained}: its sampling defaults have motion_noise 0; the "
                             "motion score compares with the planner's velocity")
        prompts = held_out_prompts(a.prompts, a.seed)
        key = jax.random.key(a.seed)
        candidates = np.stack([np.asarray(pipe(prompts, jax.random.fold_in(key, k),
                                               base_only=True))
                               for k in range(a.candidates)], axis=1)   # (P, K, T, H, W, 3)
        size, frames = candidates.shape[3], candidates.shape[2]
        plan = np.asarray(pipe.motion_planner.velocity(prompts, size, frames))  # (P, 2)
        s = pipe.sampling
        settings = dict(pretrained=a.pretrained, seed=a.seed, motion_noise=s.motion_noise,
                        motion_layout=s.motion_layout, base_guidance=s.base_guidance,
                        base_steps=s.base_steps, base_time_shift=s.base_time_shift,
                        overrides=extra)
        if a.save:
            np.savez_compressed(a.save, candidates=candidates, plan=plan,
                                prompts=np.asarray(prompts), settings=json.dumps(settings))
    rows = []
    for p, prompt in enumerate(prompts):
        matches = [score_clip(analyze_clip(v), prompt)["matches"] for v in candidates[p]]
        right = {m: np.array([bool(x[m]) for x in matches]) for m in ATTRIBUTES}
        x = jnp.asarray(candidates[p], jnp.float32) / 127.5 - 1.0
        scores = {"motion": np.asarray(motion_agreement(
                      x, jnp.tile(jnp.asarray(plan[p])[None], (len(x), 1)))),
                  "coherence": np.asarray(motion_coherence(x))}
        rows.append(dict(right=right, scores=scores))
        print(json.dumps(dict(prompt=prompt, **{r: v.round(3).tolist() for r, v in scores.items()},
                              **{m: r.tolist() for m, r in right.items()})), flush=True)
    k_max = candidates.shape[1]
    summary = dict(prompts=len(prompts), candidates=k_max, sampling=settings)
    for m in ATTRIBUTES:
        summary[m] = {f"{rule}_best_of_{k}": float(np.mean(
            [r["right"][m][int(np.argmax(r["scores"][rule][:k]))] for r in rows]))
            for rule in RULES for k in range(1, k_max + 1)}
        summary[m]["candidate_mean"] = float(np.mean([r["right"][m].mean() for r in rows]))
        summary[m]["oracle"] = float(np.mean([r["right"][m].any() for r in rows]))
    print(json.dumps(summary))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
