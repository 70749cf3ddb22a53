"""A seconds-scale conditional STUNet run: the tiny STUNet plus the `<C, M>` input.

Command (after configs/tiny_stunet.py wrote /tmp/tiny_stunet):
    python train.py --config configs/tiny_conditional.py --workdir /tmp/tiny_conditional \
        --config.data.name=DATA --config.train.init_from=/tmp/tiny_stunet/checkpoints
Expected run time: ~20-30 s on a 2-core CPU (compilation dominates), 8 steps.
Expected result: finite losses; every spatial weight bit-identical to the STUNet run's;
the zero-initialised cond_input_conv and the temporal weights train.
"""

from lumiere_jax.training.defaults import tiny_config


def get_config():
    c = tiny_config("conditional")
    c.train.init_from = "/tmp/tiny_stunet/checkpoints"
    return c
