"""Stage 2: inflate the T2I U-Net into a STUNet; train only the temporal weights.

Command (after configs/t2i.py):
    python train.py --config configs/stunet.py --workdir runs/stunet \
        --config.train.init_from=runs/t2i/checkpoints
Tiny variant (after `configs/t2i.py:tiny` wrote /tmp/tiny_t2i), ~20-30 s, 8 steps, every
non-temporal weight bit-identical to the T2I EMA:
    python train.py --config configs/stunet.py:tiny --workdir /tmp/tiny_stunet \
        --config.data.name=DATA --config.train.init_from=/tmp/tiny_t2i/checkpoints

The T2I weights (EMA) and its text encoder are loaded and frozen: gradients and optimizer
state exist only for `temporal_*` weights (`trainable_mask`). 16 frames at 16 px, two
temporal downsamplings (16 -> 8 -> 4 frames at the coarsest level).
Expected run time: 20k steps at global batch 16; not timed on an accelerator here.
Expected result: the loss starts at the inflated T2I model's per-frame loss (the STUNet
is the identity on the T2I model at init) and falls below it as motion is learned;
samples show the named shape moving in the named direction.
"""

from configs.common import base_config, is_tiny, set_schedule, tiny_config
from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import presets


def get_config(arg=None):
    if is_tiny(arg):
        c = tiny_config("stunet")
        c.train.init_from = "/tmp/tiny_t2i/checkpoints"
        return c
    model = presets.tiny_stunet(channels=64, text_dim=64, image_size=16, num_frames=16)
    c = base_config("stunet", model)
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    set_schedule(c, steps=20_000, lr=1e-4, warmup=500, batch_size=16, checkpoint_every=1000)
    c.sample.every = 2000
    return c
