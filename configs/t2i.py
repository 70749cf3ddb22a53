"""Stage 1: the text-to-image U-Net on single frames of moving_shapes (resized to 16 px).

Build the data once:
    python -c "from lumiere_jax.data.moving_shapes import MovingShapes; \
MovingShapes(config='f16_s32').download_and_prepare()"
Command:
    python train.py --config configs/t2i.py --workdir runs/t2i
Tiny variant (8 px, width 8, 1-layer text encoder; DATA: a built moving_shapes dataset,
e.g. moving_shapes/f16_s32 or a folder holding dataset_info.json), ~20-30 s on 2 cores,
8 finite losses near 1 and checkpoints at steps 4 and 8:
    python train.py --config configs/t2i.py:tiny --workdir /tmp/tiny_t2i --config.data.name=DATA

Model: width-64, 3-level U-Net (`tiny_t2i` widened), 2-layer text encoder trained jointly.
The cascade: t2i and stunet at 16 px, ssr 16 -> 32 px (the data's 32 px).
Expected run time: 20k steps at global batch 64; not timed on an accelerator here (one
H100: minutes); a 2-core CPU runs it at roughly a second per step.
Expected result: the loss falls from ~1 to ~0.1-0.2 in the first few thousand steps;
samples in runs/t2i/samples/ show the shape, color and background the prompt names.
"""

from configs.common import base_config, is_tiny, set_schedule, tiny_config
from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import presets


def get_config(arg=None):
    if is_tiny(arg):
        return tiny_config("t2i")
    c = base_config("t2i", presets.tiny_t2i(channels=64, text_dim=64, image_size=16))
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    set_schedule(c, steps=20_000, lr=3e-4, warmup=500, batch_size=64, checkpoint_every=1000)
    c.sample.every = 2000
    return c
