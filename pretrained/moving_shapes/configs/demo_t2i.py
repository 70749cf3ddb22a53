"""Demo stage 1: the shipped cascade's text-to-image U-Net, on single 32 px frames.

Commands (the first builds moving_shapes/f16_s32 if it is missing); the shipped weights
are the second run's step 1250:
    python train.py --config configs/demo_t2i.py --workdir runs/demo_t2i   # 3000 steps, 2.1 h
    python train.py --config configs/demo_t2i.py --workdir runs/demo_t2i_ft \
        --config.train.init_from=runs/demo_t2i/checkpoints --config.train.num_steps=2500 \
        --config.optim.decay_steps=2500 --config.optim.warmup_steps=50 \
        --config.sample.every=1250                     # stopped at step 1250: 49 min
Reached (benchmarks/t2i_prompt_following.py, 64 test prompts): colour 0.41 / shape 0.17
with full captions, colour 0.69 / shape 0.33 with short prompts; background 1.0. Loss
0.048 at step 3000 (mean of the last 50 steps), 0.058 at the continuation's 1250.
Shipped since 2026-12-04: that step-1250 T2I fine-tuned on one H200 from clips held in
its memory (`bash scripts/train_demo_gpu.sh`, stage 1: `train_resident.py`, batch 256,
lr 5e-4, 4000 steps in 120 s of stepping, 245 s with rendering and compiling), loss
0.048 -> 0.031 (mean of the last 50).

Model: `models.presets.demo_t2i` (width 32, 3 levels, 32 / 16 / 8 px); a 2-layer
width-64 text encoder over whole words (`WordTokenizer`, the moving_shapes vocabulary)
trained jointly. Captions are rebuilt from the labels with optional parts dropped
(`data.caption_dropout`), so short prompts ("a red circle moving right") are in the data.
"""

from configs.common import demo_config, set_schedule
from lumiere_jax.models import presets


def get_config():
    c = demo_config("t2i", presets.demo_t2i())
    set_schedule(c, steps=3000, lr=5e-4, warmup=200, batch_size=32, ema_decay=0.999,
                 log_every=50, checkpoint_every=250)
    c.sample.update(every=1000, num_steps=32, guidance=3.0, prompts=(
        "a large red circle moving left on a black background",
        "a blue square moving up on a white background",
        "a yellow triangle moving right on a gray background"))
    return c
