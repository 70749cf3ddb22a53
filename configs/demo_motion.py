"""Demo base (and conditional) stage fine-tuned on moving noise: the model the sampler's
`motion_noise` start is made for.

Commands (read the shipped stages, pretrained/moving_shapes; 2 CPU cores):
    python train_resident.py --config configs/demo_motion.py --workdir runs/motion_ft \
        --seconds 3300 --num_clips 20000 --warm_start pretrained/moving_shapes
    python train_resident.py --config configs/demo_motion.py:conditional \
        --workdir runs/motion_cond --seconds 2100 --num_clips 20000 \
        --warm_start pretrained/moving_shapes
(train.py runs the same configs with the TFDS build's velocity labels.)

Each training clip's noise is `training_motion_noise`: its shared part moves with the
clip's mean object velocity, correlation ~ U(0, 0.9) per clip, so the network learns that
noise whose shared part persists across frames is noise (the shipped base, trained on
plain noise, drew extra objects and blotches where it persisted) and that the clip moves
as it does. Go-with-the-Flow (Burgert et al. 2025) fine-tunes a video model on warped
noise the same way. Everything else is the shipped stage's config (`demo_stunet`,
`demo_conditional`): the same trainable weights, from the shipped values.
Measured (2026-12-05, 2 CPU cores, beside evaluation runs): base 875 steps in 55 min,
loss 0.035 -> 0.024, shipped; on 64 held-out short prompts (one clip, start c = 0.9)
colour+shape+direction 0.469 (0.312 before), count 0.641 (0.250), direction 0.625 (0.641).
Conditional 450 steps in 36 min, loss 0.039: no better than the shipped one on
image-to-video or inpainting, not shipped. Every figure: pretrained/moving_shapes/README.md
("Trained on moving noise").
"""

from configs import demo_conditional, demo_stunet
from configs.common import set_schedule


def get_config(stage: str = "base"):
    if stage not in ("base", "objects", "conditional"):
        raise ValueError(f"configs/demo_motion.py:{stage}: use ':base', ':objects' or "
                         "':conditional'")
    c = (demo_conditional if stage == "conditional" else demo_stunet).get_config()
    c.train.init_from = "pretrained/moving_shapes"
    c.train.init_from_kind = c.stage     # fine-tune the shipped stage of this kind, whole
    c.diffusion.motion_noise = 0.9
    if stage == "objects":  # the noise moves inside each object's disc only
        c.diffusion.motion_layout = "objects"
    set_schedule(c, steps=1200, lr=3e-4, warmup=50, batch_size=8, ema_decay=0.995,
                 ema_warmup=True, log_every=25, checkpoint_every=100)
    c.sample.every = 0
    return c
