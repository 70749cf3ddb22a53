"""A seconds-scale SSR run (8 -> 16 px, 4-frame windows; the tiny STUNet makes 8 px).

Command:
    python train.py --config configs/tiny_ssr.py --workdir /tmp/tiny_ssr \
        --config.data.name=DATA
Expected run time: ~20-30 s on a 2-core CPU (compilation dominates), 8 steps.
Expected result: 8 finite losses in metrics.jsonl.
"""

from lumiere_jax.training.defaults import tiny_config


def get_config():
    return tiny_config("ssr")
