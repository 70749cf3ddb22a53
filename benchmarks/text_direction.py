"""Do a run's text encodings keep direction words apart? (the motion-from-text risk)

    python benchmarks/text_direction.py --run runs/demo_t2i/checkpoints --config configs/demo_t2i.py
    python benchmarks/text_direction.py --pretrained pretrained/moving_shapes --stage base \
        --part temporal     # only the states the temporal layers read

For prompts that differ in exactly one attribute (direction / colour / shape), prints the
mean cosine distance between their encodings: over the token states (masked mean of
per-token distances) and of the pooled (masked mean) state. A frozen encoder whose
direction distances are near 0 gives the temporal layers nothing to read motion from.
One JSON object per attribute.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json

import numpy as np

from lumiere_jax import pretrained, runs
from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (COLORS, DIRECTIONS,
                                                                         SHAPES)

TEMPLATE = "a {color} {shape} moving {direction}"


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 1.0 - np.sum(a * b, axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="checkpoint folder of a train.py run")
    parser.add_argument("--config", help="its config file (with --run)")
    parser.add_argument("--pretrained", help="a pretrained folder (instead of --run)")
    parser.add_argument("--stage", default="base", help="stage name in the pretrained folder")
    parser.add_argument("--part", choices=("all", "spatial", "temporal"), default="all",
                        help="which channels of the states: the T2I encoder's ('spatial', the "
                             "first text.width) or the temporal encoder's (text.temporal_width)")
    args = parser.parse_args()
    if args.pretrained:
        config, params = pretrained.load_stage(args.pretrained, args.stage)
    else:
        spec = importlib.util.spec_from_file_location("config", args.config)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config()
        params = runs.load_run_params(args.run, config.stage, field="--run")
    full_encode, width = runs.text_encode_fn(config, params["text"]), config.text.width
    if args.part == "temporal" and not config.text.get("temporal_width", 0):
        parser.error("--part temporal: this stage's text encoder has no temporal_width")
    part = {"all": slice(None), "spatial": slice(0, width), "temporal": slice(width, None)}[
        args.part]

    def encode(prompts):
        states, mask = full_encode(prompts)
        return np.asarray(states)[..., part], np.asarray(mask)

    base = dict(color=list(COLORS)[:4], shape=list(SHAPES),
                direction=[p for _, p in DIRECTIONS.values()][:4])
    for attribute in ("direction", "color", "shape"):
        token_d, pooled_d = [], []
        others = {k: v[:2] for k, v in base.items() if k != attribute}
        for fixed in itertools.product(*others.values()):
            kw = dict(zip(others, fixed))
            for a, b in itertools.combinations(base[attribute], 2):
                (sa, ma), (sb, mb) = (encode([TEMPLATE.format(**kw, **{attribute: v})])
                                      for v in (a, b))
                n = int(min(ma.sum(), mb.sum()))
                token_d.append(float(cosine_distance(sa[0, :n], sb[0, :n]).mean()))
                pool = lambda s, m: (s[0] * m[0, :, None]).sum(0) / m[0].sum()
                pooled_d.append(float(cosine_distance(pool(sa, ma), pool(sb, mb))))
        print(json.dumps(dict(figure="text_encoding_distance", attribute=attribute,
                              pairs=len(token_d), token_cosine_distance=np.mean(token_d),
                              pooled_cosine_distance=np.mean(pooled_d), part=args.part,
                              source=args.pretrained or args.run)))


if __name__ == "__main__":
    main()
