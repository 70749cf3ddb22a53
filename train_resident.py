r"""Train a stage on an accelerator from clips held in its memory (`training.resident`).

    python train_resident.py --config configs/demo_t2i.py --workdir runs/gpu_t2i \
        --seconds 150 --warm_start pretrained/moving_shapes --config.data.batch_size=256
    python train_resident.py --config configs/demo_stunet.py --workdir runs/gpu_base \
        --seconds 270 --config.train.init_from=runs/gpu_t2i \
        --warm_start pretrained/moving_shapes --config.data.batch_size=64

For moving_shapes stages on a GPU or TPU, where the demo models step in milliseconds and
train.py's host pipeline (one dispatch per step) would leave the chip idle: the first
`--num_clips` train records are rendered once into device memory, and each compiled call
draws its batch there and steps; calls are queued, the host syncs every `--sync_every`. Same train step, optimizer,
EMA and config as train.py; it stops after `--seconds` of stepping (there is no resume:
the run is minutes long) and writes `--workdir` as a pretrained folder (EMA weights,
config, manifest with the figures) plus metrics.jsonl, every `--export_every` seconds
and at the end. `export_pretrained.py --stage NAME=WORKDIR` ships it. `--config.data.time_reversal_pairs=True`
pairs each drawn clip with itself played backwards (directions reversed in its caption).
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from lumiere_jax import cli
from lumiere_jax.training.resident import train_resident

config_flags.DEFINE_config_file("config", None, "configs/NAME.py", lock_config=True)
flags.DEFINE_string("workdir", None, "output folder (a pretrained folder + metrics.jsonl)")
flags.DEFINE_float("seconds", 300.0, "stepping time; the run stops after the call that "
                   "passes it")
flags.DEFINE_integer("steps_per_call", 1, "train steps per compiled call (> 1: a lax.scan; slow on XLA:CPU)")
flags.DEFINE_integer("sync_every", 50, "steps between host syncs (metrics, the time check)")
flags.DEFINE_integer("num_clips", 100_000, "train records rendered into device memory")
flags.DEFINE_integer("captions_per_clip", 4, "caption variants per clip (parts dropped as "
                     "config.data.caption_dropout says)")
flags.DEFINE_string("warm_start", "", "pretrained folder: its stage of this kind gives the "
                    "trainable weights' starting values")
flags.DEFINE_string("name", "", "stage name in the folder (default: 'base' for stunet, "
                    "else the stage)")
flags.DEFINE_float("export_every", 60.0, "seconds between weight exports")
flags.DEFINE_integer("workers", 0, "rendering processes (0: one per CPU)")


def main(argv) -> None:
    del argv
    f = flags.FLAGS
    train_resident(f.config, f.workdir, seconds=f.seconds, steps_per_call=f.steps_per_call,
                   sync_every=f.sync_every,
                   num_clips=f.num_clips, captions_per_clip=f.captions_per_clip,
                   warm_start=f.warm_start, name=f.name, export_every_s=f.export_every,
                   workers=f.workers or None)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main, __doc__, "train_resident.py")
