"""Demo layout expert: the high-noise steps of the base stage, at 8 px (README "Design
notes: the layout expert", `lumiere_jax.diffusion.layout`).

Command:
    python train.py --config configs/demo_layout.py --workdir runs/demo_layout
Measured: 1500 steps in 46 min on 2 cores (1.6-2 s/step), loss 0.72 -> 0.049 (means of the
first / last 50 steps). Result: negative, not shipped (pretrained/moving_shapes/README.md,
"Tried (2026-12-05, later): a layout expert"): direction 0.156 on 32 short prompts.

Not a stage of the paper. The demo STUNet keeps the motion a noisy clip already shows (a
held-out clip noised to t = 0.8 keeps its direction 0.97 of the time under the base) but
never learnt to take it from the prompt. This small video U-Net, trained from scratch on
moving_shapes clips mean-pooled 4x (32 -> 8 px) and only at t >= 0.65, takes the cascade's
steps at t >= 0.8 (`SamplingConfig.layout_until`): it draws where the object is and which
way it moves, the base STUNet draws everything after. Its noise schedule is the base's
shifted by 2 log 4 (`cosine_schedule(8, 32)`), so a pooled noisy base clip is, once scaled,
exactly its input at the same t.
"""

from configs.common import demo_config, is_tiny, set_schedule, tiny_config
from lumiere_jax.models import presets


def get_config(arg=None):
    if is_tiny(arg):  # 8 px clips pooled to 4 px
        c = tiny_config("stunet", image_size=4, temporal_downsample=(False,),
                        temporal_text=True, temporal_text_layout=True)
        c.stage = "layout"
        c.text.trainable = True
        c.diffusion.update(layout_factor=2, min_t=0.75, schedule_base_size=8)
        c.sample.every = 0
        return c
    c = demo_config("layout", presets.demo_layout())
    c.text.trainable = True
    c.diffusion.update(layout_factor=4, min_t=0.65, schedule_base_size=32)
    c.data.time_reversal_pairs = True
    set_schedule(c, steps=1500, lr=5e-4, warmup=100, batch_size=32, ema_decay=0.999,
                 ema_warmup=True, log_every=25, checkpoint_every=100)
    c.sample.every = 0
    return c
