"""`UNet`: the Imagen-style pixel U-Net; T2I, STUNet and SSR are configurations of it.

Spatial layers see a video as `(B*T, H, W, C)`, temporal layers as `(B*H*W, T, C)`.
Every temporal submodule is named `temporal_*`, so a T2I parameter tree is a strict
subset (same paths, same shapes) of the STUNet tree built from the same config.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange, repeat

from lumiere_jax.models.config import UNetConfig, check_input_shape
from lumiere_jax.nn.attention import SpatialSelfAttention, TextCrossAttention
from lumiere_jax.nn.embeddings import ScalarEmbedding
from lumiere_jax.nn.layers import conv, dense, zeros_init
from lumiere_jax.nn.norm import group_norm
from lumiere_jax.nn.resample import (SpatialDownsample, SpatialUpsample, TemporalDownsample,
                                     TemporalUpsample)
from lumiere_jax.nn.resblock import ResBlock
from lumiere_jax.nn.temporal import TemporalAttention, TemporalConvBlock


def pooled_text(text: jax.Array, text_mask: jax.Array) -> jax.Array:
    """Masked mean over tokens: `(B, L, D)`, `(B, L)` -> `(B, D)` (zeros if all masked)."""
    weights = text_mask.astype(jnp.float32)[..., None]
    total = jnp.sum(text.astype(jnp.float32) * weights, axis=1)
    return total / jnp.maximum(jnp.sum(weights, axis=1), 1.0)


def pooled_condition(cond: jax.Array) -> jax.Array:
    """What each pixel's condition says in any frame: `<C, M>` `(B, T, H, W, K + 1)` ->
    `(B, H, W, K + 1)`, the mean of C over the frames where M is 1 (zeros where none is)
    and the fraction of frames where M is 1."""
    content, mask = cond[..., :-1].astype(jnp.float32), cond[..., -1:].astype(jnp.float32)
    known = jnp.sum(mask, axis=1)
    mean_content = jnp.sum(content * mask, axis=1) / jnp.maximum(known, 1.0)
    return jnp.concatenate([mean_content, known / cond.shape[1]], axis=-1)


class UNet(nn.Module):
    """Pixel-space diffusion U-Net for images and videos.

    `__call__(x, t, text, text_mask, cond=None, cond_level=None, train=False)`:
      x: `(B, H, W, C_in)` image or `(B, T, H, W, C_in)` video, values ~[-1, 1];
      t: `(B,)` diffusion time in [0, 1]; text: `(B, L, D)` encoder states,
        D = `config.text_input_dim` (the last `temporal_text_dim` read only by the
        temporal layers);
      text_mask: `(B, L)` bool; cond: x's shape with `cond_channels` channels;
      cond_level: `(B,)` noise-augmentation level of `cond` (SSR).
    Returns the prediction with x's leading shape and `out_channels` channels, float32.
    Temporal layers run only on video input of a `temporal` config; initialise a
    STUNet with a video so that they exist.
    """

    config: UNetConfig

    def _kw(self) -> dict:
        return dict(dtype=self.config.jnp_dtype, param_dtype=self.config.jnp_param_dtype)

    def _wrap(self, cls):
        """`cls`, rematerialised when `config.remat` (ResBlock's `train` arg is static)."""
        if not self.config.remat:
            return cls
        return nn.remat(cls, static_argnums=(3,) if cls is ResBlock else ())

    def _block(self, h, emb, text, text_mask, *, level: int, tag: str, width: int,
               batch: int, temporal: bool, train: bool, temporal_emb=None, temporal_text=None):
        """ResBlock -> [cross-attn] -> [self-attn] -> [temporal conv | temporal attention
        (-> temporal text cross-attention)]. With `temporal_text`: `temporal_emb` (B, E)
        and the states the temporal layers read, `temporal_text` (B, L, D_t)."""
        cfg, kw = self.config, self._kw()
        h = self._wrap(ResBlock)(width, cfg.norm_groups, cfg.dropout, name=f"{tag}_res", **kw)(
            h, emb, train)
        if level in cfg.cross_attention_levels:
            h = self._wrap(TextCrossAttention)(cfg.num_heads, cfg.norm_groups,
                                               name=f"{tag}_cross_attention", **kw)(
                                                   h, text, text_mask)
        if level in cfg.attention_levels:
            h = self._wrap(SpatialSelfAttention)(cfg.num_heads, cfg.norm_groups,
                                                 name=f"{tag}_self_attention", **kw)(h)
        if temporal:
            if level < cfg.num_levels - 1:
                h = self._wrap(TemporalConvBlock)(batch, cfg.temporal_kernel_size, cfg.norm_groups,
                                                  cfg.temporal_spatial_conv,
                                                  cfg.temporal_text_layout,
                                                  name=f"temporal_conv_{tag}", **kw)(
                                                      h, temporal_emb)
            else:
                h = self._wrap(TemporalAttention)(batch, cfg.temporal_heads, cfg.norm_groups,
                                                  name=f"temporal_attention_{tag}", **kw)(h)
                if cfg.temporal_text:
                    h = self._wrap(TextCrossAttention)(
                        cfg.temporal_heads, cfg.norm_groups,
                        name=f"temporal_cross_attention_{tag}", **kw)(
                            h, temporal_text, text_mask)
        return h

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, text: jax.Array, text_mask: jax.Array,
                 cond: jax.Array | None = None, cond_level: jax.Array | None = None,
                 train: bool = False) -> jax.Array:
        cfg, kw = self.config, self._kw()
        check_input_shape(cfg, x.shape)
        is_video, batch = x.ndim == 5, x.shape[0]
        temporal = cfg.temporal and is_video
        if t.shape != (batch,):
            raise ValueError(f"t must have shape (B,) = ({batch},), got {t.shape}")
        if text.ndim != 3 or text.shape[0] != batch or text_mask.shape != text.shape[:2]:
            raise ValueError(f"text must be (B, L, D) and text_mask (B, L) with B={batch}; got "
                             f"{text.shape} and {text_mask.shape}")
        if cfg.temporal_text_dim and text.shape[-1] != cfg.text_input_dim:
            raise ValueError(f"text must have D = text_dim + temporal_text_dim = "
                             f"{cfg.text_input_dim} channels, got {text.shape[-1]}")
        temporal_text = text
        if cfg.temporal_text_dim:  # [T2I encoder states | temporal encoder states]
            text, temporal_text = text[..., :cfg.text_dim], text[..., cfg.text_dim:]
        to_frames = (lambda a: rearrange(a, "b t h w c -> (b t) h w c")) if is_video else (
            lambda a: a)

        emb_dim = 4 * cfg.channels
        emb = ScalarEmbedding(emb_dim, name="time_embed", **kw)(t)
        emb = emb + dense(emb_dim, name="text_pool_proj", **kw)(
            pooled_text(text, text_mask).astype(cfg.jnp_dtype))
        if cfg.cond_level_embedding:
            if cond_level is None or cond_level.shape != (batch,):
                raise ValueError("this config embeds a conditioning noise level: pass "
                                 f"cond_level of shape ({batch},)")
            emb = emb + ScalarEmbedding(emb_dim, name="cond_level_embed", **kw)(cond_level)

        h = conv(cfg.channels * cfg.channel_mults[0], (3, 3), name="input_conv", **kw)(
            to_frames(x).astype(cfg.jnp_dtype))
        if cfg.cond_channels:
            expected = x.shape[:-1] + (cfg.cond_channels,)
            if cond is None or cond.shape != expected:
                raise ValueError(f"UNetConfig.cond_channels={cfg.cond_channels}: cond must have "
                                 f"shape {expected}, got {None if cond is None else cond.shape}")
            h = h + conv(h.shape[-1], (3, 3), name="cond_input_conv", use_bias=False,
                         kernel_init=zeros_init, **kw)(to_frames(cond).astype(cfg.jnp_dtype))
            if cfg.cond_time_pool and is_video:
                pooled = conv(h.shape[-1], (3, 3), name="cond_pool_conv", use_bias=False,
                              kernel_init=zeros_init, **kw)(
                    pooled_condition(cond).astype(cfg.jnp_dtype))
                h = h + repeat(pooled, "b h w c -> (b t) h w c", t=x.shape[1])

        temporal_emb = None
        if temporal and cfg.temporal_text:  # trainable text path into the temporal layers
            temporal_emb = emb + dense(emb_dim, name="temporal_text_pool_proj", **kw)(
                pooled_text(temporal_text, text_mask).astype(cfg.jnp_dtype))
        block = lambda h, **a: self._block(h, emb, text, text_mask, batch=batch,
                                            temporal=temporal, train=train,
                                            temporal_emb=temporal_emb,
                                            temporal_text=temporal_text, **a)
        skips = [h]
        for level, mult in enumerate(cfg.channel_mults):
            for i in range(cfg.num_res_blocks):
                h = block(h, level=level, tag=f"down{level}_{i}", width=cfg.channels * mult)
                skips.append(h)
            if level < cfg.num_levels - 1:
                h = SpatialDownsample(name=f"down{level}_downsample", **kw)(h)
                if temporal and cfg.level_downsamples_time(level):
                    h = TemporalDownsample(batch, name=f"temporal_downsample_{level}", **kw)(h)
                skips.append(h)

        coarsest = cfg.num_levels - 1
        h = block(h, level=coarsest, tag="mid_0", width=h.shape[-1])
        h = self._wrap(ResBlock)(h.shape[-1], cfg.norm_groups, cfg.dropout, name="mid_1_res",
                                 **kw)(h, emb, train)

        for level in reversed(range(cfg.num_levels)):
            for i in range(cfg.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = block(h, level=level, tag=f"up{level}_{i}",
                          width=cfg.channels * cfg.channel_mults[level])
            if level > 0:
                h = SpatialUpsample(name=f"up{level}_upsample", **kw)(h)
                if temporal and cfg.level_downsamples_time(level - 1):
                    h = TemporalUpsample(batch, name=f"temporal_upsample_{level - 1}", **kw)(h)
        assert not skips

        h = group_norm(h.shape[-1], cfg.norm_groups, name="out_norm", silu=True, **kw)(h)
        out = conv(cfg.out_channels, (3, 3), name="out_conv", **kw)(h).astype(jnp.float32)
        if is_video:
            out = rearrange(out, "(b t) h w c -> b t h w c", b=batch)
        return out


def dummy_inputs(config: UNetConfig, batch: int = 1, num_frames: int | None = None,
                 text_len: int = 8, video: bool | None = None) -> dict:
    """Zero inputs of the config's nominal size (video iff temporal unless `video` says)."""
    video = config.temporal if video is None else video
    frames = config.num_frames if num_frames is None else num_frames
    spatial = (config.image_size, config.image_size)
    lead = (batch, frames) if video else (batch,)
    inputs = dict(
        x=jnp.zeros(lead + spatial + (config.in_channels,), jnp.float32),
        t=jnp.zeros((batch,), jnp.float32),
        text=jnp.zeros((batch, text_len, config.text_input_dim), jnp.float32),
        text_mask=jnp.ones((batch, text_len), bool),
    )
    if config.cond_channels:
        inputs["cond"] = jnp.zeros(lead + spatial + (config.cond_channels,), jnp.float32)
    if config.cond_level_embedding:
        inputs["cond_level"] = jnp.zeros((batch,), jnp.float32)
    return inputs


def init_params(config: UNetConfig, key: jax.Array, **dummy_kwargs):
    """Initialise `UNet(config)` (jitted) on dummy inputs; returns the boxed `params`.

    Video input for temporal configs, so the temporal layers exist.
    `flax.linen.meta.unbox` gives plain arrays.
    """
    inputs = dummy_inputs(config, **dummy_kwargs)
    return jax.jit(lambda k, i: UNet(config).init(k, **i)["params"])(key, inputs)
