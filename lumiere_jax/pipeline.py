"""Text-to-video cascade: prompt -> text encoder -> STUNet base video -> SSR (MultiDiffusion).

    pipe = LumierePipeline(base_config, base_params, ssr_config, ssr_params, text_encoder)
    video = pipe(["a corgi surfing"], jax.random.key(0))   # uint8 (B, T, H, W, 3)
    pipe.save_mp4(video[0], "corgi.mp4")

Both stages run inside ONE jitted function: the base STUNet samples all frames at once
(one `lax.scan` over steps); its output is upsampled with `jax.image.resize`,
noise-augmented to `cond_noise_level`, and the SSR network denoises the full clip through
`multidiffusion_denoiser` (overlapping temporal windows merged at every step) in a second
`lax.scan`. Any checkpoints that fit the two `UNetConfig`s work.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.diffusion.guidance import CLIP_MODES, classifier_free_guidance, noise_augment
from lumiere_jax.diffusion.multidiffusion import WEIGHT_KINDS, multidiffusion_denoiser, window_starts
from lumiere_jax.diffusion.objectives import check_prediction
from lumiere_jax.diffusion.samplers import SAMPLERS, sample
from lumiere_jax.diffusion.schedules import Schedule, cosine_schedule
from lumiere_jax.models import UNet, UNetConfig, check_input_shape

TextEncoderFn = Callable[[Sequence[str]], tuple[Any, Any]]

__all__ = ["SamplingConfig", "LumierePipeline", "to_uint8", "save_video"]


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Static sampling options of the cascade (hashable; changing one recompiles).

    base_steps / ssr_steps: sampler steps per stage. sampler: 'ddim' | 'ddpm' | 'dpmpp_2m'.
    prediction: what both networks output ('eps' | 'v' | 'x0').
    base_guidance / ssr_guidance: classifier-free guidance scales (1.0 = no null pass).
    base_clip / ssr_clip: x0 clipping per stage (None | 'static' | 'dynamic').
    window / stride: SSR MultiDiffusion windows (None: the SSR config's `num_frames`,
      and half of it). chunk_size: windows per SSR model call (None: all at once).
    window_weights: 'uniform' | 'tapered'. cond_noise_level: the noise-augmentation time
      applied to the upsampled low-res video (the SSR's `cond_level`).
    resize_method: `jax.image.resize` method for the low-res video.
    base_schedule / ssr_schedule: None -> shifted cosine, `cosine_schedule(size, base_size)`
      with the base resolution as reference for both.
    """

    base_steps: int = 50
    ssr_steps: int = 25
    sampler: str = "ddim"
    prediction: str = "v"
    base_guidance: float = 8.0
    ssr_guidance: float = 1.0
    base_clip: str | None = "dynamic"
    ssr_clip: str | None = "static"
    window: int | None = None
    stride: int | None = None
    chunk_size: int | None = None
    window_weights: str = "uniform"
    cond_noise_level: float = 0.1
    resize_method: str = "cubic"
    base_schedule: Schedule | None = None
    ssr_schedule: Schedule | None = None

    def __post_init__(self):
        for name in ("base_steps", "ssr_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SamplingConfig.{name} must be an int >= 1, got {v!r}.")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"SamplingConfig.sampler={self.sampler!r}; valid: {SAMPLERS}.")
        check_prediction(self.prediction)
        for name in ("base_clip", "ssr_clip"):
            if getattr(self, name) not in CLIP_MODES:
                raise ValueError(f"SamplingConfig.{name}={getattr(self, name)!r}; valid: "
                                 f"{CLIP_MODES}.")
        if self.window_weights not in WEIGHT_KINDS:
            raise ValueError(f"SamplingConfig.window_weights={self.window_weights!r}; valid: "
                             f"{WEIGHT_KINDS}.")
        if not 0.0 <= self.cond_noise_level <= 1.0:
            raise ValueError(f"SamplingConfig.cond_noise_level={self.cond_noise_level} must be "
                             "in [0, 1].")
        if self.resize_method not in ("nearest", "linear", "bilinear", "cubic", "bicubic",
                                      "lanczos3", "lanczos5"):
            raise ValueError(f"SamplingConfig.resize_method={self.resize_method!r} is not a "
                             "jax.image.resize method (e.g. 'cubic', 'linear').")


