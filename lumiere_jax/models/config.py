"""`UNetConfig`: one dataclass describes the T2I U-Net, the STUNet and the SSR network."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of `UNet`. Levels are indexed 0 (finest) .. L-1 (coarsest).

    Spatial layers (always present):
      channels, channel_mults: width of level l is channels * channel_mults[l].
      num_res_blocks: ResBlocks per level on the way down (up uses one more).
      attention_levels / cross_attention_levels: levels with spatial self-attention /
        text cross-attention (the middle block always has both when the coarsest does).
    Temporal layers (present when `temporal=True`; names start with `temporal_`):
      temporal_downsample: per level l < L-1, whether the spatial downsample after level
        l is followed by a temporal downsample (frames halve) -- and the matching
        upsample by a temporal upsample.
      (2+1)D temporal conv blocks follow every ResBlock at levels < L-1, temporal
      attention at the coarsest level and in the middle block.
      temporal_spatial_conv: each temporal conv block also has its own trainable 3x3
        spatial conv (zero-initialised, residual) before its temporal convs, a factorised
        (2+1)D block of its own; without it the block's "2" is the frozen spatial layer
        before it (`nn.temporal.TemporalConvBlock`).
      temporal_text: the temporal layers read the prompt too (a deviation from the paper,
        whose temporal layers see only the frozen spatial features): every temporal conv
        block is scaled / shifted by the time + pooled-text embedding plus a trainable
        `temporal_text_pool_proj`, and every temporal attention block is followed by a
        `temporal_cross_attention_*` to the text tokens. All of it is zero-initialised
        where it enters the residual stream, so identity at init still holds.
      temporal_text_layout: with `temporal_text`, that scale / shift also varies over
        frames and pixels (`nn.temporal.TextLayoutField`, zero-initialised): a per-channel
        scale / shift, the same in every frame and place, cannot say where an object
        moving right should be in which frame (a deviation from the paper, README
        "Design notes: motion from text").
      temporal_text_dim: with `temporal_text`, the width of extra text channels read only
        by the temporal layers: `text` is then `(B, L, text_dim + temporal_text_dim)`, the
        spatial layers read its first `text_dim` channels (the T2I's encoder) and the
        temporal layers the rest (a fresh `temporal_encoder`, see `TextEncoderConfig`).
        0: the temporal layers read the same states as the spatial ones.
    Conditioning:
      cond_channels: extra input channels (SSR low-res video, 7-channel <C, M>), fed
        through a zero-initialised `cond_input_conv` added to the input conv -- exactly a
        widened first convolution whose extra input kernels start at zero.
      cond_level_embedding: embed a per-example noise-augmentation level (SSR).
      cond_time_pool: for a `<C, M>` condition (last channel the mask) on video, also add
        to every frame, through a zero-initialised `cond_pool_conv`, what is known about
        each pixel in any frame (`pooled_condition`: the mean known content and the
        fraction of frames that know it). A deviation from the paper: with only the
        widened input conv, a first frame reaches distant frames only through temporal
        layers whose convs and attention start at zero, so the first-order gradient
        teaches mostly the given frames (the demo's first three conditional runs ignored
        the given frame, README).
    """

    in_channels: int = 3
    out_channels: int = 3
    channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2, 3)
    cross_attention_levels: tuple[int, ...] = (2, 3)
    num_heads: int = 4
    norm_groups: int = 32
    dropout: float = 0.0
    text_dim: int = 64
    # temporal (STUNet / SSR)
    temporal: bool = False
    temporal_downsample: tuple[bool, ...] = ()
    temporal_kernel_size: int = 3
    temporal_spatial_conv: bool = False
    temporal_heads: int = 4
    temporal_text: bool = False
    temporal_text_layout: bool = False
    temporal_text_dim: int = 0
    # conditioning
    cond_channels: int = 0
    cond_level_embedding: bool = False
    cond_time_pool: bool = False
    # numerics
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False
    # nominal input size (used for validation messages, benchmarks and abstract builds)
    image_size: int = 32
    num_frames: int = 8

    def __post_init__(self):
        levels = len(self.channel_mults)
        if levels < 1:
            raise ValueError("channel_mults must name at least one level")
        for field in ("attention_levels", "cross_attention_levels"):
            bad = [l for l in getattr(self, field) if not 0 <= l < levels]
            if bad:
                raise ValueError(f"{field}={getattr(self, field)} has levels {bad} outside "
                                 f"0..{levels - 1} (len(channel_mults)={levels})")
        if self.temporal_downsample and len(self.temporal_downsample) != levels - 1:
            raise ValueError(f"temporal_downsample needs one flag per downsampling (levels - 1 "
                             f"= {levels - 1}), got {self.temporal_downsample}")
        if self.temporal_downsample and not self.temporal:
            raise ValueError("temporal_downsample is set but temporal=False")
        if self.temporal_spatial_conv and not self.temporal:
            raise ValueError("temporal_spatial_conv is set but temporal=False")
        if self.temporal_text and not self.temporal:
            raise ValueError("temporal_text is set but temporal=False")
        if self.temporal_text_layout and not self.temporal_text:
            raise ValueError("temporal_text_layout needs temporal_text=True")
        if self.temporal_text_dim < 0 or (self.temporal_text_dim and not self.temporal_text):
            raise ValueError(f"temporal_text_dim={self.temporal_text_dim} must be >= 0 and needs "
                             "temporal_text=True")
        if self.cond_time_pool and (self.cond_channels < 2 or not self.temporal):
            raise ValueError(f"cond_time_pool needs a temporal config with a <C, M> condition "
                             f"(cond_channels >= 2), got temporal={self.temporal}, "
                             f"cond_channels={self.cond_channels}")
        if self.norm_groups < 1:
            raise ValueError(f"norm_groups must be >= 1, got {self.norm_groups}")

    @property
    def text_input_dim(self) -> int:
        """The last dimension of the `text` input: `text_dim + temporal_text_dim`."""
        return self.text_dim + self.temporal_text_dim

    @property
    def num_levels(self) -> int:
        return len(self.channel_mults)

    @property
    def num_spatial_downsamples(self) -> int:
        return self.num_levels - 1

    @property
    def num_temporal_downsamples(self) -> int:
        return sum(bool(f) for f in self.temporal_downsample)

    def level_downsamples_time(self, level: int) -> bool:
        """Whether the downsample after `level` (and the upsample into it) resamples time."""
        return bool(self.temporal_downsample) and bool(self.temporal_downsample[level])

    @property
    def jnp_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def jnp_param_dtype(self):
        return jnp.dtype(self.param_dtype)

    def replace(self, **changes) -> "UNetConfig":
        return dataclasses.replace(self, **changes)


