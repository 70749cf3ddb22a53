"""Fit the motion planner of a pretrained moving_shapes folder and list it in its manifest.

    python scripts/fit_motion_planner.py pretrained/moving_shapes [--scenes 4000]

Ridge regression of each training caption's travel over the clip (`moving_shapes.
travel_examples`: the training records' stored velocities) on its words
(`lumiere_jax.text.motion_planner`); writes `motion_planner.safetensors` and the manifest's
"motion_planner" entry (file, SHA-256, command, fit residual).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lumiere_jax import pretrained  # noqa: E402
from lumiere_jax.data.moving_shapes import travel_examples  # noqa: E402
from lumiere_jax.text.motion_planner import MotionPlanner  # noqa: E402

FILE = "motion_planner.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a pretrained folder (manifest.json)")
    parser.add_argument("--scenes", type=int, default=4000, help="training scenes to fit on")
    args = parser.parse_args()
    if args.scenes < 10:
        parser.error(f"--scenes={args.scenes}: give at least 10")
    pretrained.read_manifest(args.folder)  # a pretrained folder, before the fit
    captions, travel = travel_examples(args.scenes)
    planner = MotionPlanner.fit(captions, travel)
    residual = float(np.sqrt(np.mean((planner(captions) - travel) ** 2)))
    path = os.path.join(args.folder, FILE)
    planner.save(path)
    entry = pretrained.write_helper_entry(
        args.folder, "motion_planner", FILE, captions=len(captions),
        rms_residual=round(residual, 4),
        command=f"python scripts/fit_motion_planner.py {args.folder} --scenes {args.scenes}")
    print(json.dumps(entry))


if __name__ == "__main__":
    main()
