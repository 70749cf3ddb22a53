"""Lumiere applications: stylized generation, the 7-channel conditional input
(image-to-video, inpainting, cinemagraphs), SDEdit video-to-video, conditional sampling."""

from lumiere_jax.applications.conditional import sample_conditional
from lumiere_jax.applications.conditioning import (cinemagraph_condition,
                                                   image_to_video_condition,
                                                   inpainting_condition, make_condition,
                                                   random_training_condition,
                                                   split_condition)
from lumiere_jax.applications.sdedit import check_strength, noise_to_strength, sdedit
from lumiere_jax.applications.style import check_alpha, interpolate_spatial_weights

__all__ = ["interpolate_spatial_weights", "check_alpha", "make_condition", "split_condition",
           "image_to_video_condition", "inpainting_condition", "cinemagraph_condition",
           "random_training_condition",
           "noise_to_strength", "sdedit", "check_strength", "sample_conditional"]
