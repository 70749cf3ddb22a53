"""Text-to-video cascade: prompt -> text encoder -> STUNet base video -> SSR (MultiDiffusion).

    pipe = LumierePipeline(base_config, base_params, ssr_config, ssr_params, text_encoder)
    video = pipe(["a corgi surfing"], jax.random.key(0))   # uint8 (B, T, H, W, 3)
    pipe.save_mp4(video[0], "corgi.mp4")

Both stages run inside ONE jitted function: the base STUNet samples all frames at once
(one `lax.scan` over steps); its output is upsampled with `jax.image.resize`,
noise-augmented to `cond_noise_level`, and the SSR network denoises the full clip through
`multidiffusion_denoiser` (overlapping temporal windows merged at every step) in a second
`lax.scan`. Any checkpoints that fit the two `UNetConfig`s work.

The paper's applications replace the base stage (the SSR stage is shared):
`image_to_video`, `inpaint` and `cinemagraph` sample it from the `<C, M>` condition
(a conditional STUNet, `cond_channels=4`, reads it; a plain one is steered by replacement),
`edit` runs SDEdit on a given video, and `upsample` takes the base video as given. With
`replace_known`, the known region is also replaced during the SSR stage, so the output
equals the given content there. With `SamplingConfig.layer_objects`, a prompt that names
several objects is drawn one object at a time and the clips are layered
(`lumiere_jax.layering`) before the SSR stage.

Trained weights: `LumierePipeline.from_pretrained("pretrained/moving_shapes")` (a folder
written by `save_pretrained`, see `lumiere_jax.pretrained`), or `from_runs` on the
(config, weights) of two train.py runs.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax import pretrained, runs
from lumiere_jax.applications.conditional import sample_conditional
from lumiere_jax.applications.inputs import mask_input, pixels_input, resize_input
from lumiere_jax.applications.conditioning import (cinemagraph_condition,
                                                   image_to_video_condition,
                                                   inpainting_condition, split_condition)
from lumiere_jax.applications.sdedit import check_strength, sdedit
from lumiere_jax.applications.style import interpolate_spatial_weights
from lumiere_jax.diffusion.clip_motion import motion_agreement, motion_coherence
from lumiere_jax.diffusion.guidance import CLIP_MODES, critic_guidance, noise_augment
from lumiere_jax.diffusion.layout import layout_denoiser, switch_at
from lumiere_jax.diffusion.motion_noise import (MOTION_LAYOUTS, carried_frames, object_noise,
                                                plan_tracks, translating_noise)
from lumiere_jax.diffusion.multidiffusion import (WEIGHT_KINDS, multidiffusion_denoiser,
                                                  window_starts)
from lumiere_jax.diffusion.objectives import check_prediction
from lumiere_jax.diffusion.samplers import SAMPLERS, replacement_hook, sample
from lumiere_jax.diffusion.selection import best_of, repeat_candidates
from lumiere_jax.diffusion.schedules import Schedule, cosine_schedule
from lumiere_jax.data.video_io import write_video
from lumiere_jax.keyframes import KeyframeDrawer, plan_layered, still_scores
from lumiere_jax.layering import layer_clips
from lumiere_jax.models import UNetConfig, check_input_shape
from lumiere_jax.models.critic import VideoTextCritic
from lumiere_jax.models.object_reader import MIN_FRAMES, ObjectReader
from lumiere_jax.sampling import TextEncoderFn, is_positive_int, to_uint8, unet_model_fn
from lumiere_jax.text.motion_planner import MotionPlanner
from lumiere_jax.text.phrases import object_prompts
from lumiere_jax.xla_options import with_kernel_options

_layer = jax.jit(layer_clips)

__all__ = ["SamplingConfig", "LumierePipeline", "StageProgress", "check_prompts", "to_uint8",
           "save_video", "TextRequest", "ConditionRequest", "EditRequest", "UpsampleRequest",
           "GuidanceCritic", "guidance_critic", "LayoutExpert", "layout_expert"]


@dataclasses.dataclass(frozen=True)
class GuidanceCritic:
    """A trained `VideoTextCritic` with its weights and tokenizer (`encode(prompts) ->
    (ids, mask)`), to steer the base stage (`SamplingConfig.critic_scale`); it reads
    clips of `num_frames` frames of `image_size` px, the base stage's."""

    model: VideoTextCritic
    params: Any
    tokenizer: Any
    num_frames: int
    image_size: int


def guidance_critic(run: tuple[Any, dict] | None) -> GuidanceCritic | None:
    """The `GuidanceCritic` of a 'critic' run's (train config, `{'critic'}` weights)."""
    if run is None:
        return None
    config, params = run
    if config.stage != "critic":
        raise ValueError(f"critic: a {config.stage!r} run; expected a 'critic' run")
    return GuidanceCritic(VideoTextCritic(runs.critic_config(config)),
                          nn.meta.unbox(params["critic"]), runs.tokenizer(config),
                          config.model.num_frames, config.model.image_size)


@dataclasses.dataclass(frozen=True)
class LayoutExpert:
    """A trained 'layout' run (`diffusion.layout`): a video U-Net of clips mean-pooled by
    `factor`, with its weights, its own text encoder and the noise schedule it trained on
    (the base stage's, shifted by 2 log factor)."""

    config: UNetConfig
    params: Any
    text_encoder: TextEncoderFn
    factor: int
    schedule: Schedule
    prediction: str


def layout_expert(run: tuple[Any, dict] | None) -> LayoutExpert | None:
    """The `LayoutExpert` of a 'layout' run's (train config, `{'unet', 'text'}` weights)."""
    if run is None:
        return None
    config, params = run
    if config.stage != "layout":
        raise ValueError(f"layout: a {config.stage!r} run; expected a 'layout' run")
    return LayoutExpert(runs.unet_config(config), nn.meta.unbox(params["unet"]),
                        runs.text_encode_fn(config, params["text"]),
                        int(config.diffusion.layout_factor), runs.noise_schedule(config),
                        config.diffusion.prediction)


# How best of K scores the base stage's candidates (`SamplingConfig.candidate_score`).
CANDIDATE_SCORES = ("critic", "motion", "coherence", "reader")
# Clips per base network call on CPU when `SamplingConfig.clips_per_call` is None.
CPU_CLIPS_PER_CALL = 16