def _nearest_multiples(value: int, multiple: int) -> str:
    low = (value // multiple) * multiple
    candidates = [c for c in (low, low + multiple) if c > 0]
    return ", ".join(str(c) for c in candidates)


def check_input_shape(config: UNetConfig, shape: Sequence[int]) -> None:
    """Raise a `ValueError` naming the config field if `shape` cannot go through the net.

    `shape`: `(B, H, W, C)` image or `(B, T, H, W, C)` video. Call before tracing
    (the model also calls it, at trace time, with static shapes).
    """
    if len(shape) not in (4, 5):
        raise ValueError(f"input must be (B, H, W, C) or (B, T, H, W, C), got shape {tuple(shape)}")
    height, width, chans = shape[-3:]
    if chans != config.in_channels:
        raise ValueError(f"input has {chans} channels but UNetConfig.in_channels="
                         f"{config.in_channels}")
    spatial = 2 ** config.num_spatial_downsamples
    for name, size in (("height", height), ("width", width)):
        if size % spatial:
            raise ValueError(
                f"{name} {size} is not divisible by 2**num_spatial_downsamples = {spatial} "
                f"(UNetConfig.channel_mults has {config.num_levels} levels); nearest valid "
                f"sizes: {_nearest_multiples(size, spatial)}")
    if len(shape) == 5:
        frames = shape[1]
        temporal = 2 ** config.num_temporal_downsamples
        if frames % temporal:
            raise ValueError(
                f"num_frames {frames} is not divisible by 2**num_temporal_downsamples = "
                f"{temporal} (UNetConfig.temporal_downsample={config.temporal_downsample}); "
                f"nearest valid frame counts: {_nearest_multiples(frames, temporal)}")
