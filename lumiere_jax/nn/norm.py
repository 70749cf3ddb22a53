"""GroupNorm followed by an optional per-item affine and SiLU, with a hand-written gradient.

`silu((norm(x) * scale + bias) * (1 + mod_scale) + mod_shift)` is the pattern every
ResBlock and temporal block of the U-Net repeats. `nn.GroupNorm` reshapes `x` to
`(N, S, G, C // G)` and reduces over axes (1, 3), a strided reduction XLA:CPU runs several
times slower than a sum over S alone (`benchmarks/temporal_layout.py`), and autodiff
through it and `nn.silu` re-reads the normalised activations in several passes. Here both moments are sums over S per item
and channel (`(N, C)`), grouped afterwards on that small array; the forward saves only
`x` and the statistics, and the backward is one pass of sums over S (of dz and
dz * x_hat, per item and channel) and one elementwise pass.

The modulation folds into a per-item, per-channel affine (`gamma = scale * (1 + m_s)`,
`beta = bias * (1 + m_s) + m_shift`), so the fused op sees `gamma, beta: (N, C)`;
autodiff takes their gradient back to the parameters and the embedding projection.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from lumiere_jax.nn.layers import Dtype, zeros_init


def _per_channel_mean(sums: jax.Array, groups: int, count: int) -> jax.Array:
    """`(N, C)` sums over S -> `(N, 1, C)`: each channel's group mean (count per channel)."""
    n, c = sums.shape
    grouped = sums.reshape(n, groups, c // groups).sum(-1, keepdims=True) / (count * c // groups)
    return jnp.broadcast_to(grouped, (n, groups, c // groups)).reshape(n, 1, c)


def _stats(x: jax.Array, groups: int, epsilon: float) -> tuple[jax.Array, jax.Array]:
    """`x: (N, S, C)` float32 -> mean and 1 / std of each channel's group, `(N, 1, C)` each.

    Var = E[x^2] - E[x]^2 clipped at 0, as `nn.GroupNorm` (use_fast_variance) computes it.
    """
    mean = _per_channel_mean(jnp.sum(x, axis=1), groups, x.shape[1])
    mean_sq = _per_channel_mean(jnp.sum(jnp.square(x), axis=1), groups, x.shape[1])
    return mean, jax.lax.rsqrt(jnp.maximum(mean_sq - jnp.square(mean), 0.0) + epsilon)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def group_norm_affine(x: jax.Array, gamma: jax.Array, beta: jax.Array, groups: int,
                      epsilon: float, activate: bool) -> jax.Array:
    """`x: (N, *S, C)`, `gamma, beta: (N, C)` -> `act(x_hat * gamma + beta)`, shape of x.

    `x_hat` is x normalised over S and each group of C // groups channels; act is SiLU
    when `activate`, else the identity. Computed in float32, returned in x's dtype.
    """
    return _forward(x, gamma, beta, groups, epsilon, activate)[0]


def _flat(x: jax.Array) -> jax.Array:
    """`(N, *S, C)` -> `(N, prod(S), C)` float32."""
    return x.reshape(x.shape[0], -1, x.shape[-1]).astype(jnp.float32)


def _forward(x, gamma, beta, groups, epsilon, activate):
    xf = _flat(x)
    mean, rstd = _stats(xf, groups, epsilon)
    z = (xf - mean) * rstd * gamma[:, None] + beta[:, None]
    y = z * jax.nn.sigmoid(z) if activate else z
    return y.reshape(x.shape).astype(x.dtype), (x, gamma, beta, mean, rstd)


def _backward(groups, epsilon, activate, residuals, dy):
    x, gamma, beta, mean, rstd = residuals
    x_hat = (_flat(x) - mean) * rstd
    dz = _flat(dy)
    if activate:
        z = x_hat * gamma[:, None] + beta[:, None]
        s = jax.nn.sigmoid(z)
        dz = dz * s * (1.0 + z * (1.0 - s))
    dbeta = jnp.sum(dz, axis=1)                      # (N, C)
    dgamma = jnp.sum(dz * x_hat, axis=1)             # (N, C)
    count = x_hat.shape[1]
    mean_dxhat = _per_channel_mean(gamma * dbeta, groups, count)
    mean_dxhat_xhat = _per_channel_mean(gamma * dgamma, groups, count)
    dx = rstd * (dz * gamma[:, None] - mean_dxhat - x_hat * mean_dxhat_xhat)
    return dx.reshape(x.shape).astype(x.dtype), dgamma, dbeta


group_norm_affine.defvjp(_forward, _backward)


class GroupNorm(nn.Module):
    """GroupNorm with `nn.GroupNorm`'s parameters (`scale`, `bias`: `(C,)`), then an
    optional per-item modulation and SiLU, all in one fused op (`group_norm_affine`).

    `x: (N, *S, C)`; `mod_scale, mod_shift: (N, C) | None` -> `(N, *S, C)`:
    `act((norm(x) * scale + bias) * (1 + mod_scale) + mod_shift)`, act = SiLU when
    `silu`. Statistics per item and group of C // num_groups channels, over S.
    """

    num_groups: int
    epsilon: float = 1e-5
    silu: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mod_scale: jax.Array | None = None,
                 mod_shift: jax.Array | None = None) -> jax.Array:
        channels = x.shape[-1]
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                           (channels,), self.param_dtype)
        bias = self.param("bias", nn.with_logical_partitioning(zeros_init, ("norm",)),
                          (channels,), self.param_dtype)
        gamma = jnp.broadcast_to(scale.astype(jnp.float32), (x.shape[0], channels))
        beta = jnp.broadcast_to(bias.astype(jnp.float32), (x.shape[0], channels))
        if mod_scale is not None:
            factor = 1.0 + mod_scale.astype(jnp.float32)
            gamma, beta = gamma * factor, beta * factor
        if mod_shift is not None:
            beta = beta + mod_shift.astype(jnp.float32)
        return group_norm_affine(x.astype(self.dtype), gamma, beta, self.num_groups,
                                 self.epsilon, self.silu)


def group_norm(channels: int, max_groups: int, *, name: str, dtype: Dtype, param_dtype: Dtype,
               silu: bool = False) -> GroupNorm:
    """A `GroupNorm` with the largest group count <= `max_groups` that divides `channels`."""
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return GroupNorm(num_groups=groups, epsilon=1e-5, silu=silu, dtype=dtype,
                     param_dtype=param_dtype, name=name)