def planned_velocity(motion: jax.Array | dict) -> jax.Array:
    """(B, 2) px per frame: the planner's velocity, or for per-object plans (a dict of
    `velocity` (B, N, 2) and `present` (B, N)) the mean over the present objects."""
    if not isinstance(motion, dict):
        return motion
    present = motion["present"].astype(jnp.float32)[..., None]
    return (jnp.sum(motion["velocity"] * present, axis=1)
            / jnp.maximum(jnp.sum(present, axis=1), 1.0))


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Static sampling options of the cascade (hashable; changing one recompiles).

    base_steps / ssr_steps: sampler steps per stage. sampler: 'ddim' | 'ddpm' | 'dpmpp_2m'.
    prediction: what both networks output ('eps' | 'v' | 'x0').
    base_guidance / ssr_guidance: classifier-free guidance scales (1.0 = no null pass).
    base_clip / ssr_clip: x0 clipping per stage (None | 'static' | 'dynamic').
    base_time_shift: where the base stage's steps go (`samplers.sampling_times`): 0 evenly
      in t, < 0 more of them at high noise, where a clip's motion is decided.
    window / stride: SSR MultiDiffusion windows (None: the SSR config's `num_frames`,
      and half of it). chunk_size: windows per SSR model call (None: all at once).
    window_weights: 'uniform' | 'tapered'. cond_noise_level: the noise-augmentation time
      applied to the upsampled low-res video (the SSR's `cond_level`).
    resize_method: `jax.image.resize` method for the low-res video.
    replace_known: conditional modes overwrite the known region (M = 1) after every step
      of both stages (replacement conditioning), so the output keeps it exactly.
    base_schedule / ssr_schedule: None -> shifted cosine, `cosine_schedule(size, base_size)`
      with the base resolution as reference for both.
    xla_options: XLA compiler options for the jitted cascade and the keyframe sampler as
      (name, value) pairs, e.g. `(("xla_backend_optimization_level", 2),)`; they override
      `XLA_FLAGS` for those programs alone.
    critic_scale: text-to-video only: the base stage follows the gradient of the pipeline's
      `GuidanceCritic` score this much (`diffusion.guidance.critic_guidance`; 0 = off).
    critic_min_alpha: caps that guidance's 1 / alpha near pure noise.
    base_candidates: the base stage samples this many clips per prompt (one batch,
      different noise) and keeps the one `candidate_score` likes best on the finished clip
      (`diffusion.selection.best_of`; 1 = off): text-to-video, and with
      `candidate_score='coherence'`, or 'motion' and `motion_noise`, also image-to-video,
      cinemagraphs and inpainting.
      The base stage costs K times as much; the SSR stage runs on the kept clips only.
    candidate_score: how best of K picks: 'critic' (the `GuidanceCritic`'s score against
      the prompt) or 'motion' (`diffusion.clip_motion.motion_agreement`: the candidate whose
      motion, measured from its pixels, best agrees with the planner's velocity; needs
      `motion_noise`) or 'coherence' (`diffusion.clip_motion.motion_coherence`: the
      candidate whose frame-to-frame change one global translation explains best, i.e.
      whose objects keep their shape and colour as they move; needs no plan) or 'reader'
      (text-to-video, clips of at least 9 frames: the candidate the pipeline's
      `ObjectReader` is surest shows what the prompt says: each named object's colour and
      shape, its colour moving the named way, one object of each named colour).
    layout_until: text-to-video only: the base stage's steps at t >= layout_until are the
      pipeline's `LayoutExpert`'s (`diffusion.layout`: it draws where the objects are and
      which way they move, at low resolution); 0 = off. layout_guidance: its
      classifier-free guidance scale.
    motion_noise: text-to-video and the conditional modes (image-to-video, cinemagraph,
      inpainting; not SDEdit, whose input carries its motion): the base stage starts from
      noise whose shared part (this correlation, in [0, 1)) moves the way the pipeline's
      `MotionPlanner` reads from each prompt (`diffusion.motion_noise.translating_noise`);
      0 = plain noise.
    motion_layout: text-to-video with `motion_noise`: 'field' (the whole shared field moves
      with the prompt's mean travel) or 'objects' (`diffusion.motion_noise.object_noise`:
      the shared field stays put but for one disc of `motion_radius` x the frame's size per
      object phrase, which moves with that phrase's travel from a random start; for a base
      trained on it, `diffusion.motion_layout='objects'`). The conditional modes always
      move the whole field.
    image_start: image-to-video and cinemagraphs with `motion_noise`: the base stage
      starts part way, at t = image_start, from the given image carried along the planned
      motion (`diffusion.motion_noise.carried_frames`) noised to that level with the
      moving noise (SDEdit of a translated still; the known pixels are replaced after
      every step as before); 0 = off, from pure noise at t = 1.
    clips_per_call: the base stage's network sees at most this many clips per call
      (`sampling.in_chunks`; guidance and best of K multiply the batch). None: 16 on CPU,
      where smaller calls stay in cache (the base stage at 64 clips a call: 1.22x faster,
      `benchmarks/clips_per_call.py`), and the whole batch on GPU / TPU. The samples are
      the same up to float rounding.
    redraw_strength: text-to-video only: the base stage's kept clip is noised again to
      t = redraw_strength with fresh Gaussian noise and denoised under its prompt
      (`applications.sdedit`, the base steps spread over [0, redraw_strength]): the motion
      the clip already shows survives, its objects are drawn again (on the shipped demo it
      removed stray objects but did not raise the shape accuracy; README "Design notes:
      redrawing the kept clip"). 0 = off; costs `base_steps` more steps on the kept clips.
    layer_objects: text-to-video only: a prompt that names several objects ("a red circle
      moving right and a blue square moving up on a black background") is drawn one object
      phrase at a time by the base stage (`text.phrases.object_prompts`: each phrase with
      the prompt's background; motion noise, best of K and its score per phrase), and the
      clips are layered (`layering.layer_clips`: the first whole, each later one's
      foreground on top); the SSR stage then runs on the layered clip under the whole
      prompt. Prompts of one object are sampled as before. Costs the base stage once per
      object of the call's longest prompt.
    keyframes: text-to-video only: 0 = the base stage draws each clip from the text; K >= 1
      = through a keyframe (`keyframes`): the pipeline's `KeyframeDrawer` (a T2I stage)
      draws K images per prompt (per object phrase with `layer_objects`), the
      `ObjectReader` keeps the one it is surest shows the prompt's objects (K > 1; with
      `layer_objects`, a prompt's phrases' keyframes and stacking order are kept together,
      `keyframes.plan_layered`, so that no object hides another along the plan), and the
      base stage animates it as image-to-video (`image_start`, `motion_noise`: the image
      carried along the planned motion; best of `base_candidates` as image-to-video picks).
      The base stage must read a `<C, M>` condition (`from_pretrained` loads the folder's
      image-to-video stage) or replace the first frame (`replace_known`).
      keyframe_steps, keyframe_guidance: the T2I's DDIM steps and guidance scale.
    """

    base_steps: int = 50
    ssr_steps: int = 25
    sampler: str = "ddim"
    prediction: str = "v"
    base_guidance: float = 8.0
    ssr_guidance: float = 1.0
    base_clip: str | None = "dynamic"
    base_time_shift: float = 0.0
    ssr_clip: str | None = "static"
    window: int | None = None
    stride: int | None = None
    chunk_size: int | None = None
    window_weights: str = "uniform"
    cond_noise_level: float = 0.1
    resize_method: str = "cubic"
    replace_known: bool = True
    base_schedule: Schedule | None = None
    ssr_schedule: Schedule | None = None
    xla_options: tuple[tuple[str, Any], ...] = ()
    critic_scale: float = 0.0
    critic_min_alpha: float = 0.05
    base_candidates: int = 1
    candidate_score: str = "critic"
    layout_until: float = 0.0
    layout_guidance: float = 3.0
    motion_noise: float = 0.0
    motion_layout: str = "field"
    motion_radius: float = 0.16
    image_start: float = 0.0
    clips_per_call: int | None = None
    redraw_strength: float = 0.0
    layer_objects: bool = False
    keyframes: int = 0
    keyframe_steps: int = 32
    keyframe_guidance: float = 3.0

    def critic_settings(self) -> list[str]:
        """The settings that use a `GuidanceCritic` (critic guidance, best of K), each as
        'name=value'; empty when sampling needs no critic."""
        return [f"{name}={value}" for name, value, on in (
            ("critic_scale", self.critic_scale, self.critic_scale > 0),
            ("base_candidates", self.base_candidates,
             self.base_candidates > 1 and self.candidate_score == "critic")) if on]

    def __post_init__(self):
        for name in ("base_steps", "ssr_steps"):
            v = getattr(self, name)
            if not is_positive_int(v):
                raise ValueError(f"SamplingConfig.{name} must be an int >= 1, got {v!r}.")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"SamplingConfig.sampler={self.sampler!r}; valid: {SAMPLERS}.")
        check_prediction(self.prediction)
        if self.clips_per_call is not None and not is_positive_int(self.clips_per_call):
            raise ValueError(f"SamplingConfig.clips_per_call={self.clips_per_call!r} must be an "
                             "int >= 1 or None (16 on CPU, the whole batch elsewhere).")
        for name in ("base_clip", "ssr_clip"):
            if getattr(self, name) not in CLIP_MODES:
                raise ValueError(f"SamplingConfig.{name}={getattr(self, name)!r}; valid: "
                                 f"{CLIP_MODES}.")
        if not (isinstance(self.xla_options, tuple) and all(
                isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str)
                for o in self.xla_options)):
            raise ValueError(f"SamplingConfig.xla_options={self.xla_options!r}; give a tuple "
                             "of (name, value) pairs, e.g. (('xla_backend_optimization_level', "
                             "2),).")
        if self.window_weights not in WEIGHT_KINDS:
            raise ValueError(f"SamplingConfig.window_weights={self.window_weights!r}; valid: "
                             f"{WEIGHT_KINDS}.")
        if not (isinstance(self.base_time_shift, (int, float)) and math.isfinite(
                self.base_time_shift)):
            raise ValueError(f"SamplingConfig.base_time_shift={self.base_time_shift!r} must be "
                             "a finite number (0: evenly spaced steps; < 0: more at high noise).")
        if not (isinstance(self.critic_scale, (int, float)) and math.isfinite(self.critic_scale)
                and self.critic_scale >= 0.0):
            raise ValueError(f"SamplingConfig.critic_scale={self.critic_scale!r} must be a "
                             "finite number >= 0 (0: no critic guidance).")
        if not is_positive_int(self.base_candidates):
            raise ValueError(f"SamplingConfig.base_candidates={self.base_candidates!r} must be "
                             "an int >= 1 (1: one clip per prompt, no reranking).")
        if self.candidate_score not in CANDIDATE_SCORES:
            raise ValueError(f"SamplingConfig.candidate_score={self.candidate_score!r}; valid: "
                             f"{CANDIDATE_SCORES}.")
        if (self.candidate_score == "motion" and self.base_candidates > 1
                and not self.motion_noise):
            raise ValueError("SamplingConfig.candidate_score='motion' compares each candidate "
                             "with the planner's motion: it needs motion_noise > 0 (got "
                             f"{self.motion_noise}), or base_candidates=1.")
        if not (isinstance(self.layout_until, (int, float)) and 0.0 <= self.layout_until <= 1.0):
            raise ValueError(f"SamplingConfig.layout_until={self.layout_until!r} must be in "
                             "[0, 1] (0: no layout expert).")
        if not (isinstance(self.layout_guidance, (int, float))
                and math.isfinite(self.layout_guidance)):
            raise ValueError(f"SamplingConfig.layout_guidance={self.layout_guidance!r} must be "
                             "a finite number (1: no guidance).")
        if not (isinstance(self.image_start, (int, float)) and 0.0 <= self.image_start < 1.0):
            raise ValueError(f"SamplingConfig.image_start={self.image_start!r} must be in "
                             "[0, 1) (0: image-to-video starts from pure noise).")
        if self.image_start and not self.motion_noise:
            raise ValueError(f"SamplingConfig.image_start={self.image_start} carries the image "
                             "along the planner's motion: it needs motion_noise > 0.")
        if not (isinstance(self.redraw_strength, (int, float))
                and 0.0 <= self.redraw_strength <= 1.0):
            raise ValueError(f"SamplingConfig.redraw_strength={self.redraw_strength!r} must be "
                             "in [0, 1] (0: the base stage's clip is kept as sampled).")
        if not (isinstance(self.keyframes, int) and self.keyframes >= 0):
            raise ValueError(f"SamplingConfig.keyframes={self.keyframes!r} must be an int >= 0 "
                             "(0: text-to-video without a keyframe).")
        if not is_positive_int(self.keyframe_steps):
            raise ValueError(f"SamplingConfig.keyframe_steps={self.keyframe_steps!r} must be "
                             "an int >= 1.")
        if not (isinstance(self.keyframe_guidance, (int, float))
                and math.isfinite(self.keyframe_guidance)):
            raise ValueError(f"SamplingConfig.keyframe_guidance={self.keyframe_guidance!r} "
                             "must be a finite number (1: no guidance).")
        if not isinstance(self.layer_objects, bool):
            raise ValueError(f"SamplingConfig.layer_objects={self.layer_objects!r} must be True "
                             "or False.")
        if not (isinstance(self.motion_noise, (int, float)) and 0.0 <= self.motion_noise < 1.0):
            raise ValueError(f"SamplingConfig.motion_noise={self.motion_noise!r} must be in "
                             "[0, 1) (0: plain Gaussian starting noise).")
        if self.motion_layout not in MOTION_LAYOUTS:
            raise ValueError(f"SamplingConfig.motion_layout={self.motion_layout!r}; valid: "
                             f"{MOTION_LAYOUTS}.")
        if not (isinstance(self.motion_radius, (int, float)) and 0.0 < self.motion_radius < 0.5):
            raise ValueError(f"SamplingConfig.motion_radius={self.motion_radius!r} must be in "
                             "(0, 0.5) (a fraction of the frame's size).")
        if not 0.0 < self.critic_min_alpha <= 1.0:
            raise ValueError(f"SamplingConfig.critic_min_alpha={self.critic_min_alpha} must be "
                             "in (0, 1].")
        if not 0.0 <= self.cond_noise_level <= 1.0:
            raise ValueError(f"SamplingConfig.cond_noise_level={self.cond_noise_level} must be "
                             "in [0, 1].")
        if self.resize_method not in ("nearest", "linear", "bilinear", "cubic", "bicubic",
                                      "lanczos3", "lanczos5"):
            raise ValueError(f"SamplingConfig.resize_method={self.resize_method!r} is not a "
                             "jax.image.resize method (e.g. 'cubic', 'linear').")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TextRequest:
    """Text-to-video: nothing but the prompts."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ConditionRequest:
    """i2v / inpaint / cinemagraph: the `<C, M>` condition at the two resolutions,
    cond_low (B, T, h, w, 4) and cond_high (B, T, H, W, 4)."""

    cond_low: jax.Array
    cond_high: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EditRequest:
    """SDEdit: the video at the base size, video_low (B, T, h, w, 3) in [-1, 1], and the
    noise level `strength` () in (0, 1]."""

    video_low: jax.Array
    strength: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ImageRequest(ConditionRequest):
    """Image-to-video and cinemagraphs: a `ConditionRequest` plus the given image at the
    base size, image_low (B, h, w, 3) in [-1, 1] (the base stage may start from it
    carried along the plan, `SamplingConfig.image_start`)."""

    image_low: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class UpsampleRequest:
    """The SSR stage alone: the base stage's video is given, video_low (B, T, h, w, 3) in
    [-1, 1] at the base size."""

    video_low: jax.Array


Request = TextRequest | ConditionRequest | EditRequest | UpsampleRequest


def save_video(path: str | os.PathLike, video: np.ndarray, fps: float = 16.0) -> None:
    """Write uint8 (T, H, W, 3) frames; .mp4 (H.264 via imageio-ffmpeg) or .gif by suffix."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be uint8 (T, H, W, 3) (one clip of the batch), got "
                         f"{video.dtype} {video.shape}.")
    write_video(path, video, fps=fps)


class StageProgress:
    """Host-side progress bars for the jitted cascade: `update(stage, total, step)` is the
    sampler's per-step callback (`diffusion.progress.report_step`); a bar opens at step 0
    and closes at the last step. `enabled=False` makes it a no-op (the callbacks are then
    not compiled in)."""

    def __init__(self, enabled: bool = True):
        self.enabled, self._bars = enabled, {}

    def update(self, stage: str, total: int, step: int) -> None:
        from tqdm.auto import tqdm

        if step == 0 or stage not in self._bars:
            self._bars[stage] = tqdm(total=total, desc=f"{stage} stage", unit="step",
                                     leave=True, dynamic_ncols=True)
        bar = self._bars[stage]
        bar.update(step + 1 - bar.n)
        if step + 1 >= total:
            bar.close()

    def callback(self, stage: str, total: int):
        return None if not self.enabled else (lambda step: self.update(stage, total, step))


def check_prompts(prompts: Sequence[str] | str) -> list[str]:
    """A prompt or a non-empty list of them -> list[str] (ValueError otherwise)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings.")
    return prompts


class LumierePipeline:
    """Text -> low-res video (base STUNet, all frames at once) -> high-res video (SSR).

    Args:
      base_config, base_params: the STUNet (a temporal `UNetConfig`, 3 -> 3 channels);
        `base_config.image_size` is the low resolution, `num_frames` the default length.
      ssr_config, ssr_params: the SSR network (`cond_channels=3` for the upsampled low-res
        video, optional `cond_level_embedding`); `ssr_config.image_size` is the output
        resolution, `ssr_config.num_frames` the default MultiDiffusion window.
      text_encoder: `text_encoder(prompts: list[str]) -> (states (B, L, D), mask (B, L))`,
        D = the configs' `text_input_dim` (e.g. a tokenizer + `T5Encoder`). It runs outside the
        jitted sampler; the empty prompt "" is the null condition for guidance.
      ssr_text_encoder: the SSR stage's encoder when it differs from the base stage's
        (e.g. two runs that each trained their own small encoder); None: `text_encoder`.
      sampling: `SamplingConfig`.
      progress: show a progress bar per stage while sampling (driven from inside the
        jitted scans; `diffusion.progress`, cacheable on a one-device CPU host).
    Params may carry flax partitioning metadata (they are unboxed) and may be sharded.
    Raises ValueError at construction for configs or settings that cannot work.
    """

    def __init__(self, base_config: UNetConfig, base_params: Any, ssr_config: UNetConfig,
                 ssr_params: Any, text_encoder: TextEncoderFn,
                 sampling: SamplingConfig = SamplingConfig(),
                 ssr_text_encoder: TextEncoderFn | None = None, progress: bool = False,
                 critic: GuidanceCritic | None = None, layout: LayoutExpert | None = None,
                 motion_planner: MotionPlanner | None = None,
                 object_reader: ObjectReader | None = None,
                 keyframe_drawer: KeyframeDrawer | None = None):
        if sampling.critic_settings() and critic is None:
            raise ValueError(f"SamplingConfig {', '.join(sampling.critic_settings())} needs a "
                             "GuidanceCritic (critic=; from_pretrained loads a folder's "
                             "'critic' stage)")
        if sampling.layout_until and layout is None:
            raise ValueError(f"SamplingConfig.layout_until={sampling.layout_until} needs a "
                             "LayoutExpert (layout=; from_pretrained loads a folder's "
                             "'layout' stage)")
        if (sampling.base_candidates > 1 and sampling.candidate_score == "reader"
                and object_reader is None):
            raise ValueError("SamplingConfig.candidate_score='reader' needs an ObjectReader "
                             "(object_reader=; from_pretrained loads a folder's "
                             "object_reader.safetensors)")
        if sampling.keyframes and keyframe_drawer is None:
            raise ValueError(f"SamplingConfig.keyframes={sampling.keyframes} needs a "
                             "KeyframeDrawer (keyframe_drawer=; from_pretrained loads a "
                             "folder's 't2i' stage)")
        if sampling.keyframes > 1 and object_reader is None:
            raise ValueError(f"SamplingConfig.keyframes={sampling.keyframes} picks a keyframe "
                             "with an ObjectReader (object_reader=; from_pretrained loads a "
                             "folder's object_reader.safetensors), or set keyframes=1")
        if sampling.motion_noise and motion_planner is None:
            raise ValueError(f"SamplingConfig.motion_noise={sampling.motion_noise} needs a "
                             "MotionPlanner (motion_planner=; from_pretrained loads a folder's "
                             "motion_planner.safetensors)")
        if layout is not None and layout.config.image_size * layout.factor != (
                base_config.image_size):
            raise ValueError(f"the layout expert draws {layout.config.image_size} px clips "
                             f"pooled {layout.factor}x, i.e. {layout.config.image_size * layout.factor}"
                             f" px, but the base stage makes {base_config.image_size} px")
        if critic is not None and (critic.num_frames, critic.image_size) != (
                base_config.num_frames, base_config.image_size):
            raise ValueError(f"the critic reads {critic.num_frames} frames of "
                             f"{critic.image_size} px but the base stage makes "
                             f"{base_config.num_frames} of {base_config.image_size} px")
        if not base_config.temporal:
            raise ValueError("base_config must be a temporal (STUNet) UNetConfig; got "
                             "temporal=False.")
        for name, cfg in (("base_config", base_config), ("ssr_config", ssr_config)):
            if cfg.in_channels != 3 or cfg.out_channels != 3:
                raise ValueError(f"{name} must map 3 -> 3 channels, got in_channels="
                                 f"{cfg.in_channels}, out_channels={cfg.out_channels}.")
        if base_config.cond_channels not in (0, 4) or base_config.cond_level_embedding:
            raise ValueError("base_config must be a plain STUNet (cond_channels=0) or a "
                             "conditional one (cond_channels=4, the <C, M> input), without "
                             f"cond_level_embedding; got cond_channels={base_config.cond_channels},"
                             f" cond_level_embedding={base_config.cond_level_embedding}.")
        if ssr_config.cond_channels != 3:
            raise ValueError("ssr_config.cond_channels must be 3 (the upsampled low-res RGB "
                             f"video), got {ssr_config.cond_channels}.")
        if ssr_config.image_size < base_config.image_size:
            raise ValueError(f"ssr_config.image_size={ssr_config.image_size} must be >= "
                             f"base_config.image_size={base_config.image_size}.")
        if ssr_text_encoder is None and base_config.text_input_dim != ssr_config.text_input_dim:
            raise ValueError("the text widths (text_dim + temporal_text_dim) of base_config "
                             f"({base_config.text_input_dim}) and ssr_config "
                             f"({ssr_config.text_input_dim}) must match (one text encoder "
                             "feeds both; pass ssr_text_encoder otherwise).")
        if not isinstance(sampling, SamplingConfig):
            raise ValueError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}.")
        self.base_config, self.ssr_config, self.sampling = base_config, ssr_config, sampling
        self.base_params = nn.meta.unbox(base_params)
        self.ssr_params = nn.meta.unbox(ssr_params)
        self.text_encoders = dict(base=text_encoder, ssr=ssr_text_encoder or text_encoder)
        if layout is not None:
            self.text_encoders["layout"] = layout.text_encoder
        self.window = sampling.window if sampling.window is not None else ssr_config.num_frames
        self.stride = sampling.stride if sampling.stride is not None else max(self.window // 2, 1)
        window_starts(self.window, self.window, self.stride)  # window >= 1, 1 <= stride <= window
        low, high = base_config.image_size, ssr_config.image_size
        self.base_schedule = sampling.base_schedule or cosine_schedule(low, low)
        self.ssr_schedule = sampling.ssr_schedule or cosine_schedule(high, low)
        # Fails early on bad image sizes / window frame counts for either network.
        check_input_shape(base_config, (1, base_config.num_frames, low, low, 3))
        check_input_shape(ssr_config, (1, self.window, high, high, 3))
        self._jitted = jax.jit(self._generate, static_argnames=("num_frames", "base_only"),
                               compiler_options=with_kernel_options(sampling.xla_options))
        self.critic = critic
        self.layout = layout
        self.motion_planner = motion_planner
        self.object_reader = object_reader
        self.keyframe_drawer = keyframe_drawer
        self.stages: dict[str, tuple[Any, dict]] | None = None  # set by from_runs
        self.progress = StageProgress(progress)

    # ------------------------------------------------------------------ trained weights

    @classmethod
    def from_runs(cls, base: tuple[Any, dict], ssr: tuple[Any, dict],
                  sampling: SamplingConfig | None = None, progress: bool = False,
                  critic: tuple[Any, dict] | None = None,
                  layout: tuple[Any, dict] | None = None,
                  motion_planner: MotionPlanner | None = None,
                  object_reader: ObjectReader | None = None,
                  keyframes: tuple[Any, dict] | None = None) -> "LumierePipeline":
        """From the (train config, `{'unet', 'text'}` weights) of a base (stunet /
        conditional) run and an SSR run; each stage reads prompts with its own encoder and
        samples on the noise schedule its run trained with (`runs.noise_schedule`), unless
        `sampling` names schedules. `critic`: a 'critic' run's (config, `{'critic'}`
        weights), for `SamplingConfig.critic_scale`; `layout`: a 'layout' run's (config,
        `{'unet', 'text'}` weights), for `SamplingConfig.layout_until`; `keyframes`: a 't2i'
        run's, for `SamplingConfig.keyframes`."""
        (base_cfg, base_params), (ssr_cfg, ssr_params) = base, ssr
        for name, cfg, stages in (("base", base_cfg, ("stunet", "conditional")),
                                  ("ssr", ssr_cfg, ("ssr",))):
            if cfg.stage not in stages:
                raise ValueError(f"the {name} stage is a {cfg.stage!r} run; expected one of "
                                 f"{stages}")
        if base_cfg.diffusion.prediction != ssr_cfg.diffusion.prediction:
            raise ValueError(f"the base run predicts {base_cfg.diffusion.prediction!r} but the "
                             f"SSR run {ssr_cfg.diffusion.prediction!r}; the sampler needs one")
        sampling = sampling or SamplingConfig(prediction=base_cfg.diffusion.prediction)
        # Each stage samples on the noise schedule its run trained with (unless given).
        sampling = dataclasses.replace(
            sampling, base_schedule=sampling.base_schedule or runs.noise_schedule(base_cfg),
            ssr_schedule=sampling.ssr_schedule or runs.noise_schedule(ssr_cfg))
        pipe = cls(runs.unet_config(base_cfg), base_params["unet"], runs.unet_config(ssr_cfg),
                   ssr_params["unet"], runs.text_encode_fn(base_cfg, base_params["text"]),
                   sampling, ssr_text_encoder=runs.text_encode_fn(ssr_cfg, ssr_params["text"]),
                   progress=progress, critic=guidance_critic(critic),
                   layout=layout_expert(layout), motion_planner=motion_planner,
                   object_reader=object_reader,
                   keyframe_drawer=keyframes and KeyframeDrawer.from_run(keyframes))
        pipe.stages = {"base": base, "ssr": ssr, **({"layout": layout} if layout else {})}
        return pipe

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, sampling: SamplingConfig | None = None,
                        progress: bool = False, mode: str = "t2v", base_stage: str | None = None,
                        style: str | None = None, style_alpha: float = 0.0,
                        base: tuple[Any, dict] | None = None,
                        critic: tuple[Any, dict] | None = None,
                        layout: tuple[Any, dict] | None = None,
                        **sampling_overrides) -> "LumierePipeline":
        """The cascade of a pretrained folder for `mode` (`pretrained.SAMPLE_MODES`: 't2v',
        'edit', or a mode that reads a `<C, M>` condition: 'i2v', 'cinemagraph',
        'inpaint'): its base stage (`base_stage`, else the one the manifest chooses for the
        mode, `pretrained.base_stage_for`) and 'ssr'. `style`: a shipped style stage (a
        T2I run, e.g. 'style_outline') blended into the base's spatial weights,
        `alpha W_style + (1 - alpha) W_base` (`interpolate_spatial_weights`; alpha in
        [0, 1]). `base`: a (train config, `{'unet', 'text'}` weights) pair used instead of
        the folder's base stage (a train.py run to judge beside the shipped SSR,
        `runs.load_run`). The folder's 'critic' stage, if it ships one, steers the base
        stage by `critic_scale`; `critic`: a 'critic' run's (config, weights) used instead.
        Likewise its 'layout' stage draws the first steps (`layout_until`); `layout`: a
        'layout' run's (config, weights) used instead.
        Sampling defaults come from the manifest, for `mode` (its 'mode_sampling' can set
        other defaults per mode); `sampling_overrides` (e.g. `base_steps=16`,
        `critic_scale=0`) replace them. Text-to-video with `keyframes` draws its keyframes
        with the folder's 't2i' stage (blended with `style` as the base stage is) and
        animates them with its image-to-video stage."""
        manifest = pretrained.read_manifest(folder)
        if sampling is None:
            fields = {f.name for f in dataclasses.fields(SamplingConfig)}
            defaults = pretrained.sampling_defaults(folder, mode)  # checks 'mode_sampling'
            unknown = sorted(set(manifest.get("mode_sampling", {}).get(mode, {})) - fields)
            if unknown:
                raise ValueError(f"{os.path.join(os.fspath(folder), pretrained.MANIFEST)!r}: "
                                 f"'mode_sampling'[{mode!r}] sets {unknown}, which are not "
                                 "SamplingConfig fields")
            saved = {k: v for k, v in defaults.items() if k in fields}
            sampling = SamplingConfig(**{**saved, **sampling_overrides})
        elif sampling_overrides:
            sampling = dataclasses.replace(sampling, **sampling_overrides)
        keyframes = None
        if mode == "t2v" and sampling.keyframes:  # the T2I draws, image-to-video animates
            keyframes = pretrained.load_stage(folder, "t2i")
        if base is None:
            base_mode = "i2v" if keyframes else mode
            base = pretrained.load_stage(folder,
                                         pretrained.base_stage_for(folder, base_mode, base_stage))
        base_cfg, base = base
        if style is not None:
            style_cfg, style_params = pretrained.load_stage(folder, style)
            if style_cfg.stage != "t2i":
                raise ValueError(f"style={style!r} is a {style_cfg.stage!r} stage; a style is "
                                 "a t2i stage fine-tuned on the style")
            base = dict(base, unet=interpolate_spatial_weights(base["unet"],
                                                               style_params["unet"],
                                                               style_alpha))
            if keyframes:  # the keyframes are drawn in the style too
                t2i_cfg, t2i = keyframes
                keyframes = (t2i_cfg, dict(t2i, unet=interpolate_spatial_weights(
                    t2i["unet"], style_params["unet"], style_alpha)))
        elif style_alpha:
            raise ValueError(f"style_alpha={style_alpha} needs style= (a style stage name)")
        if critic is None:
            ships_one = any(e.get("stage") == "critic" for e in manifest["stages"].values())
            critic = (pretrained.load_stage(folder, pretrained.stage_of_kind(folder, "critic"))
                      if ships_one else None)
        if layout is None and any(e.get("stage") == "layout"
                                  for e in manifest["stages"].values()):
            layout = pretrained.load_stage(folder, pretrained.stage_of_kind(folder, "layout"))
        planner = (pretrained.load_motion_planner(folder) if "motion_planner" in manifest
                   else None)
        reader = (pretrained.load_object_reader(folder) if "object_reader" in manifest
                  else None)
        pipe = cls.from_runs((base_cfg, base), pretrained.load_stage(folder, "ssr"), sampling,
                             progress, critic=critic, layout=layout, motion_planner=planner,
                             object_reader=reader, keyframes=keyframes)
        pipe.manifest = manifest
        return pipe

    def save_pretrained(self, folder: str | os.PathLike, training: dict | None = None,
                        **extra) -> str:
        """Write this cascade as a pretrained folder; `training`: per stage name, what
        its training reached (steps, wall time, loss); `extra`: more manifest keys.
        Returns the manifest path. Needs a pipeline made by `from_runs` / `from_pretrained`."""
        if self.stages is None:
            raise ValueError("save_pretrained needs the stages' train configs: build the "
                             "pipeline with LumierePipeline.from_runs or from_pretrained")
        entries = {name: pretrained.write_stage(folder, name, cfg, params,
                                                (training or {}).get(name))
                   for name, (cfg, params) in self.stages.items()}
        sampling = {f.name: getattr(self.sampling, f.name)
                    for f in dataclasses.fields(SamplingConfig)
                    if not f.name.endswith("_schedule") and f.name != "xla_options"}
        if self.motion_planner is not None and "motion_planner" not in extra:
            path = os.path.join(folder, "motion_planner.safetensors")
            self.motion_planner.save(path)
            extra["motion_planner"] = dict(weights="motion_planner.safetensors",
                                           sha256=pretrained.sha256(path))
        return pretrained.write_manifest(folder, entries, sampling=sampling, **extra)

    # ------------------------------------------------------------------ validation

    def check_num_frames(self, num_frames: int) -> None:
        """ValueError unless both networks (and the SSR windows) accept `num_frames`."""
        if not is_positive_int(num_frames):
            raise ValueError(f"num_frames must be an int >= 1, got {num_frames!r}.")
        low = self.base_config.image_size
        check_input_shape(self.base_config, (1, num_frames, low, low, 3))
        # window <= frames, 1 <= stride <= window
        window_starts(num_frames, self.window, self.stride)

    # ------------------------------------------------------------------ jitted cascade

    def _generate(self, base_params: Any, ssr_params: Any, texts: dict[str, dict],
                  key: jax.Array, request: Request, critic: dict | None = None,
                  layout_params: Any = None, velocity: jax.Array | None = None,
                  reader: dict | None = None, *,
                  num_frames: int, base_only: bool = False
                  ) -> tuple[jax.Array, jax.Array | None]:
        """texts: per stage ('base', 'ssr', 'layout') the `unet_model_fn` text arguments
        (text, text_mask, null_text, null_mask). request: what to sample (its type is part
        of the compiled program's signature). critic: None, or the critic's `params` and the
        prompts' `ids`, `mask` (text-to-video with `critic_scale`). layout_params: the
        `LayoutExpert`'s U-Net weights (text-to-video with `layout_until`), else None.
        velocity: (B, 2) pixels per frame of the base stage's translating starting noise
        (text-to-video and the conditional modes with `motion_noise`), or for text-to-video
        with `motion_layout='objects'` a dict of each object phrase's `velocity` (B, N, 2)
        and `present` (B, N), else None. reader: the `ObjectReader`'s `params` and the
        prompts' terms `index`, `want` (B, M) (`ObjectReader.named_terms`; text-to-video
        with `candidate_score='reader'`), else None.
        `base_only`: stop after stage 1 (the SSR output is None; the base video is the same
        as with both stages)."""
        s, base_cfg, ssr_cfg = self.sampling, self.base_config, self.ssr_config
        batch, low, high = texts["base"]["text"].shape[0], base_cfg.image_size, ssr_cfg.image_size
        k_base, k_base_sample, k_aug, k_ssr, k_ssr_sample = jax.random.split(key, 5)
        common = dict(sampler=s.sampler, prediction=s.prediction)
        clips_per_call = s.clips_per_call or (CPU_CLIPS_PER_CALL if jax.default_backend() == "cpu"
                                              else None)

        # Stage 1: the STUNet denoises all frames at once.
        def base_denoiser(text_args: dict) -> Callable:  # the guided STUNet for these prompts
            return unet_model_fn(base_cfg, base_params, guidance_scale=s.base_guidance,
                                 clips_per_call=clips_per_call, **text_args)

        base_fn = base_denoiser(texts["base"])

        def with_candidates(k: int) -> tuple[Callable, Callable]:
            """(rep: (B, ...) -> (B*K, ...), the base denoiser for those rows): K copies of
            every prompt, rows b*K ... b*K + K - 1 prompt b's (best of K)."""
            rep = lambda a: a if k == 1 else repeat_candidates(a, k)
            return rep, base_denoiser(dict(texts["base"], text=rep(texts["base"]["text"]),
                                           text_mask=rep(texts["base"]["text_mask"])))

        def pixel_scores(clips: jax.Array, rep: Callable) -> jax.Array:
            """(B*K,) from the candidates' pixels alone (the critic's score is t2v's own)."""
            if s.candidate_score == "coherence":  # change one translation explains
                return motion_coherence(clips)
            if s.candidate_score == "reader":  # log p(the clip shows what the prompt says)
                return self.object_reader.scores(reader["params"], clips,
                                                 rep(reader["index"]), rep(reader["want"]))
            return motion_agreement(clips, rep(planned_velocity(velocity)))  # vs the plan

        base_kw = dict(schedule=self.base_schedule, num_steps=s.base_steps, clip=s.base_clip,
                       time_shift=s.base_time_shift,
                       progress=self.progress.callback("base", s.base_steps), **common)
        shape = (batch, num_frames, low, low, 3)
        # A conditional STUNet without a condition sees M = 0 everywhere.
        empty = jnp.zeros(shape[:-1] + (4,)) if base_cfg.cond_channels else None
        if isinstance(request, ConditionRequest):
            # best of K from the pixels alone (the critic reads no <C, M>)
            k = s.base_candidates if (s.candidate_score == "coherence" or (
                velocity is not None and s.candidate_score == "motion")) else 1
            rep, cond_fn = with_candidates(k)
            start = (None if velocity is None else translating_noise(
                k_base, (batch * k,) + shape[1:], rep(velocity), s.motion_noise))
            t_start = 1.0
            if isinstance(request, ImageRequest) and s.image_start:  # implies motion_noise
                t_start = s.image_start  # SDEdit of the image carried along the plan
                image = rep(request.image_low)
                alpha, sigma = self.base_schedule.alpha_sigma(jnp.float32(t_start))
                start = alpha * carried_frames(image, rep(velocity), num_frames) + sigma * start
            low_res = sample_conditional(cond_fn, rep(request.cond_low), k_base_sample,
                                         replace_known=s.replace_known, x_start=start,
                                         t_start=t_start, **base_kw)
            if k > 1:
                low_res = jnp.clip(low_res, -1.0, 1.0)
                low_res = best_of(low_res, pixel_scores(low_res, rep), k)
        elif isinstance(request, UpsampleRequest):
            low_res = request.video_low
        elif isinstance(request, EditRequest):
            low_res = sdedit(lambda x, t: base_fn(x, t, empty), request.video_low,
                             k_base_sample, strength=request.strength, **base_kw)
        else:  # K candidates per prompt: rows b*K ... b*K + K - 1 are prompt b's
            k = s.base_candidates
            rep, text_fn = with_candidates(k)
            cond = None if empty is None else rep(empty)
            denoise = lambda x, t: text_fn(x, t, cond)
            if layout_params is not None:  # the first steps draw the layout
                lay, lt = self.layout, texts["layout"]
                expert = unet_model_fn(lay.config, layout_params, rep(lt["text"]),
                                       rep(lt["text_mask"]), guidance_scale=s.layout_guidance,
                                       null_text=lt["null_text"], null_mask=lt["null_mask"])
                denoise = switch_at(s.layout_until, layout_denoiser(
                    lambda y, t: expert(y, t, None), lay.factor, self.base_schedule,
                    lay.schedule, lay.prediction, s.prediction), denoise)
            if critic is not None:
                ids, mask = rep(critic["ids"]), rep(critic["mask"])
                score = lambda x, t: self.critic.model.apply(
                    {"params": critic["params"]}, x, t, ids, mask)
            if s.critic_scale:  # the base sampler follows the critic's score uphill
                denoise = critic_guidance(denoise, score, self.base_schedule, s.critic_scale,
                                          s.prediction, s.critic_min_alpha)
            start_shape = (batch * k,) + shape[1:]
            if velocity is None:
                start = jax.random.normal(k_base, start_shape, jnp.float32)
            elif isinstance(velocity, dict):  # one moving disc per object phrase
                k_tracks, k_noise = jax.random.split(k_base)
                tracks = plan_tracks(k_tracks, rep(velocity["velocity"]),
                                     rep(velocity["present"]), s.motion_radius * low,
                                     num_frames, low, low)
                start = object_noise(k_noise, start_shape, tracks, s.motion_noise)
            else:
                start = translating_noise(k_base, start_shape, rep(velocity), s.motion_noise)
            low_res = sample(denoise, start, k_base_sample, **base_kw)
            if k > 1:  # keep the best candidate, read as a clean clip
                low_res = jnp.clip(low_res, -1.0, 1.0)
                if s.candidate_score == "critic":  # the critic's score against the prompt
                    scores = score(low_res, jnp.zeros((batch * k,)))
                else:
                    scores = pixel_scores(low_res, rep)
                low_res = best_of(low_res, scores, k)
            if s.redraw_strength:  # SDEdit of the kept clip: same motion, objects redrawn
                redraw_kw = dict(base_kw, progress=self.progress.callback("redraw",
                                                                          s.base_steps))
                low_res = sdedit(lambda x, t: base_fn(x, t, empty), jnp.clip(low_res, -1, 1),
                                 jax.random.fold_in(k_base_sample, 1),
                                 strength=s.redraw_strength, **redraw_kw)
        low_res = jnp.clip(low_res, -1.0, 1.0)
        if base_only:
            return to_uint8(low_res), None

        # Stage 2: SSR on overlapping temporal windows, merged by MultiDiffusion each step.
        up = jax.image.resize(low_res, (batch, num_frames, high, high, 3), s.resize_method)
        cond, cond_level = noise_augment(up, k_aug, self.ssr_schedule, t=s.cond_noise_level)

        def window_fn(x_w, t, cond_w):
            return unet_model_fn(ssr_cfg, ssr_params, guidance_scale=s.ssr_guidance,
                                 cond_level=cond_level, **texts["ssr"])(x_w, t, cond_w)

        ssr_fn = multidiffusion_denoiser(window_fn, num_frames, self.window, self.stride,
                                         s.chunk_size, s.window_weights)
        hook = None
        if isinstance(request, ConditionRequest) and s.replace_known:
            hook = replacement_hook(*split_condition(request.cond_high))
        x_ssr = jax.random.normal(k_ssr, (batch, num_frames, high, high, 3), jnp.float32)
        high_res = sample(lambda x, t: ssr_fn(x, t, cond), x_ssr, k_ssr_sample,
                          schedule=self.ssr_schedule, num_steps=s.ssr_steps, clip=s.ssr_clip,
                          step_hook=hook, progress=self.progress.callback("ssr", s.ssr_steps),
                          **common)
        return to_uint8(low_res), to_uint8(high_res)

    # ------------------------------------------------------------------ public API

    def encode_text(self, prompts: Sequence[str], stage: str = "base"
                    ) -> tuple[jax.Array, jax.Array]:
        """prompts -> (states (B, L, D) float32, mask (B, L) bool) from `stage`'s encoder
        ('base' | 'ssr' | 'layout'), checked against that stage's `text_input_dim`."""
        states, mask = self.text_encoders[stage](list(prompts))
        states, mask = jnp.asarray(states, jnp.float32), jnp.asarray(mask).astype(bool)
        if states.ndim != 3 or mask.shape != states.shape[:2]:
            raise ValueError(f"text_encoder must return states (B, L, D) and mask (B, L); got "
                             f"{states.shape} and {mask.shape}.")
        text_dim = dict(base=self.base_config, ssr=self.ssr_config,
                        layout=self.layout and self.layout.config)[stage].text_input_dim
        if states.shape[-1] != text_dim:
            raise ValueError(f"the {stage} stage's text encoder gives D={states.shape[-1]} but "
                             f"its config's text_dim + temporal_text_dim = {text_dim}.")
        return states, mask

    def _run(self, prompts: Sequence[str] | str, key: jax.Array, num_frames: int,
             return_low_res: bool, request: Request,
             base_only: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        if isinstance(request, ConditionRequest) and not (self.base_config.cond_channels
                                          or self.sampling.replace_known):
            raise ValueError("a plain STUNet (cond_channels=0) sees the given content only "
                             "through replacement: set SamplingConfig.replace_known=True or "
                             "use a conditional STUNet (cond_channels=4).")
        texts = {}
        layout = isinstance(request, TextRequest) and bool(self.sampling.layout_until)
        for stage in ("base",) + (() if base_only else ("ssr",)) + (("layout",) if layout else ()):
            if stage == "ssr" and self.text_encoders["ssr"] is self.text_encoders["base"]:
                texts["ssr"] = texts["base"]
                continue
            text, mask = self.encode_text(prompts, stage)
            null_text, null_mask = self.encode_text([""], stage)
            if null_text.shape[1] != text.shape[1]:
                raise ValueError("text encoders must pad every prompt to one length L (the null "
                                 f"prompt gave L={null_text.shape[1]}, the prompts "
                                 f"L={text.shape[1]}).")
            texts[stage] = dict(text=text, text_mask=mask, null_text=null_text,
                                null_mask=null_mask)
        critic = None
        if isinstance(request, TextRequest) and self.sampling.critic_settings():
            if num_frames != self.critic.num_frames:
                raise ValueError(f"the critic reads clips of {self.critic.num_frames} frames; "
                                 f"sample that many (not {num_frames}) or set critic_scale=0 "
                                 "and base_candidates=1")
            ids, mask = self.critic.tokenizer.encode(list(prompts))
            critic = dict(params=self.critic.params, ids=jnp.asarray(ids),
                          mask=jnp.asarray(mask).astype(bool))
        velocity = None
        if isinstance(request, (TextRequest, ConditionRequest)) and self.sampling.motion_noise:
            size = self.base_config.image_size
            if isinstance(request, TextRequest) and self.sampling.motion_layout == "objects":
                v, present = self.motion_planner.object_velocities(prompts, size, num_frames)
                velocity = dict(velocity=jnp.asarray(v), present=jnp.asarray(present))
            else:
                velocity = jnp.asarray(self.motion_planner.velocity(prompts, size, num_frames))
        reader = None
        if (isinstance(request, TextRequest) and self.sampling.base_candidates > 1
                and self.sampling.candidate_score == "reader"):
            index, want = self.object_reader.named_terms(prompts)
            reader = dict(params=self.object_reader.params, index=jnp.asarray(index),
                          want=jnp.asarray(want))
        low, high = self._jitted(self.base_params, self.ssr_params, texts, key, request,
                                 critic, self.layout.params if layout else None, velocity,
                                 reader,
                                 num_frames=num_frames, base_only=base_only)
        if base_only:
            return np.asarray(jax.device_get(low))
        high = np.asarray(jax.device_get(high))
        return (np.asarray(jax.device_get(low)), high) if return_low_res else high

    def __call__(self, prompts: Sequence[str] | str, key: jax.Array, *,
                 num_frames: int | None = None, return_low_res: bool = False,
                 base_only: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Text-to-video: one video per prompt.

        Returns uint8 (B, T, ssr_size, ssr_size, 3); with `return_low_res`, also the base
        stage's uint8 (B, T, base_size, base_size, 3) as a first element. `base_only`:
        only the base stage runs, and its (B, T, base_size, base_size, 3) video (the same
        as `return_low_res` gives) is returned.
        """
        prompts = check_prompts(prompts)
        num_frames = self._frames(num_frames)
        if self.sampling.layer_objects:
            parts = [object_prompts(p) for p in prompts]
            if max(len(p) for p in parts) > 1:
                return self._layered(prompts, parts, key, num_frames, return_low_res,
                                     base_only)
        return self._from_text(prompts, key, num_frames, return_low_res, base_only)

    def _from_text(self, prompts: list[str], key: jax.Array, num_frames: int,
                   return_low_res: bool, base_only: bool):
        """Text-to-video from the text, or through a keyframe (`SamplingConfig.keyframes`)."""
        if not self.sampling.keyframes:
            return self._run(prompts, key, num_frames, return_low_res, TextRequest(),
                             base_only)
        k_draw, k_video = jax.random.split(key)
        images, scores = self.draw_keyframes(prompts, k_draw)
        best = images[np.arange(len(prompts)), scores.argmax(1)]
        return self.image_to_video(prompts, best, k_video, num_frames=num_frames,
                                   return_low_res=return_low_res, base_only=base_only)

    def draw_keyframes(self, prompts: Sequence[str] | str, key: jax.Array
                       ) -> tuple[np.ndarray, np.ndarray]:
        """`SamplingConfig.keyframes` T2I images per prompt, uint8 `(B, K, H, W, 3)`, and
        the object reader's `(B, K)` log p that each, held still, shows the prompt's
        objects (`keyframes.still_scores`; zeros for K = 1)."""
        prompts = check_prompts(prompts)
        s = self.sampling
        if not s.keyframes:
            raise ValueError("draw_keyframes needs SamplingConfig.keyframes >= 1")
        images = self.keyframe_drawer.draw(
            prompts, key, count=s.keyframes, steps=s.keyframe_steps,
            guidance=s.keyframe_guidance,
            progress=self.progress if self.progress.enabled else None,
            xla_options=s.xla_options)
        if s.keyframes == 1:
            return images, np.zeros(images.shape[:2], np.float32)
        return images, still_scores(self.object_reader, images, prompts)

    def _layered(self, prompts: list[str], parts: list[list[str]], key: jax.Array,
                 num_frames: int, return_low_res: bool, base_only: bool):
        """`layer_objects`: the base stage samples each prompt's object prompts (`parts`,
        padded to the longest with repeats that are not layered, so the call has B * N
        rows), `layer_clips` stacks them (in the order `keyframes.plan_layered` chose with
        the keyframes, when `_plans_layers`; else as named), the SSR stage runs under the
        whole prompts."""
        n = max(len(p) for p in parts)
        rows = [p[min(i, len(p) - 1)] for p in parts for i in range(n)]
        present = np.asarray([[i < len(p) for i in range(n)] for p in parts])
        grid = (len(prompts), n)
        order = np.tile(np.arange(n), (len(prompts), 1))  # stacking order, bottom layer first
        k_base, k_ssr = jax.random.split(key)
        if self._plans_layers(num_frames):  # keyframes and stacking order chosen together
            k_draw, k_video = jax.random.split(k_base)
            images, still = self.draw_keyframes(rows, k_draw)  # (B * N, K, ...), (B * N, K)
            size = self.base_config.image_size
            stills = self._fit(jnp.asarray(images, jnp.float32) / 127.5 - 1.0, size)
            velocity = self.motion_planner.velocity(rows, size, num_frames)
            pick, order = plan_layered(
                self.object_reader, stills.reshape(grid + stills.shape[1:]),
                still.reshape(grid + still.shape[1:]), velocity.reshape(grid + (2,)), present,
                prompts, num_frames)
            clips = self.image_to_video(rows, images[np.arange(len(rows)), pick.reshape(-1)],
                                        k_video, num_frames=num_frames, base_only=True)
        else:
            clips = self._from_text(rows, k_base, num_frames, False, base_only=True)
        clips = np.asarray(clips)
        clips = clips.reshape(grid + clips.shape[1:])
        stacked = np.take_along_axis(clips, order[:, :, None, None, None, None], axis=1)
        low_res = _layer(jnp.asarray(stacked, jnp.float32) / 127.5 - 1.0,
                         jnp.asarray(np.take_along_axis(present, order, axis=1)))
        low = np.asarray(jax.device_get(to_uint8(low_res)))
        if base_only:
            return low
        high = self.upsample(prompts, low, k_ssr)
        return (low, high) if return_low_res else high

    def _plans_layers(self, num_frames: int) -> bool:
        """Whether `_layered` picks its keyframes and stacking order together
        (`keyframes.plan_layered`): keyframes to choose from, a reader and a motion planner to
        play the plans, clips long enough for the reader."""
        return (self.sampling.keyframes > 1 and num_frames >= MIN_FRAMES
                and self.object_reader is not None and self.motion_planner is not None)

    def upsample(self, prompts: Sequence[str] | str, video: Any, key: jax.Array) -> np.ndarray:
        """The SSR stage alone on a given base video ((T, h, w, 3) or (B, T, h, w, 3), uint8
        or float in [-1, 1], resized to the base size): uint8 (B, T, H, W, 3)."""
        prompts = check_prompts(prompts)
        video = pixels_input("video", video, 5, len(prompts))
        num_frames = self._frames(video.shape[1])
        request = UpsampleRequest(video_low=self._fit(video, self.base_config.image_size))
        return self._run(prompts, key, num_frames, False, request)

    def image_to_video(self, prompts: Sequence[str] | str, image: Any, key: jax.Array, *,
                       num_frames: int | None = None, return_low_res: bool = False,
                       base_only: bool = False):
        """Animate `image` (the first frame): (H, W, 3) or (B, H, W, 3), uint8 or float in
        [-1, 1], any size (resized to each stage). Returns as `__call__`."""
        prompts = check_prompts(prompts)
        num_frames = self._frames(num_frames)
        image = pixels_input("image", image, 4, len(prompts))
        return self._run_conditioned(prompts, key, num_frames, return_low_res, base_only,
                                     lambda size: image_to_video_condition(
                                         self._fit(image, size), num_frames), image)

    def cinemagraph(self, prompts: Sequence[str] | str, image: Any, still_mask: Any,
                    key: jax.Array, *, num_frames: int | None = None,
                    return_low_res: bool = False, base_only: bool = False):
        """Animate only part of `image`: still_mask (H', W') or (B, H', W'), 1 where the
        image stays still (bool or float in [0, 1], any size). Returns as `__call__`."""
        prompts = check_prompts(prompts)
        num_frames = self._frames(num_frames)
        image = pixels_input("image", image, 4, len(prompts))
        still = mask_input("still_mask", still_mask, 3, len(prompts))
        return self._run_conditioned(prompts, key, num_frames, return_low_res, base_only,
                                     lambda size: cinemagraph_condition(
                                         self._fit(image, size), self._fit(still, size),
                                         num_frames), image)

    def inpaint(self, prompts: Sequence[str] | str, video: Any, known_mask: Any,
                key: jax.Array, *, return_low_res: bool = False, base_only: bool = False):
        """Fill the unknown region of `video` ((T, H, W, 3) or (B, T, H, W, 3), uint8 or
        float in [-1, 1]); known_mask (H', W'), (T, H', W') or (B, T, H', W'), 1 = keep.
        Returns as `__call__`, with the video's T frames."""
        prompts = check_prompts(prompts)
        video = pixels_input("video", video, 5, len(prompts))
        num_frames = self._frames(video.shape[1])
        known = mask_input("known_mask", known_mask, 4, len(prompts), num_frames)
        return self._run_conditioned(prompts, key, num_frames, return_low_res, base_only,
                                     lambda size: inpainting_condition(
                                         self._fit(video, size), self._fit(known, size)))

    def edit(self, prompts: Sequence[str] | str, video: Any, key: jax.Array, *,
             strength: float = 0.6, return_low_res: bool = False, base_only: bool = False):
        """SDEdit `video` ((T, H, W, 3) or (B, T, H, W, 3), uint8 or float in [-1, 1]) under
        the prompts: noise it to t = strength in (0, 1], denoise. Returns as `__call__`."""
        prompts = check_prompts(prompts)
        check_strength(strength)
        video = pixels_input("video", video, 5, len(prompts))
        num_frames = self._frames(video.shape[1])
        request = EditRequest(video_low=self._fit(video, self.base_config.image_size),
                              strength=jnp.float32(strength))
        return self._run(prompts, key, num_frames, return_low_res, request, base_only)

    # ------------------------------------------------------------------ input helpers

    def _frames(self, num_frames: int | None) -> int:
        num_frames = self.base_config.num_frames if num_frames is None else num_frames
        self.check_num_frames(num_frames)
        return num_frames

    def _fit(self, x: jax.Array, size: int) -> jax.Array:
        """`resize_input` with this pipeline's `resize_method`."""
        return resize_input(x, size, self.sampling.resize_method)

    def _run_conditioned(self, prompts: list[str], key: jax.Array, num_frames: int,
                         return_low_res: bool, base_only: bool,
                         build: Callable[[int], jax.Array], image: jax.Array | None = None):
        """A `ConditionRequest`; `build(size)` gives the `<C, M>` condition at `size` px.
        `image` (i2v, cinemagraph: (B, H, W, 3)) makes it an `ImageRequest`."""
        low, high = self.base_config.image_size, self.ssr_config.image_size
        cond = dict(cond_low=build(low), cond_high=build(high))
        request = (ConditionRequest(**cond) if image is None
                   else ImageRequest(**cond, image_low=self._fit(image, low)))
        return self._run(prompts, key, num_frames, return_low_res, request, base_only)

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
