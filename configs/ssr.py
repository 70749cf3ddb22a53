"""Stage 3: spatial super-resolution 16 -> 32 px (the base STUNet's size) on 4-frame windows.

Command:
    python train.py --config configs/ssr.py --workdir runs/ssr
Tiny variant (8 -> 16 px, 4-frame windows; the tiny STUNet makes 8 px), ~20-30 s, 8 steps:
    python train.py --config configs/ssr.py:tiny --workdir /tmp/tiny_ssr --config.data.name=DATA

The conditioning is the clip resized to `diffusion.ssr_low_res` px and back, noise
augmented with t_aug ~ U(0, ssr_max_aug) (its level is embedded). At sampling time
`LumierePipeline` runs this model over overlapping windows with MultiDiffusion.
Expected run time: 20k steps at global batch 16; not timed on an accelerator here.
Expected result: the loss falls well below the t2i loss at equal steps (the low-res
input carries most of the signal); samples are sharp versions of the low-res clip.
"""

from configs.common import base_config, is_tiny, set_schedule, tiny_config
from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import presets


def get_config(arg=None):
    if is_tiny(arg):
        return tiny_config("ssr")
    model = presets.tiny_ssr(channels=32, text_dim=64, image_size=32, num_frames=4)
    c = base_config("ssr", model)
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    c.diffusion.ssr_low_res = 16  # = configs/stunet.py model.image_size
    set_schedule(c, steps=20_000, lr=1e-4, warmup=500, batch_size=16)
    c.sample.every = 2000
    return c
