"""Named `UNetConfig` presets: tiny ones for tests, the demo cascade's, paper-scale ones for
abstract accounting.

A STUNet config is its T2I config plus temporal fields, so `inflate_params` fits.
"""

from __future__ import annotations

from lumiere_jax.models.config import UNetConfig


def tiny_t2i(**overrides) -> UNetConfig:
    """16 px, 3 levels, width 16: compiles in seconds on a CPU."""
    base = UNetConfig(channels=16, channel_mults=(1, 2, 2), num_res_blocks=1,
                      attention_levels=(2,), cross_attention_levels=(1, 2), num_heads=2,
                      norm_groups=4, text_dim=16, image_size=16, num_frames=8)
    return base.replace(**overrides)


def tiny_stunet(**overrides) -> UNetConfig:
    """`tiny_t2i` inflated: two temporal downsamplings (8 -> 4 -> 2 frames)."""
    return tiny_t2i().replace(temporal=True, temporal_downsample=(True, True),
                              temporal_heads=2).replace(**overrides)


def tiny_ssr(**overrides) -> UNetConfig:
    """Tiny SSR: low-res video as 3 extra input channels, noise-level embedding,
    temporal conv + attention, no temporal resampling (it sees short windows)."""
    base = UNetConfig(channels=16, channel_mults=(1, 2), num_res_blocks=1,
                      attention_levels=(), cross_attention_levels=(1,), num_heads=2,
                      norm_groups=4, text_dim=16, temporal=True, temporal_heads=2,
                      cond_channels=3, cond_level_embedding=True, image_size=32,
                      num_frames=4)
    return base.replace(**overrides)


def demo_t2i(**overrides) -> UNetConfig:
    """The shipped demo cascade's T2I U-Net: 32 px, width 32, 3 levels (32 / 16 / 8 px),
    2 ResBlocks per level, self-attention at 8 px, text cross-attention at 16 and 8 px."""
    base = UNetConfig(channels=32, channel_mults=(1, 2, 2), num_res_blocks=2,
                      attention_levels=(2,), cross_attention_levels=(1, 2), num_heads=2,
                      norm_groups=8, text_dim=64, image_size=32, num_frames=16)
    return base.replace(**overrides)


def demo_stunet(**overrides) -> UNetConfig:
    """`demo_t2i` inflated, 16 frames (-> 8 -> 4), temporal layers that read the text."""
    return demo_t2i().replace(temporal=True, temporal_downsample=(True, True),
                              temporal_heads=2, temporal_text=True).replace(**overrides)


def demo_layout(**overrides) -> UNetConfig:
    """The demo layout expert (`diffusion.layout`): a video U-Net trained from scratch on
    16-frame clips pooled to 8 px; 2 levels (8 / 4 px, frames kept), text cross-attention
    at both, temporal conv + a text layout field at 8 px, temporal attention at 4 px."""
    base = UNetConfig(channels=48, channel_mults=(1, 2), num_res_blocks=1,
                      attention_levels=(1,), cross_attention_levels=(0, 1), num_heads=2,
                      norm_groups=16, text_dim=64, temporal=True, temporal_downsample=(False,),
                      temporal_heads=2, temporal_text=True, temporal_text_layout=True,
                      image_size=8, num_frames=16)
    return base.replace(**overrides)


def demo_ssr(**overrides) -> UNetConfig:
    """The demo SSR: 32 -> 64 px on 4-frame windows (MultiDiffusion merges them); 2 levels
    (64 / 32 px), temporal conv at 64 px, temporal attention + text at 32 px."""
    base = UNetConfig(channels=32, channel_mults=(1, 2), num_res_blocks=1,
                      attention_levels=(), cross_attention_levels=(1,), num_heads=2,
                      norm_groups=8, text_dim=64, temporal=True, temporal_heads=2,
                      cond_channels=3, cond_level_embedding=True, image_size=64,
                      num_frames=4)
    return base.replace(**overrides)


def paper_t2i(**overrides) -> UNetConfig:
    """Imagen-base-like pixel U-Net at 128 px (Lumiere's base resolution), T5-XXL text.

    Widths 256/512/768/1024, 3 ResBlocks per level, attention at 32 and 16 px.
    Only ever built abstractly (`jax.eval_shape`) in this repository.
    """
    base = UNetConfig(channels=256, channel_mults=(1, 2, 3, 4), num_res_blocks=3,
                      attention_levels=(2, 3), cross_attention_levels=(2, 3), num_heads=8,
                      norm_groups=32, text_dim=4096, image_size=128, num_frames=80,
                      dtype="bfloat16")
    return base.replace(**overrides)


def paper_stunet(**overrides) -> UNetConfig:
    """`paper_t2i` inflated: 80 frames -> 40 -> 20 -> 10 at the coarsest level."""
    return paper_t2i().replace(temporal=True, temporal_downsample=(True, True, True),
                               temporal_heads=8).replace(**overrides)


CONFIGS = dict(tiny_t2i=tiny_t2i, tiny_stunet=tiny_stunet, tiny_ssr=tiny_ssr,
               demo_t2i=demo_t2i, demo_stunet=demo_stunet, demo_ssr=demo_ssr,
               paper_t2i=paper_t2i, paper_stunet=paper_stunet)


def get_config(name: str, **overrides) -> UNetConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown model config {name!r}; valid: {sorted(CONFIGS)}")
    return CONFIGS[name](**overrides)
