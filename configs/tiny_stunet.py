"""A seconds-scale STUNet run: inflate a tiny T2I run, train only the temporal weights.

Command (after configs/tiny_t2i.py wrote /tmp/tiny_t2i):
    python train.py --config configs/tiny_stunet.py --workdir /tmp/tiny_stunet \
        --config.data.name=DATA --config.train.init_from=/tmp/tiny_t2i/checkpoints
Expected run time: ~20-30 s on a 2-core CPU (compilation dominates), 8 steps.
Expected result: finite losses; every non-temporal weight bit-identical to the T2I EMA.
"""

from lumiere_jax.training.defaults import tiny_config


def get_config():
    c = tiny_config("stunet")
    c.train.init_from = "/tmp/tiny_t2i/checkpoints"
    return c
