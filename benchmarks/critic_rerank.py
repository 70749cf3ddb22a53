"""Best of K: would reranking K base candidates per prompt with the critic follow prompts?

    python benchmarks/critic_rerank.py [--pretrained pretrained/moving_shapes] \
        [--prompts 16] [--candidates 4] [--critic_scale 100] [--score_t 0 0.3 0.6]

For the first `--prompts` of evaluate.py's held-out short test prompts (same seed, same
draw), the base stage samples `--candidates` clips per prompt from different noise (the
folder's sampling defaults, critic guidance at `--critic_scale`, one clip per call: the
folder's own best-of-K default is turned off, since this script does the picking). Each
candidate is read by the analyzer (`score_clip`) and scored by the folder's critic against
its prompt, on the clean clip (t = 0) and re-noised at each further `--score_t`. Reports,
per attribute (direction, colour + shape + direction): a random candidate's accuracy (what
the base alone gives), the oracle (any candidate right), the critic's pick (argmax of its score),
and the critic's pairwise win rate (a right candidate scored above a wrong one of the same
prompt; chance 0.5). The analyzer only judges; it never picks. One JSON object per prompt,
then the summary.
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
from lumiere_jax.data import load_source
from lumiere_jax.eval import analyze_clip, short_caption
from lumiere_jax.eval.captions import normalize_labels
from lumiere_jax.eval.scoring import score_clip
from lumiere_jax.pipeline import LumierePipeline

ATTRIBUTES = ("direction", "color_shape_direction")


def held_out_prompts(n: int, seed: int = 0) -> list[str]:
    """evaluate.py's first n short test prompts (its `draw_records` with the same seed)."""
    source = load_source("moving_shapes", "test")
    idx = sorted(np.random.default_rng(seed).choice(len(source), n, replace=False).tolist())
    return [short_caption(normalize_labels(source[i])) for i in idx]


def critic_scores(pipe: LumierePipeline, videos: np.ndarray, prompt: str, t: float,
                  key: jax.Array) -> np.ndarray:
    """uint8 (K, T, H, W, 3) candidates of one prompt -> (K,) critic scores at noise t."""
    critic = pipe.critic
    ids, mask = critic.tokenizer.encode([prompt] * len(videos))
    x0 = jnp.asarray(videos, jnp.float32) / 127.5 - 1.0
    alpha, sigma = pipe.base_schedule.alpha_sigma(jnp.full((len(videos),), t))
    x_t = (alpha[:, None, None, None, None] * x0
           + sigma[:, None, None, None, None] * jax.random.normal(key, x0.shape))
    return np.asarray(critic.model.apply({"params": critic.params}, x_t, jnp.full((len(videos),), t),
                                         jnp.asarray(ids), jnp.asarray(mask).astype(bool)))


def pairwise_win(scores: np.ndarray, right: np.ndarray) -> tuple[int, int]:
    """(wins, pairs): right candidates scored above wrong ones of the same prompt."""
    pairs = [(a, b) for a in scores[right] for b in scores[~right]]
    return sum(a > b for a, b in pairs), len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrained", default="pretrained/moving_shapes")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--critic_scale", type=float, default=None,
                    help="critic guidance while sampling (default: the folder's)")
    ap.add_argument("--score_t", type=float, nargs="+", default=[0.0, 0.3, 0.6])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.prompts < 1 or a.candidates < 2:
        ap.error("--prompts must be >= 1 and --candidates >= 2 (a pick needs a choice)")
    if any(not 0.0 <= t < 1.0 for t in a.score_t):
        ap.error(f"--score_t {a.score_t}: each must be in [0, 1)")
    overrides = {} if a.critic_scale is None else {"critic_scale": a.critic_scale}
    # One clip per call whatever the folder's default best of K: this script does the picking.
    pipe = LumierePipeline.from_pretrained(a.pretrained, progress=False, base_candidates=1,
                                           **overrides)
    if pipe.critic is None:
        raise SystemExit(f"{a.pretrained} has no 'critic' stage to rerank with")
    prompts = held_out_prompts(a.prompts, a.seed)
    key = jax.random.key(a.seed)
    candidates = np.stack([np.asarray(pipe(prompts, jax.random.fold_in(key, k), base_only=True))
                           for k in range(a.candidates)], axis=1)       # (P, K, T, H, W, 3)
    rows = []
    for p, prompt in enumerate(prompts):
        matches = [score_clip(analyze_clip(v), prompt)["matches"] for v in candidates[p]]
        right = {m: np.array([bool(x[m]) for x in matches]) for m in ATTRIBUTES}
        scores = {str(t): critic_scores(pipe, candidates[p], prompt, t,
                                        jax.random.fold_in(key, 1000 + p))
                  for t in a.score_t}
        rows.append(dict(prompt=prompt, right=right, scores=scores))
        print(json.dumps(dict(prompt=prompt, **{m: r.tolist() for m, r in right.items()},
                              scores={t: s.round(3).tolist() for t, s in scores.items()})),
              flush=True)
    summary = dict(prompts=len(prompts), candidates=a.candidates,
                   critic_scale=pipe.sampling.critic_scale)
    for m in ATTRIBUTES:
        summary[m] = dict(random=float(np.mean([r["right"][m].mean() for r in rows])),
                          oracle=float(np.mean([r["right"][m].any() for r in rows])))
        for t in map(str, a.score_t):
            wins = [pairwise_win(r["scores"][t], r["right"][m]) for r in rows]
            summary[m][f"pick_t{t}"] = float(np.mean(
                [r["right"][m][int(np.argmax(r["scores"][t]))] for r in rows]))
            summary[m][f"pairwise_win_t{t}"] = (sum(w for w, _ in wins)
                                                / max(sum(n for _, n in wins), 1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
