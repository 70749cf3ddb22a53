"""Stage 2b: the conditional STUNet (image-to-video, inpainting, cinemagraphs).

Command (after configs/stunet.py):
    python train.py --config configs/conditional.py --workdir runs/conditional \
        --config.train.init_from=runs/stunet/checkpoints
Tiny variant (after `configs/stunet.py:tiny` wrote /tmp/tiny_stunet), ~20-30 s, 8 steps;
every spatial weight stays bit-identical to the STUNet run's:
    python train.py --config configs/conditional.py:tiny --workdir /tmp/tiny_conditional \
        --config.data.name=DATA --config.train.init_from=/tmp/tiny_stunet/checkpoints

The STUNet run's weights (EMA) are loaded; the input gains the `<C, M>` channels through
a zero-initialised `cond_input_conv` (so training starts at the STUNet), and each clip is
given a random condition: its first frame, all but a box, its first frame outside a box
(cinemagraph), or nothing (`random_training_condition`). As in the stunet stage only
`temporal_*` and `cond_*` weights train; the T2I weights and the text encoder stay frozen.
Use it with `LumierePipeline(conditional_config, params, ...)` and its
`image_to_video / inpaint / cinemagraph` methods, or `sample.py --mode i2v ...`.
Expected run time: 10k steps at global batch 16; not timed on an accelerator here.
Expected result: the loss starts at the STUNet's and falls below it (the condition gives
part of the answer); i2v samples keep the given first frame and move it.
"""

from configs.common import base_config, is_tiny, set_schedule, tiny_config
from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import presets


def get_config(arg=None):
    if is_tiny(arg):
        c = tiny_config("conditional")
        c.train.init_from = "/tmp/tiny_stunet/checkpoints"
        return c
    model = presets.tiny_stunet(channels=64, text_dim=64, image_size=16, num_frames=16,
                                      cond_channels=4)
    c = base_config("conditional", model)
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    set_schedule(c, steps=10_000, lr=1e-4, warmup=500, batch_size=16, checkpoint_every=1000)
    c.sample.every = 2000
    return c
