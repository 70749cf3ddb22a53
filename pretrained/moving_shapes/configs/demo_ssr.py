"""Demo stage 3: spatial super-resolution 32 -> 64 px on 4-frame windows.

Command (builds moving_shapes/f16_s64 first if it is missing):
    python train.py --config configs/demo_ssr.py --workdir runs/demo_ssr

The conditioning is the clip resized to 32 px (the demo STUNet's size) and back, noise
augmented with t_aug ~ U(0, 0.3) (its level is embedded). At sampling time the
pipeline runs it over overlapping 4-frame windows of the 16-frame base video and merges
them with MultiDiffusion. Its own word-level text encoder trains with it.
"""

from configs.common import demo_config, set_schedule
from lumiere_jax.models import presets


def get_config():
    c = demo_config("ssr", presets.demo_ssr())
    c.diffusion.ssr_low_res = 32  # = demo_stunet image_size
    set_schedule(c, steps=2000, lr=5e-4, warmup=100, batch_size=4, ema_decay=0.995,
                 log_every=25, checkpoint_every=100)
    c.sample.update(every=500, num_steps=16, guidance=1.0, prompts=(
        "a large red circle moving left on a black background",))
    return c
