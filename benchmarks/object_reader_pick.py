"""Best of K by a learned object reader: does a classifier of rendered clips pick the
candidate with the prompt's shape and direction?

    python benchmarks/object_reader_pick.py --load CANDIDATES.npz [--load MORE.npz] \
        [--clips 20000] [--steps 4000] [--out FILE.json]

CANDIDATES.npz: `benchmarks/motion_rerank.py --save` (K base candidates per prompt, with
their prompts). The reader is trained here (about 12 minutes on 2 CPU cores) on clips the
NumPy renderer draws (`training.object_reader`, labels from the scene; mild blur and noise
so it sees soft edges): which (colour, shape) objects a clip shows, which way each colour
moves, which colours are there twice (`models.object_reader`). A candidate's reader score
is log p(it shows what the prompt says): each named object's (colour, shape) and (colour,
direction), one object of each named colour (`ObjectReader.named_terms`, `.scores`). No
labels of the candidates are read by a pick rule; the analyzer (`eval.analyze_clip`) is
the judge, as in `evaluate.py`.

Pick rules compared: 'coherence' (the shipped default, `motion_coherence`), 'motion'
(`motion_agreement` with the saved plan), 'reader' (the reader's score alone:
`SamplingConfig.candidate_score='reader'`), 'reader_shapes' (its (colour, shape) terms
alone), 'reader_top2_coherence' (of the reader's two best, the more coherent), 'motion_over_0.8_then_reader' (of the
candidates whose motion agrees with the plan by at least 0.8, or else the best one, the
reader's favourite) and 'coherence_plus_reader' (coherence + w * reader score, w from
--weights). `--reader` skips the training and reads a trained reader's file
(`scripts/train_object_reader.py` writes the shipped one).
Prints one JSON line per rule and candidate file, and how often the reader (p > 0.5) and
the analyzer agree that a candidate shows the prompt's colour, shape and direction.
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
from lumiere_jax.diffusion.clip_motion import motion_agreement, motion_coherence  # noqa: E402
from lumiere_jax.eval import analyze_clip  # noqa: E402
from lumiere_jax.pretrained import read_object_reader  # noqa: E402
from lumiere_jax.training.object_reader import (  # noqa: E402
    rendered_exact_set_accuracy, train_object_reader)

ATTRIBUTES = ("color", "shape", "direction", "color_shape_direction")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load", action="append", required=True, help="motion_rerank.py --save file")
    ap.add_argument("--reader", default="", help="an object_reader.safetensors to use instead "
                    "of training one here")
    ap.add_argument("--clips", type=int, default=20000, help="rendered training scenes")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--weights", default="0.1,0.2,1,2", help="w of coherence_plus_reader")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    for path in a.load:
        if not os.path.isfile(path):
            ap.error(f"--load {path!r}: no such file")

    if a.reader:
        reader, report = read_object_reader(a.reader), dict(reader=a.reader)
    else:
        reader, report = train_object_reader(a.clips, a.steps)
    params = reader.params
    report.update(rendered_exact_set=rendered_exact_set_accuracy(reader), files={})
    print(json.dumps({k: v for k, v in report.items() if k != "files"}), flush=True)

    for path in a.load:
        saved = np.load(path)
        candidates, prompts = saved["candidates"], [str(p) for p in saved["prompts"]]
        n, k = candidates.shape[:2]
        flat = candidates.reshape((n * k,) + candidates.shape[2:]).astype(np.float32) / 127.5 - 1
        coherence = np.asarray(motion_coherence(jnp.asarray(flat))).reshape(n, k)
        plan = jnp.asarray(np.repeat(saved["plan"], k, axis=0))
        motion = np.asarray(motion_agreement(jnp.asarray(flat), plan)).reshape(n, k)
        index, want = (np.repeat(v, k, axis=0) for v in reader.named_terms(prompts))
        shapes_only = np.where(index < reader.num_pairs, want, 0.0)  # the (colour, shape) terms
        score = jax.jit(reader.scores)

        def scored(wanted):
            return np.concatenate([np.asarray(score(params, flat[i:i + 32], index[i:i + 32],
                                                    wanted[i:i + 32]))
                                   for i in range(0, n * k, 32)]).reshape(n, k)

        reader_score, shape_score = scored(want), scored(shapes_only)
        judged, agree = [], []
        for i, prompt in enumerate(prompts):
            reads = [analyze_clip(candidates[i, j]).matches(prompt) for j in range(k)]
            judged.append(reads)
            agree += [(reader_score[i, j] > np.log(0.5)) == bool(r["color_shape_direction"])
                      for j, r in enumerate(reads)]

        def accuracy(pick) -> dict:
            chosen = [judged[i][int(pick(i))] for i in range(n)]
            return {m: round(float(np.mean([bool(c[m]) for c in chosen])), 3) for m in ATTRIBUTES}

        def top2_coherence(i):
            best_two = np.argsort(reader_score[i])[-2:]
            return best_two[np.argmax(coherence[i, best_two])]

        def motion_then_reader(i, cut=0.8):  # moves as planned (or the best mover), then reader
            movers = motion[i] >= min(cut, motion[i].max())
            return np.argmax(np.where(movers, reader_score[i], -np.inf))

        rules = {"coherence": lambda i: np.argmax(coherence[i]),
                 "motion": lambda i: np.argmax(motion[i]),
                 "reader": lambda i: np.argmax(reader_score[i]),
                 "reader_shapes": lambda i: np.argmax(shape_score[i]),
                 "reader_top2_coherence": top2_coherence,
                 "motion_over_0.8_then_reader": motion_then_reader}
        for w in (float(v) for v in a.weights.split(",")):
            rules[f"coherence_plus_reader_w{w:g}"] = (
                lambda i, w=w: np.argmax(coherence[i] + w * reader_score[i]))
        rules["oracle"] = lambda i: int(np.argmax([bool(r["color_shape_direction"])
                                                   for r in judged[i]]))
        result = {name: accuracy(rule) for name, rule in rules.items()}
        result["reader_agrees_with_analyzer"] = round(float(np.mean(agree)), 3)
        report["files"][path] = dict(prompts=n, candidates=k, rules=result)
        for name, value in result.items():
            print(json.dumps({"file": path, "rule": name, "value": value}), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
