"""Demo stage 2: the demo T2I U-Net inflated into a STUNet (16 frames at 32 px).

Command (reads the shipped T2I stage, pretrained/moving_shapes; the shipped base is this run):
    python train.py --config configs/demo_stunet.py --workdir runs/demo_stunet_tt \
        --config.sample.every=0
Measured: 1500 steps in 78 min on 2 shared cores, loss 0.035 (mean of the last 50). On 64
test prompts (evaluate.py --base_only): colour 0.94 / shape 0.28 / direction 0.06 /
presence 0.86 with short prompts; the direction does not follow the text yet
(pretrained/moving_shapes/README.md).
Shipped since 2026-12-04: the STUNet of the H200-fine-tuned T2I, its temporal weights
warm-started from that run and trained on one H200 (`bash scripts/train_demo_gpu.sh`,
stage 2: `train_resident.py`, batch 64, lr 8e-4, 1650 steps = 105k clips in 61 s of
stepping), loss 0.036 -> 0.020: short prompts colour 1.00 / shape 0.67 / direction 0.08 /
presence 0.97 without the critic; the direction word is still not read
(benchmarks/direction_sensitivity.py: no loss difference at any t).
Shipped since 2026-12-05: those weights fine-tuned on moving noise (configs/demo_motion.py).

The T2I U-Net weights (EMA) and its text encoder are loaded from `train.init_from` and
frozen; the `temporal_*` weights train, among them a fresh `temporal_encoder` of the text
encoder. Two temporal downsamplings (16 -> 8 -> 4 frames at the coarsest level).
Deviations from the paper (README "Design notes": motion from text): `model.temporal_text`
lets the temporal layers read the prompt, from their own encoder's states
(`model.temporal_text_dim = text.temporal_width = 64`), because the T2I stage, seeing
single frames, had all but erased the direction words from its encoder
(benchmarks/text_direction.py).
"""

from configs.common import demo_config, set_schedule
from lumiere_jax.models import presets


def get_config():
    c = demo_config("stunet", presets.demo_stunet(temporal_text_dim=64))
    # The T2I's encoder stays frozen (it left "left" / "right" nearly the same states); a
    # fresh word encoder, read only by the temporal layers, trains with them.
    c.text.update(trainable=False, temporal_width=64, temporal_depth=1)
    set_schedule(c, steps=1500, lr=8e-4, warmup=100, batch_size=4, ema_decay=0.995,
                 ema_warmup=True, log_every=25, checkpoint_every=100)
    c.train.init_from = "pretrained/moving_shapes"  # its t2i stage
    c.sample.update(every=500, num_steps=32, guidance=3.0, prompts=(
        "a large red circle moving left on a black background",
        "a large blue square moving up on a white background"))
    return c
