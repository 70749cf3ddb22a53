"""Demo stage 1: the text-to-image U-Net of the shipped cascade, on single 32 px frames.

Command (builds moving_shapes/f16_s32 first if it is missing):
    python train.py --config configs/demo_t2i.py --workdir runs/demo_t2i

Model: width 32, 3 levels (32 / 16 / 8 px), 2 ResBlocks per level, self-attention at
8 px, text cross-attention at 16 and 8 px; a 2-layer width-64 text encoder over whole
words (`WordTokenizer`, the moving_shapes vocabulary) trained jointly. Captions are
rebuilt from the labels with optional parts dropped (`data.caption_dropout`), so short
prompts ("a red circle moving right") are in the training data.
"""

from lumiere_jax.data.moving_shapes import caption_vocabulary
from lumiere_jax.models import configs as model_configs
from lumiere_jax.training.defaults import base_config


def demo_model(**overrides):
    """The demo T2I U-Net; `configs/demo_stunet.py` inflates exactly this."""
    return model_configs.tiny_t2i(
        channels=32, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(2,),
        cross_attention_levels=(1, 2), num_heads=2, norm_groups=8, text_dim=64,
        image_size=32, num_frames=16).replace(**overrides)


def demo_text(c):
    """Word-level text encoder settings shared by every demo stage."""
    c.text.update(tokenizer="words", vocab=caption_vocabulary(), max_length=32, width=64,
                  depth=2, num_heads=2)
    c.data.update(name="moving_shapes/f16_s32", caption_dropout=0.5, num_threads=2,
                  prefetch=2)
    return c


def get_config():
    c = demo_text(base_config("t2i", demo_model()))
    c.data.batch_size = 32
    c.optim.update(lr=5e-4, warmup_steps=200, decay_steps=3000, ema_decay=0.999)
    c.train.update(num_steps=3000, log_every=50, checkpoint_every=250)
    c.sample.update(every=1000, num_steps=32, guidance=3.0, prompts=(
        "a large red circle moving left on a black background",
        "a blue square moving up on a white background",
        "a yellow triangle moving right on a gray background"))
    return c
