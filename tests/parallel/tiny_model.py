"""A tiny stand-in model with flax logical partitioning (the real UNet is built elsewhere).

Shapes: x (B, H, W, C) float, t (B,) float -> (B, H, W, C). Logical names follow the
team convention: conv kernels (None, None, 'embed', 'mlp'), dense kernels ('embed', 'mlp'),
biases ('mlp',), norm params ('norm',), activations ('batch', ...).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

C_IN, WIDTH, HIDDEN = 4, 16, 32


def _kernel_init(key: jax.Array, shape: tuple, dtype=jnp.float32) -> jax.Array:
    """lecun_normal drawn as a 2-D (fan_in, fan_out) array and reshaped.

    Same distribution as `lecun_normal()(key, shape)`; drawing rank >= 3 arrays with
    partitionable threefry (the jax 0.10 default) costs ~10 s of XLA CPU compile each.
    """
    flat = nn.initializers.lecun_normal()(key, (int(np.prod(shape[:-1])), shape[-1]), dtype)
    return flat.reshape(shape)


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, name=name,
                    kernel_init=nn.with_logical_partitioning(_kernel_init, ("embed", "mlp")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)))


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array) -> jax.Array:
        h = nn.Conv(WIDTH, (3, 3), name="conv_in",
                    kernel_init=nn.with_logical_partitioning(_kernel_init,
                                                             (None, None, "embed", "mlp")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)))(x)
        h = nn.with_logical_constraint(h, ("batch", None, None, None))
        h = nn.LayerNorm(name="norm",
                         scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                         bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                                                ("norm",)))(h)
        temb = _dense(WIDTH, "time")(jnp.sin(t[:, None] * jnp.arange(1, 9, dtype=jnp.float32)))
        h = h + temb[:, None, None, :]
        h = nn.gelu(_dense(HIDDEN, "mlp_in")(h))
        # Needed, not decoration: without pinning the conv input's features to
        # replicated, XLA (jax 0.10.2, CPU, Shardy and GSPMD alike) returns wrong
        # gradients for dense('fsdp','tensor') -> conv(None,None,'fsdp','tensor') on a
        # (2,2,2) mesh. Models should constrain activations like this before each conv.
        h = nn.with_logical_constraint(h, ("batch", None, None, None))
        return nn.Conv(C_IN, (3, 3), name="conv_out",
                       kernel_init=nn.with_logical_partitioning(_kernel_init,
                                                                (None, None, "embed", "mlp")),
                       bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)))(h)


def init_fn(key: jax.Array) -> dict:
    """Variables of TinyNet for (B, 8, 8, C_IN) inputs."""
    return TinyNet().init(key, jnp.zeros((1, 8, 8, C_IN)), jnp.zeros((1,)))


def loss_fn(params: dict, batch: dict) -> jax.Array:
    """Mean squared error of TinyNet(x, t) against batch['y']."""
    pred = TinyNet().apply({"params": params}, batch["x"], batch["t"])
    return jnp.mean((pred - batch["y"]) ** 2)


def make_batch(batch_size: int, seed: int = 0) -> dict:
    """A deterministic global batch of NumPy arrays."""
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(batch_size, 8, 8, C_IN)).astype(np.float32),
            "t": rng.uniform(size=(batch_size,)).astype(np.float32),
            "y": rng.normal(size=(batch_size, 8, 8, C_IN)).astype(np.float32)}


def sgd_step(params: dict, batch: dict, lr: float = 0.1) -> tuple[dict, jax.Array, dict]:
    """One SGD step: (new params, loss, grads)."""
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss, grads
