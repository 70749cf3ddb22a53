"""Demo style model: the shipped T2I fine-tuned on outlined shapes (`moving_shapes/
f16_s32_outline`, a rendering the default data never shows), for stylized generation.

Command (builds the outline dataset if missing; reads the shipped t2i stage):
    python train.py --config configs/demo_style.py --workdir runs/demo_style \
        --config.sample.every=0

Measured: 300 steps at batch 32 in 23 min at nice 19 beside another run, loss 0.058
(mean of the last 50); shipped as pretrained/moving_shapes stage `style_outline`.
Only the U-Net trains: the text encoder stays the shipped T2I's, so the STUNet, which
reads prompts with that encoder, can take these spatial weights
(`sample.py --style style_outline --style_alpha 0.8`: W = alpha W_style + (1 - alpha) W).
"""

from configs.common import demo_config, set_schedule
from lumiere_jax.models import presets


def get_config():
    c = demo_config("t2i", presets.demo_t2i())
    c.data.name = "moving_shapes/f16_s32_outline"
    c.text.trainable = False
    set_schedule(c, steps=300, lr=2e-4, warmup=20, batch_size=32, ema_decay=0.99,
                 ema_warmup=True, log_every=25, checkpoint_every=50)
    c.train.init_from = "pretrained/moving_shapes"  # its t2i stage
    c.sample.update(every=0, prompts=("a large red circle moving left on a black background",))
    return c