def to_uint8(video: jax.Array) -> jax.Array:
    """[-1, 1] float -> uint8 [0, 255], rounded and clipped; any shape."""
    return jnp.clip(jnp.round((video.astype(jnp.float32) + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def save_video(path: str | os.PathLike, video: np.ndarray, fps: float = 16.0) -> None:
    """Write uint8 (T, H, W, 3) frames; .mp4 (H.264 via imageio-ffmpeg) or .gif by suffix."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be uint8 (T, H, W, 3) (one clip of the batch), got "
                         f"{video.dtype} {video.shape}.")
    try:
        from lumiere_jax.data.video_io import write_video
    except ImportError:  # the data package is optional for sampling
        write_video = None
    if write_video is not None:
        write_video(path, video, fps=fps)
        return
    import imageio.v2 as imageio

    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".gif":
        imageio.mimsave(path, list(video), duration=1000.0 / fps, loop=0)
    elif suffix == ".mp4":
        imageio.mimsave(path, list(video), fps=fps, codec="libx264", macro_block_size=1)
    else:
        raise ValueError(f"path suffix {suffix!r} not supported; use .mp4 or .gif.")


class LumierePipeline:
    """Text -> low-res video (base STUNet, all frames at once) -> high-res video (SSR).

    Args:
      base_config, base_params: the STUNet (a temporal `UNetConfig`, 3 -> 3 channels);
        `base_config.image_size` is the low resolution, `num_frames` the default length.
      ssr_config, ssr_params: the SSR network (`cond_channels=3` for the upsampled low-res
        video, optional `cond_level_embedding`); `ssr_config.image_size` is the output
        resolution, `ssr_config.num_frames` the default MultiDiffusion window.
      text_encoder: `text_encoder(prompts: list[str]) -> (states (B, L, D), mask (B, L))`,
        D = both configs' `text_dim` (e.g. a tokenizer + `T5Encoder`). It runs outside the
        jitted sampler; the empty prompt "" is the null condition for guidance.
      sampling: `SamplingConfig`.
    Params may carry flax partitioning metadata (they are unboxed) and may be sharded.
    Raises ValueError at construction for configs or settings that cannot work.
    """

    def __init__(self, base_config: UNetConfig, base_params: Any, ssr_config: UNetConfig,
                 ssr_params: Any, text_encoder: TextEncoderFn,
                 sampling: SamplingConfig = SamplingConfig()):
        if not base_config.temporal:
            raise ValueError("base_config must be a temporal (STUNet) UNetConfig; got "
                             "temporal=False.")
        for name, cfg in (("base_config", base_config), ("ssr_config", ssr_config)):
            if cfg.in_channels != 3 or cfg.out_channels != 3:
                raise ValueError(f"{name} must map 3 -> 3 channels, got in_channels="
                                 f"{cfg.in_channels}, out_channels={cfg.out_channels}.")
        if base_config.cond_channels:
            raise ValueError("base_config.cond_channels must be 0 for text-to-video "
                             f"(got {base_config.cond_channels}).")
        if ssr_config.cond_channels != 3:
            raise ValueError("ssr_config.cond_channels must be 3 (the upsampled low-res RGB "
                             f"video), got {ssr_config.cond_channels}.")
        if ssr_config.image_size < base_config.image_size:
            raise ValueError(f"ssr_config.image_size={ssr_config.image_size} must be >= "
                             f"base_config.image_size={base_config.image_size}.")
        if base_config.text_dim != ssr_config.text_dim:
            raise ValueError(f"base_config.text_dim={base_config.text_dim} and "
                             f"ssr_config.text_dim={ssr_config.text_dim} must match (one text "
                             "encoder feeds both).")
        if not isinstance(sampling, SamplingConfig):
            raise ValueError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}.")
        self.base_config, self.ssr_config, self.sampling = base_config, ssr_config, sampling
        self.base_params = nn.meta.unbox(base_params)
        self.ssr_params = nn.meta.unbox(ssr_params)
        self.text_encoder = text_encoder
        self.window = sampling.window if sampling.window is not None else ssr_config.num_frames
        self.stride = sampling.stride if sampling.stride is not None else max(self.window // 2, 1)
        window_starts(self.window, self.window, self.stride)  # window >= 1, 1 <= stride <= window
        low, high = base_config.image_size, ssr_config.image_size
        self.base_schedule = sampling.base_schedule or cosine_schedule(low, low)
        self.ssr_schedule = sampling.ssr_schedule or cosine_schedule(high, low)
        # Fails early on bad image sizes / window frame counts for either network.
        check_input_shape(base_config, (1, base_config.num_frames, low, low, 3))
        check_input_shape(ssr_config, (1, self.window, high, high, 3))
        self._jitted = jax.jit(self._generate, static_argnames=("num_frames",))

    # ------------------------------------------------------------------ validation

    def check_num_frames(self, num_frames: int) -> None:
        """ValueError unless both networks (and the SSR windows) accept `num_frames`."""
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be an int >= 1, got {num_frames!r}.")
        low, high = self.base_config.image_size, self.ssr_config.image_size
        check_input_shape(self.base_config, (1, num_frames, low, low, 3))
        window_starts(num_frames, self.window, self.stride)  # window <= frames, 1 <= stride <= window

    # ------------------------------------------------------------------ jitted cascade

    def _denoiser(self, config: UNetConfig, params: Any, text: jax.Array, mask: jax.Array,
                  null_text: jax.Array, null_mask: jax.Array, scale: float,
                  **extra: jax.Array) -> Callable[[jax.Array, jax.Array], jax.Array]:
        """(x (B, T, H, W, 3), t (B,)) -> model output, with classifier-free guidance."""
        model = UNet(config)

        def model_fn(x, t, c):
            return model.apply({"params": params}, x, t, c["text"], c["mask"], **c["extra"])

        cond = dict(text=text, mask=mask, extra=extra)
        if scale == 1.0:
            return lambda x, t: model_fn(x, t, cond)
        null = dict(text=null_text, mask=null_mask, extra=extra)
        guided = classifier_free_guidance(model_fn, scale)
        return lambda x, t: guided(x, t, cond, null)

    def _generate(self, base_params: Any, ssr_params: Any, text: jax.Array, mask: jax.Array,
                  null_text: jax.Array, null_mask: jax.Array, key: jax.Array, *,
                  num_frames: int) -> tuple[jax.Array, jax.Array]:
        s, base_cfg, ssr_cfg = self.sampling, self.base_config, self.ssr_config
        batch, low, high = text.shape[0], base_cfg.image_size, ssr_cfg.image_size
        k_base, k_base_sample, k_aug, k_ssr, k_ssr_sample = jax.random.split(key, 5)

        # Stage 1: the STUNet denoises all frames at once.
        base_fn = self._denoiser(base_cfg, base_params, text, mask, null_text, null_mask,
                                 s.base_guidance)
        x_base = jax.random.normal(k_base, (batch, num_frames, low, low, 3), jnp.float32)
        low_res = sample(base_fn, x_base, k_base_sample, schedule=self.base_schedule,
                         sampler=s.sampler, num_steps=s.base_steps, prediction=s.prediction,
                         clip=s.base_clip)
        low_res = jnp.clip(low_res, -1.0, 1.0)

        # Stage 2: SSR on overlapping temporal windows, merged by MultiDiffusion each step.
        up = jax.image.resize(low_res, (batch, num_frames, high, high, 3), s.resize_method)
        cond, cond_level = noise_augment(up, k_aug, self.ssr_schedule, t=s.cond_noise_level)
        extra = dict(cond_level=cond_level) if ssr_cfg.cond_level_embedding else {}

        def window_fn(x_w, t, cond_w):
            fn = self._denoiser(ssr_cfg, ssr_params, text, mask, null_text, null_mask,
                                s.ssr_guidance, cond=cond_w, **extra)
            return fn(x_w, t)

        ssr_fn = multidiffusion_denoiser(window_fn, num_frames, self.window, self.stride,
                                         s.chunk_size, s.window_weights)
        x_ssr = jax.random.normal(k_ssr, (batch, num_frames, high, high, 3), jnp.float32)
        high_res = sample(lambda x, t: ssr_fn(x, t, cond), x_ssr, k_ssr_sample,
                          schedule=self.ssr_schedule, sampler=s.sampler, num_steps=s.ssr_steps,
                          prediction=s.prediction, clip=s.ssr_clip)
        return to_uint8(low_res), to_uint8(high_res)

    # ------------------------------------------------------------------ public API

    def encode_text(self, prompts: Sequence[str]) -> tuple[jax.Array, jax.Array]:
        """prompts -> (states (B, L, D) float32, mask (B, L) bool), checked against text_dim."""
        states, mask = self.text_encoder(list(prompts))
        states, mask = jnp.asarray(states, jnp.float32), jnp.asarray(mask).astype(bool)
        if states.ndim != 3 or mask.shape != states.shape[:2]:
            raise ValueError(f"text_encoder must return states (B, L, D) and mask (B, L); got "
                             f"{states.shape} and {mask.shape}.")
        if states.shape[-1] != self.base_config.text_dim:
            raise ValueError(f"text_encoder states have D={states.shape[-1]} but the configs' "
                             f"text_dim={self.base_config.text_dim}.")
        return states, mask

    def __call__(self, prompts: Sequence[str] | str, key: jax.Array, *,
                 num_frames: int | None = None, return_low_res: bool = False
                 ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Generate one video per prompt.

        Returns uint8 (B, T, ssr_size, ssr_size, 3); with `return_low_res`, also the base
        stage's uint8 (B, T, base_size, base_size, 3) as a first element.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be a non-empty list of strings.")
        num_frames = self.base_config.num_frames if num_frames is None else num_frames
        self.check_num_frames(num_frames)
        text, mask = self.encode_text(prompts)
        null_text, null_mask = self.encode_text([""])
        if null_text.shape[1] != text.shape[1]:
            raise ValueError("text_encoder must pad every prompt to one length L (the null "
                             f"prompt gave L={null_text.shape[1]}, the prompts L={text.shape[1]}).")
        low, high = self._jitted(self.base_params, self.ssr_params, text, mask, null_text,
                                 null_mask, key, num_frames=num_frames)
        high = np.asarray(jax.device_get(high))
        return (np.asarray(jax.device_get(low)), high) if return_low_res else high

    @staticmethod
    def save_mp4(video: np.ndarray, path: str | os.PathLike, fps: float = 16.0) -> None:
        """uint8 (T, H, W, 3) -> H.264 MP4 (H, W even)."""
        if os.path.splitext(os.fspath(path))[1].lower() != ".mp4":
            raise ValueError(f"save_mp4 needs a .mp4 path, got {os.fspath(path)!r}.")
        save_video(path, video, fps)

    @staticmethod
    def save_gif(video: np.ndarray, path: str | os.PathLike, fps: float = 16.0) -> None:
        """uint8 (T, H, W, 3) -> looping GIF."""
        if os.path.splitext(os.fspath(path))[1].lower() != ".gif":
            raise ValueError(f"save_gif needs a .gif path, got {os.fspath(path)!r}.")
        save_video(path, video, fps)
