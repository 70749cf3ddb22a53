"""Stage 2b: the conditional STUNet (image-to-video, inpainting, cinemagraphs).

Command (after configs/stunet.py):
    python train.py --config configs/conditional.py --workdir runs/conditional \
        --config.train.init_from=runs/stunet/checkpoints

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

from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import configs as model_configs
from lumiere_jax.training.defaults import base_config


def get_config():
    model = model_configs.tiny_stunet(channels=64, text_dim=64, image_size=16, num_frames=16,
                                      cond_channels=4)
    c = base_config("conditional", model)
    # Whole words: 32 UTF-8 bytes would cut every caption before its direction word.
    c.text.update(tokenizer="words", vocab=caption_vocabulary())
    c.data.batch_size = 16
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 500
    c.optim.decay_steps = 10_000
    c.train.num_steps = 10_000
    c.train.checkpoint_every = 1000
    c.sample.every = 2000
    return c
