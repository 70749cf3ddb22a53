"""Stage 2: inflate the T2I U-Net into a STUNet; train only the temporal weights.

Command (after configs/t2i.py):
    python train.py --config configs/stunet.py --workdir runs/stunet \
        --config.train.init_from=runs/t2i/checkpoints

The T2I weights (EMA) and its text encoder are loaded and frozen: gradients and optimizer
state exist only for `temporal_*` weights (`trainable_mask`). 16 frames at 16 px, two
temporal downsamplings (16 -> 8 -> 4 frames at the coarsest level).
Expected run time: 20k steps at global batch 16; not timed on an accelerator here.
Expected result: the loss starts at the inflated T2I model's per-frame loss (the STUNet
is the identity on the T2I model at init) and falls below it as motion is learned;
samples show the named shape moving in the named direction.
"""

from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import configs as model_configs
from lumiere_jax.training.defaults import base_config


def get_config():
    model = model_configs.tiny_stunet(channels=64, text_dim=64, image_size=16, num_frames=16)
    c = base_config("stunet", model)
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    c.data.batch_size = 16
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 500
    c.optim.decay_steps = 20_000
    c.train.num_steps = 20_000
    c.train.checkpoint_every = 1000
    c.sample.every = 2000
    return c
