"""Demo style model: the shipped T2I fine-tuned on outlined shapes (`moving_shapes/
f16_s32_outline`, a rendering the default data never shows), for stylized generation.

Command (builds the outline dataset if missing; reads the shipped t2i stage):
    python train.py --config configs/demo_style.py --workdir runs/demo_style \
        --config.sample.every=0

Only the U-Net trains: the text encoder stays the shipped T2I's, so the STUNet, which
reads prompts with that encoder, can take these spatial weights
(`sample.py --style style_outline --style_alpha 0.8`: W = alpha W_style + (1 - alpha) W).
"""

from lumiere_jax.models import presets
from configs.common import demo_config


def get_config():
    c = demo_config("t2i", presets.demo_t2i())
    c.data.update(name="moving_shapes/f16_s32_outline", batch_size=32)
    c.text.trainable = False
    c.optim.update(lr=2e-4, warmup_steps=20, decay_steps=300, ema_decay=0.99, ema_warmup=True)
    c.train.update(num_steps=300, log_every=25, checkpoint_every=50,
                   init_from="pretrained/moving_shapes")  # its t2i stage
    c.sample.update(every=0, prompts=("a large red circle moving left on a black background",))
    return c
