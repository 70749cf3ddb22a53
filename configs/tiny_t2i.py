"""A seconds-scale T2I run for tests and smoke checks (8 px, width 8, 1-layer text encoder).

Command (DATA: a built moving_shapes dataset, e.g. moving_shapes/f16_s32 or a folder
holding dataset_info.json):
    python train.py --config configs/tiny_t2i.py --workdir /tmp/tiny_t2i \
        --config.data.name=DATA
Expected run time: ~20-30 s on a 2-core CPU (compilation dominates), 8 steps.
Expected result: 8 finite losses near 1 in metrics.jsonl; checkpoints at steps 4 and 8.
"""

from lumiere_jax.training.defaults import tiny_config


def get_config():
    return tiny_config("t2i")
