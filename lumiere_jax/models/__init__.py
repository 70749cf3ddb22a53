"""UNet family (T2I, STUNet, SSR) and inflation. Needs only jax, flax and einops."""

from lumiere_jax.models.config import UNetConfig, check_input_shape
from lumiere_jax.models.inflate import (check_inflatable, count_params, inflate_params,
                                        is_trainable_path, trainable_mask)
from lumiere_jax.models.unet import UNet, dummy_inputs, init_params

__all__ = ["UNet", "UNetConfig", "check_inflatable", "check_input_shape", "count_params",
           "dummy_inputs", "inflate_params", "init_params", "is_trainable_path", "trainable_mask"]
