"""Parameterized building blocks with logical axis names on every weight.

Logical names (mapped to mesh axes by `lumiere_jax.parallel` rules):
  conv kernels `(*spatial, 'embed', 'mlp')`, dense kernels `('embed', 'mlp')`,
  biases `('mlp',)`, norm scales / biases `('norm',)`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

Dtype = Any
Initializer = Callable[..., jax.Array]

zeros_init = nn.initializers.zeros


def default_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """LeCun-normal, drawn as a 2D `(fan_in, fan_out)` matrix and reshaped.

    Same distribution as `nn.initializers.lecun_normal()` on a `(*window, in, out)`
    kernel (fan_in = prod(window) * in), but XLA-CPU compiles rank-2 threefry draws
    several times faster than rank-4 ones, which dominates model-init compile time.
    """
    fan_in = math.prod(shape[:-1])
    flat = nn.initializers.lecun_normal()(key, (fan_in, shape[-1]), dtype)
    return flat.reshape(shape)


def batch_constraint(x: jax.Array) -> jax.Array:
    """Pin the leading axis of an activation to the logical `'batch'` axis.

    Applied to the input of every conv and dense: without it XLA's SPMD partitioner
    produced wrong gradients on (data, fsdp, tensor) = (2, 2, 2) meshes. A no-op
    outside `nn.logical_axis_rules` / a mesh context.
    """
    return nn.with_logical_constraint(x, ("batch",) + (None,) * (x.ndim - 1))


class Dense(nn.Dense):
    """`nn.Dense` with its input batch-constrained (see `batch_constraint`)."""

    def __call__(self, inputs: jax.Array) -> jax.Array:
        return super().__call__(batch_constraint(inputs))


class Conv(nn.Conv):
    """`nn.Conv` with its input batch-constrained (see `batch_constraint`)."""

    def __call__(self, inputs: jax.Array) -> jax.Array:
        return super().__call__(batch_constraint(inputs))


def dense(features: int, *, name: str, dtype: Dtype, param_dtype: Dtype,
          kernel_init: Initializer = default_kernel_init, use_bias: bool = True,
          batched: bool = True) -> nn.Dense:
    """A `Dense` whose kernel is `('embed', 'mlp')` and bias `('mlp',)`.

    `batched=False` for inputs without a batch axis (e.g. position features), whose
    leading axis must not be pinned to `'batch'`.
    """
    return (Dense if batched else nn.Dense)(
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
         kernel_init: Initializer = default_kernel_init, use_bias: bool = True) -> Conv:
    """A `Conv` (any rank) whose kernel is `(*kernel_size, 'embed', 'mlp')`."""
    kernel_size = tuple(kernel_size)
    names = (None,) * len(kernel_size) + ("embed", "mlp")
    return Conv(
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


def frames_per_item(x: jax.Array, batch: int) -> int:
    """Frames folded into the leading axis of `x: (B*T, ...)` for a batch of `batch`."""
    if x.shape[0] % batch:
        raise ValueError(f"leading axis {x.shape[0]} is not a multiple of batch {batch}")
    return x.shape[0] // batch


def to_pixel_sequences(x: jax.Array, batch: int) -> jax.Array:
    """`(B*T, H, W, C)` -> `(B*H*W, T, C)`: one temporal sequence per pixel."""
    return rearrange(x, "(b t) h w c -> (b h w) t c", b=batch)


def from_pixel_sequences(seq: jax.Array, batch: int, height: int, width: int) -> jax.Array:
    """`(B*H*W, T, C)` -> `(B*T, H, W, C)`."""
    return rearrange(seq, "(b h w) t c -> (b t) h w c", b=batch, h=height, w=width)
