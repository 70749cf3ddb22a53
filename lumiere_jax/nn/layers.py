"""Parameterized building blocks with logical axis names on every weight.

Logical names (mapped to mesh axes by `lumiere_jax.parallel` rules):
  conv kernels `(*spatial, 'embed', 'mlp')`, dense kernels `('embed', 'mlp')`,
  biases `('mlp',)`, norm scales / biases `('norm',)`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
Initializer = Callable[..., jax.Array]

default_kernel_init = nn.initializers.lecun_normal()
zeros_init = nn.initializers.zeros


def dense(features: int, *, name: str, dtype: Dtype, param_dtype: Dtype,
          kernel_init: Initializer = default_kernel_init, use_bias: bool = True) -> nn.Dense:
    """A `nn.Dense` whose kernel is `('embed', 'mlp')` and bias `('mlp',)`."""
    return nn.Dense(
        features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=nn.with_logical_partitioning(kernel_init, ("embed", "mlp")),
        bias_init=nn.with_logical_partitioning(zeros_init, ("mlp",)),
        name=name,
    )


def conv(features: int, kernel_size: Sequence[int], *, name: str, dtype: Dtype,
         param_dtype: Dtype, strides: int | Sequence[int] = 1, padding: Any = "SAME",
         kernel_init: Initializer = default_kernel_init, use_bias: bool = True) -> nn.Conv:
    """A `nn.Conv` (any rank) whose kernel is `(*kernel_size, 'embed', 'mlp')`."""
    kernel_size = tuple(kernel_size)
    names = (None,) * len(kernel_size) + ("embed", "mlp")
    return nn.Conv(
        features,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=nn.with_logical_partitioning(kernel_init, names),
        bias_init=nn.with_logical_partitioning(zeros_init, ("mlp",)),
        name=name,
    )


def group_norm(channels: int, max_groups: int, *, name: str, dtype: Dtype,
               param_dtype: Dtype) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= `max_groups` that divides `channels`."""
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(
        num_groups=groups,
        epsilon=1e-5,
        dtype=dtype,
        param_dtype=param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
        bias_init=nn.with_logical_partitioning(zeros_init, ("norm",)),
        name=name,
    )


def frames_per_item(x: jax.Array, batch: int) -> int:
    """Frames folded into the leading axis of `x: (B*T, ...)` for a batch of `batch`."""
    if x.shape[0] % batch:
        raise ValueError(f"leading axis {x.shape[0]} is not a multiple of batch {batch}")
    return x.shape[0] // batch


def cast(x: jax.Array, dtype: Dtype) -> jax.Array:
    return jnp.asarray(x, dtype)
