"""Demo guidance critic: a noised video-text critic on 16-frame 32 px moving_shapes clips.

Command:
    python train.py --config configs/demo_critic.py --workdir runs/demo_critic
Measured: 1600 steps in 69 min on 2 shared cores (2.6 s/step, 1.8 idle), contrastive loss
3.69 -> 1.38 (mean of the last 50). It ranks a held-out clip's caption above the same
caption with the direction reversed 0.91 of the time at t = 0.3, 0.70 at 0.9, 0.59 at 0.98
(benchmarks/critic_pairs.py). Guiding the shipped base with it (critic_scale 100, half the
16 steps at t > 0.84) lifts the direction of 64 held-out short prompts from 0.078 to 0.234
(pretrained/moving_shapes/README.md).

Not a stage of the paper: the demo STUNet, trained on 2 CPU cores, does not take the
direction of motion from the prompt (pretrained/moving_shapes/README.md), so the cascade
steers its base sampler with the gradient of this critic (classifier guidance, as GLIDE's
noised CLIP; README "Design notes"). It learns from time-reversal pairs (a clip and itself
played backwards, directions reversed in the caption) which direction word a noisy clip
shows, and which colour and shape, by contrast over the batch.
"""

import ml_collections

from configs.common import demo_config, set_schedule, tiny_config, is_tiny
from lumiere_jax.models import presets


def get_config(arg=None):
    if is_tiny(arg):
        c = tiny_config("stunet")
        c.data.update(batch_size=4)
        c.critic = ml_collections.ConfigDict(dict(widths=(4, 8), text_width=8, embed_dim=8))
        set_schedule(c, steps=4, lr=1e-3, warmup=1, checkpoint_every=2, log_every=1)
    else:
        c = demo_config("stunet", presets.demo_stunet())
        c.critic = ml_collections.ConfigDict(dict(widths=(32, 64, 128, 128), text_width=128,
                                                  embed_dim=128))
        c.data.update(batch_size=32)
        set_schedule(c, steps=1600, lr=1e-3, warmup=100, checkpoint_every=200, log_every=25,
                     ema_decay=0.99)
        c.optim.weight_decay = 1e-4
    c.stage = "critic"
    c.data.time_reversal_pairs = True
    return c
