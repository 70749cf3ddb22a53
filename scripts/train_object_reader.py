"""Train the object reader of a pretrained moving_shapes folder and list it in its manifest.

    python scripts/train_object_reader.py pretrained/moving_shapes [--clips 40000] [--steps 8000]

Two small CNNs that read which (colour, shape) objects a clip shows, which way each colour
moves and which colours are there twice, trained on clips the NumPy renderer draws
(`training.object_reader`; labels from the scenes, no dataset on disk). Writes
`object_reader.safetensors` and the manifest's "object_reader" entry (file, SHA-256,
command, steps, seconds, final loss, exact-set accuracy of each output group on 500 fresh
renders). Best of K uses it with `SamplingConfig.candidate_score='reader'`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lumiere_jax import pretrained  # noqa: E402
from lumiere_jax.training.object_reader import (  # noqa: E402
    rendered_exact_set_accuracy, train_object_reader)

FILE = "object_reader.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a pretrained folder (manifest.json)")
    parser.add_argument("--clips", type=int, default=40000, help="rendered training scenes")
    parser.add_argument("--steps", type=int, default=8000, help="training steps (batch 32)")
    args = parser.parse_args()
    for name in ("clips", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)}: give at least 1")
    pretrained.read_manifest(args.folder)  # a pretrained folder, before the training
    reader, info = train_object_reader(num_clips=args.clips, steps=args.steps)
    exact = rendered_exact_set_accuracy(reader)
    pretrained.save_object_reader(reader, os.path.join(args.folder, FILE))
    entry = pretrained.write_helper_entry(
        args.folder, "object_reader", FILE, **info,
        rendered_exact_set_accuracy={k: round(v, 3) for k, v in exact.items()},
        command=(f"python scripts/train_object_reader.py {args.folder} --clips {args.clips} "
                 f"--steps {args.steps}"))
    print(json.dumps(entry))


if __name__ == "__main__":
    main()
