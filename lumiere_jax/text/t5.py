"""T5 encoder in Flax linen (T5 v1.1 by default; original T5's ReLU feed-forward also works).

T5 v1.1 (the text encoder of Imagen and Lumiere): RMSNorm without mean or bias, pre-norm
residual blocks, unscaled dot-product attention with a learned relative-position bias
(bucketed distances, one table shared by all layers, from the first block), a gated-GELU
feed-forward, no biases anywhere, no embedding scaling. Weights load from Hugging Face
`safetensors` with `lumiere_jax.text.t5_weights.load_t5_encoder`.

    encoder = T5Encoder(T5Config(...))
    states, mask = encoder.apply({'params': params}, ids, mask)
    # ids: (B, L) int, mask: (B, L) bool -> states: (B, L, d_model), mask unchanged
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange

Dtype = Any

# Hugging Face activation names -> JAX. `gated-gelu` in a HF config means the tanh GELU.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class T5Config:
    """T5 encoder hyper-parameters (Hugging Face `config.json` names). Defaults: T5 v1.1 XXL."""

    vocab_size: int = 32128
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"T5Config.{name} must be a positive int, got {value!r}")
        if self.relative_attention_num_buckets < 4 or self.relative_attention_num_buckets % 4:
            raise ValueError("T5Config.relative_attention_num_buckets must be a multiple of 4 "
                             f"(>= 4), got {self.relative_attention_num_buckets}")
        self.activation_name  # validates feed_forward_proj

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation_name(self) -> str:
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(f"T5Config.feed_forward_proj must be 'ACT' or 'gated-ACT', got "
                             f"{self.feed_forward_proj!r}")
        name = "gelu_new" if self.feed_forward_proj == "gated-gelu" else parts[-1]
        if name not in ACTIVATIONS:
            raise ValueError(f"T5Config.feed_forward_proj activation {parts[-1]!r} not supported; "
                             f"valid: {sorted(ACTIVATIONS)}")
        return name

    @classmethod
    def from_hf(cls, config: Mapping[str, Any] | str | os.PathLike) -> T5Config:
        """From a Hugging Face T5 config dict, a `config.json` path, or the folder holding it."""
        if not isinstance(config, Mapping):
            path = pathlib.Path(config)
            path = path / "config.json" if path.is_dir() else path
            if not path.is_file():
                raise ValueError(f"T5 config not found: {str(path)!r} (expected a Hugging Face "
                                 "config.json next to the weights)")
            config = json.loads(path.read_text())
        config = dict(config)
        if config.get("feed_forward_proj") is None and config.get("dense_act_fn"):
            act = config["dense_act_fn"]
            config["feed_forward_proj"] = ("gated-" if config.get("is_gated_act") else "") + act
        # Aliases used by some exports.
        for alias, name in (("hidden_size", "d_model"), ("num_attention_heads", "num_heads"),
                            ("num_hidden_layers", "num_layers"), ("head_dim", "d_kv")):
            if alias in config and name not in config:
                config[name] = config[alias]
        fields = {f.name for f in dataclasses.fields(cls)}
        required = fields - {"relative_attention_max_distance", "layer_norm_epsilon",
                             "feed_forward_proj"}
        missing = sorted(required - set(config))
        if missing:
            raise ValueError(f"T5 config is missing {missing}")
        kwargs = {k: config[k] for k in fields if k in config}
        if "feed_forward_proj" not in kwargs:
            kwargs["feed_forward_proj"] = "relu"  # HF's default (original T5)
        return cls(**kwargs)


def relative_position_bucket(relative_position: np.ndarray, *, bidirectional: bool = True,
                             num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """T5's bucketing of `memory_pos - query_pos` (Mesh TensorFlow / Hugging Face semantics).

    Half the buckets per direction are exact distances, the rest log-spaced up to
    `max_distance`; farther distances share the last bucket. float32 arithmetic in the
    reference's order of operations, so bucket edges agree exactly. int array -> int32.
    """
    rel = np.asarray(relative_position, np.int64)
    buckets = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0).astype(np.int64) * num_buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    with np.errstate(divide="ignore"):
        scaled = (np.log(rel.astype(np.float32) / np.float32(max_exact))
                  / np.float32(math.log(max_distance / max_exact))
                  * np.float32(num_buckets - max_exact))
    large = max_exact + np.where(is_small, 0, scaled).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return (buckets + np.where(is_small, rel, large)).astype(np.int32)


def check_ids_mask(ids: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Validates `ids (B, L) int` and `mask (B, L) | None`; returns the mask as bool (all True if
    None)."""
    if ids.ndim != 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(f"ids must be (B, L) integers, got shape {ids.shape} dtype {ids.dtype}")
    if mask is None:
        return jnp.ones(ids.shape, bool)
    if mask.shape != ids.shape:
        raise ValueError(f"mask shape {mask.shape} must equal ids shape {ids.shape} (B, L)")
    return jnp.asarray(mask).astype(bool)


