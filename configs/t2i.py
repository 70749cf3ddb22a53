"""Stage 1: the text-to-image U-Net on single frames of moving_shapes (resized to 16 px).

Build the data once:
    python -c "from lumiere_jax.data.moving_shapes import MovingShapes; \
MovingShapes(config='f16_s32').download_and_prepare()"
Command:
    python train.py --config configs/t2i.py --workdir runs/t2i

Model: width-64, 3-level U-Net (`tiny_t2i` widened), 2-layer text encoder trained jointly.
The cascade: t2i and stunet at 16 px, ssr 16 -> 32 px (the data's 32 px).
Expected run time: 20k steps at global batch 64; not timed on an accelerator here (one
H100: minutes); a 2-core CPU runs it at roughly a second per step.
Expected result: the loss falls from ~1 to ~0.1-0.2 in the first few thousand steps;
samples in runs/t2i/samples/ show the shape, color and background the prompt names.
"""

from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import configs as model_configs
from lumiere_jax.training.defaults import base_config


def get_config():
    model = model_configs.tiny_t2i(channels=64, text_dim=64, image_size=16)
    c = base_config("t2i", model)
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    c.data.batch_size = 64
    c.optim.lr = 3e-4
    c.optim.warmup_steps = 500
    c.optim.decay_steps = 20_000
    c.train.num_steps = 20_000
    c.train.checkpoint_every = 1000
    c.sample.every = 2000
    return c
