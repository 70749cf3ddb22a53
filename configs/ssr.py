"""Stage 3: spatial super-resolution 16 -> 32 px (the base STUNet's size) on 4-frame windows.

Command:
    python train.py --config configs/ssr.py --workdir runs/ssr

The conditioning is the clip resized to `diffusion.ssr_low_res` px and back, noise
augmented with t_aug ~ U(0, ssr_max_aug) (its level is embedded). At sampling time
`LumierePipeline` runs this model over overlapping windows with MultiDiffusion.
Expected run time: 20k steps at global batch 16; not timed on an accelerator here.
Expected result: the loss falls well below the t2i loss at equal steps (the low-res
input carries most of the signal); samples are sharp versions of the low-res clip.
"""

from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import configs as model_configs
from lumiere_jax.training.defaults import base_config


def get_config():
    model = model_configs.tiny_ssr(channels=32, text_dim=64, image_size=32, num_frames=4)
    c = base_config("ssr", model)
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    c.diffusion.ssr_low_res = 16  # = configs/stunet.py model.image_size
    c.data.batch_size = 16
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 500
    c.optim.decay_steps = 20_000
    c.train.num_steps = 20_000
    c.sample.every = 2000
    return c
