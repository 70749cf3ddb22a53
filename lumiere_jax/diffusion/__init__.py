"""Diffusion math shared by every model: schedules, objectives, samplers, guidance.

Pure functions over any `denoise_fn(x_t, t) -> output`; no model code. MultiDiffusion
lives in `lumiere_jax.diffusion.multidiffusion`, the low-resolution layout expert's
arithmetic in `lumiere_jax.diffusion.layout` (import them explicitly).
"""

from lumiere_jax.diffusion.guidance import (classifier_free_guidance, dynamic_threshold,
                                            noise_augment, static_clip)
from lumiere_jax.diffusion.objectives import (convert, diffusion_loss, from_x0_eps,
                                              loss_weight, to_x0_eps)
from lumiere_jax.diffusion.samplers import StepInfo, replacement_hook, sample
from lumiere_jax.diffusion.schedules import (Schedule, cosine_schedule, ddpm_betas,
                                             discrete_schedule, discrete_timesteps)

__all__ = [
    "Schedule", "cosine_schedule", "ddpm_betas", "discrete_schedule", "discrete_timesteps",
    "to_x0_eps", "from_x0_eps", "convert", "loss_weight", "diffusion_loss",
    "sample", "StepInfo", "replacement_hook",
    "classifier_free_guidance", "static_clip", "dynamic_threshold", "noise_augment",
]