def _dense(features: int, name: str, axes: tuple[str | None, str | None], config_init_std: float,
           dtype: Dtype, param_dtype: Dtype, precision) -> nn.Dense:
    init = nn.initializers.normal(config_init_std)
    return nn.Dense(features, use_bias=False, name=name, dtype=dtype, param_dtype=param_dtype,
                    precision=precision, kernel_init=nn.with_logical_partitioning(init, axes))


class T5LayerNorm(nn.Module):
    """RMSNorm (no mean subtraction, no bias), statistics in float32: `(..., D)` -> same."""

    epsilon: float = 1e-6
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                           (x.shape[-1],), self.param_dtype)
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return (jnp.asarray(scale, self.dtype) * x32.astype(self.dtype)).astype(self.dtype)


class T5SelfAttention(nn.Module):
    """Unscaled multi-head self-attention with an additive position bias.

    `x: (B, L, D)`, `bias: (1, H, L, L)`, `mask: (B, L) bool` (keys) -> `(B, L, D)`.
    """

    config: T5Config
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array, mask: jax.Array) -> jax.Array:
        c = self.config
        inner = c.num_heads * c.d_kv
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, precision=self.precision)
        split = lambda t: rearrange(t, "b l (h d) -> b l h d", h=c.num_heads)
        q = split(_dense(inner, "query", ("embed", "mlp"), (c.d_model * c.d_kv) ** -0.5, **kw)(x))
        k = split(_dense(inner, "key", ("embed", "mlp"), c.d_model ** -0.5, **kw)(x))
        v = split(_dense(inner, "value", ("embed", "mlp"), c.d_model ** -0.5, **kw)(x))
        out = jax.nn.dot_product_attention(q, k, v, bias=bias.astype(q.dtype),
                                           mask=rearrange(mask, "b l -> b 1 1 l"), scale=1.0)
        out = rearrange(out, "b l h d -> b l (h d)")
        return _dense(c.d_model, "out", ("mlp", "embed"), inner ** -0.5, **kw)(out)


class T5FeedForward(nn.Module):
    """`wo(act(wi_0 x) * wi_1 x)` (gated) or `wo(act(wi x))`: `(B, L, D)` -> `(B, L, D)`."""

    config: T5Config
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, precision=self.precision)
        act = ACTIVATIONS[c.activation_name]
        std_in = c.d_model ** -0.5
        if c.is_gated:
            h = (act(_dense(c.d_ff, "wi_0", ("embed", "mlp"), std_in, **kw)(x))
                 * _dense(c.d_ff, "wi_1", ("embed", "mlp"), std_in, **kw)(x))
        else:
            h = act(_dense(c.d_ff, "wi", ("embed", "mlp"), std_in, **kw)(x))
        return _dense(c.d_model, "wo", ("mlp", "embed"), c.d_ff ** -0.5, **kw)(h)


class T5Block(nn.Module):
    """Pre-norm residual block: `x + attn(norm(x))`, then `x + ffn(norm(x))`. `(B, L, D)` ->
    same."""

    config: T5Config
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array, mask: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        eps = self.config.layer_norm_epsilon
        h = T5LayerNorm(eps, name="attention_norm", **kw)(x)
        x = x + T5SelfAttention(self.config, name="attention", precision=self.precision,
                                **kw)(h, bias, mask)
        h = T5LayerNorm(eps, name="mlp_norm", **kw)(x)
        return x + T5FeedForward(self.config, name="mlp", precision=self.precision, **kw)(h)


class T5Encoder(nn.Module):
    """T5 encoder stack: `ids (B, L) int`, `mask (B, L) bool | None` -> `(states (B, L, D), mask)`.

    Padding (mask False) is excluded from attention, so the states of real tokens do not
    depend on how much padding follows them or on the other captions in the batch. Padded
    positions still get (meaningless) states, as in the reference; use the mask downstream.
    """

    config: T5Config
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, ids: jax.Array,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        c = self.config
        mask = check_ids_mask(ids, mask)
        length = ids.shape[1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

        x = nn.Embed(c.vocab_size, c.d_model, name="token_embedding", **kw,
                     embedding_init=nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                                                 ("vocab", "embed")))(ids)
        # Relative position bias, computed once and shared by every layer: (1, H, L, L).
        positions = np.arange(length)
        buckets = relative_position_bucket(
            positions[None, :] - positions[:, None], bidirectional=True,
            num_buckets=c.relative_attention_num_buckets,
            max_distance=c.relative_attention_max_distance)
        table = nn.Embed(c.relative_attention_num_buckets, c.num_heads, **kw,
                         name="relative_attention_bias",
                         embedding_init=nn.with_logical_partitioning(
                             nn.initializers.normal(c.d_model ** -0.5), (None, "heads")))
        bias = rearrange(table(jnp.asarray(buckets)), "q k h -> 1 h q k")

        for i in range(c.num_layers):
            x = T5Block(c, name=f"block_{i}", precision=self.precision, **kw)(x, bias, mask)
        x = T5LayerNorm(c.layer_norm_epsilon, name="final_norm", **kw)(x)
        return x, mask
