"""Train the object reader of a pretrained moving_shapes folder and list it in its manifest.

    python scripts/train_object_reader.py pretrained/moving_shapes [--clips 20000] [--steps 4000]

A small CNN that reads which (colour, shape) objects a clip shows, trained on frames the
NumPy renderer draws (`training.object_reader`; labels from the scenes, no dataset on
disk). Writes `object_reader.safetensors` and the manifest's "object_reader" entry (file,
SHA-256, command, steps, seconds, final loss, exact-set accuracy on 500 fresh renders).
best of K uses it with `SamplingConfig.candidate_score='reader'`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lumiere_jax import pretrained  # noqa: E402
from lumiere_jax.training.object_reader import rendered_examples, train_object_reader  # noqa: E402

FILE = "object_reader.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a pretrained folder (manifest.json)")
    parser.add_argument("--clips", type=int, default=20000, help="rendered training scenes")
    parser.add_argument("--steps", type=int, default=4000, help="training steps (batch 32)")
    args = parser.parse_args()
    for name in ("clips", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)}: give at least 1")
    manifest = pretrained.read_manifest(args.folder)
    reader, info = train_object_reader(num_clips=args.clips, steps=args.steps)
    frames, labels = rendered_examples(reader, np.random.default_rng(1), 500)
    logits = np.asarray(jax.jit(reader.logits)(reader.params, frames / 127.5 - 1.0))
    exact = float(np.mean(((logits > 0) == (labels > 0.5)).all(1)))
    path = os.path.join(args.folder, FILE)
    pretrained.save_object_reader(reader, path)
    manifest["object_reader"] = dict(
        weights=FILE, sha256=pretrained.sha256(path), **info,
        rendered_exact_set_accuracy=round(exact, 3),
        command=(f"python scripts/train_object_reader.py {args.folder} --clips {args.clips} "
                 f"--steps {args.steps}"))
    pretrained.write_manifest(args.folder, manifest["stages"], **{
        k: v for k, v in manifest.items() if k not in ("format", "stages")})
    print(json.dumps(manifest["object_reader"]))


if __name__ == "__main__":
    main()
