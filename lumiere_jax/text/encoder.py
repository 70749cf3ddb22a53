"""A small trainable transformer text encoder: the offline default (no weights to download).

Pairs with `ByteTokenizer`; train it jointly with the T2I U-Net or on its own.

    encoder = TextEncoder(TextEncoderConfig(width=256, depth=4))
    variables = encoder.init(key, ids, mask)
    states, mask = encoder.apply(variables, ids, mask)   # (B, L, width), (B, L) bool
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

from lumiere_jax.text.t5 import check_ids_mask
from lumiere_jax.text.tokenizers import ByteTokenizer

Dtype = Any


TEMPORAL_KINDS = ("transformer", "one_hot")  # TextEncoderConfig.temporal_kind


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
    """Pre-norm transformer encoder. `max_length` bounds the learned position table.

    `temporal_width > 0` adds a second, independent encoder of that width and
    `temporal_depth` blocks (own token and position embeddings), named `temporal_encoder`,
    whose states are concatenated after the main ones: `(B, L, width + temporal_width)`.
    A STUNet with `temporal_text_dim = temporal_width` feeds them only to its temporal
    layers. Its `temporal_` name makes it train in the STUNet stage while the T2I's
    encoder stays frozen (`models.trainable_mask`): a fresh path for words the T2I stage
    had no reason to tell apart (directions of motion).
    `temporal_kind='one_hot'` makes that second encoder a fixed one: each token's state is
    its one-hot id (`temporal_width >= vocab_size`), padding zero. Nothing in it trains, so
    no training can draw two words together; what the temporal layers make of each word is
    learnt by their own projections.
    """

    vocab_size: int = ByteTokenizer.vocab_size
    max_length: int = 64
    width: int = 256
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: int = 4
    dropout_rate: float = 0.0
    temporal_width: int = 0
    temporal_depth: int = 1
    temporal_kind: str = "transformer"

    def __post_init__(self):
        for name in ("vocab_size", "max_length", "width", "depth", "num_heads", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TextEncoderConfig.{name} must be a positive int, got {value!r}")
        if self.width % self.num_heads:
            raise ValueError(f"TextEncoderConfig.width ({self.width}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"TextEncoderConfig.dropout_rate must be in [0, 1), got "
                             f"{self.dropout_rate}")
        if self.temporal_width < 0 or self.temporal_width % self.num_heads:
            raise ValueError(f"TextEncoderConfig.temporal_width ({self.temporal_width}) must be "
                             f">= 0 and divisible by num_heads ({self.num_heads})")
        if self.temporal_kind not in TEMPORAL_KINDS:
            raise ValueError(f"TextEncoderConfig.temporal_kind={self.temporal_kind!r}; valid: "
                             f"{TEMPORAL_KINDS}")
        if (self.temporal_kind == "one_hot" and self.temporal_width
                and self.temporal_width < self.vocab_size):
            raise ValueError(f"TextEncoderConfig.temporal_width ({self.temporal_width}) must be "
                             f">= vocab_size ({self.vocab_size}) for temporal_kind='one_hot'")
        if self.temporal_depth < 1:
            raise ValueError(f"TextEncoderConfig.temporal_depth must be >= 1, got "
                             f"{self.temporal_depth}")

    @property
    def output_width(self) -> int:
        """The last dimension of the states: `width + temporal_width`."""
        return self.width + self.temporal_width


def _dense(features: int, name: str, axes: tuple[str, str], dtype: Dtype, param_dtype: Dtype,
           zero: bool = False) -> nn.Dense:
    init = nn.initializers.zeros_init() if zero else nn.initializers.xavier_uniform()
    return nn.Dense(features, name=name, dtype=dtype, param_dtype=param_dtype,
                    kernel_init=nn.with_logical_partitioning(init, axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                           (axes[1],)))


def _layer_norm(name: str, dtype: Dtype, param_dtype: Dtype) -> nn.LayerNorm:
    return nn.LayerNorm(name=name, dtype=dtype, param_dtype=param_dtype,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(),
                                                                ("norm",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                               ("norm",)))


class EncoderBlock(nn.Module):
    """`x + attn(LN(x))`, then `x + mlp(LN(x))`: `x: (B, L, D)`, `mask: (B, L) bool` ->
    `(B, L, D)`."""

    config: TextEncoderConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, train: bool = False) -> jax.Array:
        c, kw = self.config, dict(dtype=self.dtype, param_dtype=self.param_dtype)
        drop = nn.Dropout(c.dropout_rate, deterministic=not train)
        split = lambda t: rearrange(t, "b l (h d) -> b l h d", h=c.num_heads)

        h = _layer_norm("attention_norm", **kw)(x)
        q, k, v = (split(_dense(c.width, n, ("embed", "mlp"), **kw)(h))
                   for n in ("query", "key", "value"))
        h = jax.nn.dot_product_attention(q, k, v, mask=rearrange(mask, "b l -> b 1 1 l"))
        h = _dense(c.width, "out", ("mlp", "embed"), **kw)(rearrange(h, "b l h d -> b l (h d)"))
        x = x + drop(h)

        h = _layer_norm("mlp_norm", **kw)(x)
        h = nn.gelu(_dense(c.width * c.mlp_ratio, "mlp_in", ("embed", "mlp"), **kw)(h))
        h = _dense(c.width, "mlp_out", ("mlp", "embed"), **kw)(drop(h))
        return x + drop(h)


class TextEncoder(nn.Module):
    """`ids (B, L) int`, `mask (B, L) bool | None` -> `(states (B, L, output_width), mask)`,
    L <= max_length.

    Learned absolute positions and key masking: the states of real tokens do not depend on
    the padding after them or on other captions in the batch. `train=True` enables dropout
    (needs a `'dropout'` rng).
    """

    config: TextEncoderConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, ids: jax.Array, mask: jax.Array | None = None,
                 train: bool = False) -> tuple[jax.Array, jax.Array]:
        c, kw = self.config, dict(dtype=self.dtype, param_dtype=self.param_dtype)
        mask = check_ids_mask(ids, mask)
        if ids.shape[1] > c.max_length:
            raise ValueError(f"ids length {ids.shape[1]} exceeds TextEncoderConfig.max_length="
                             f"{c.max_length}; tokenize with max_length <= {c.max_length}")

        x = nn.Embed(c.vocab_size, c.width, name="token_embedding", **kw,
                     embedding_init=nn.with_logical_partitioning(
                         nn.initializers.normal(0.02), ("vocab", "embed")))(ids)
        positions = self.param("position_embedding", nn.with_logical_partitioning(
            nn.initializers.normal(0.02), (None, "embed")), (c.max_length, c.width),
            self.param_dtype)
        x = x + jnp.asarray(positions[: ids.shape[1]], self.dtype)[None]
        x = nn.Dropout(c.dropout_rate, deterministic=not train)(x)
        for i in range(c.depth):
            x = EncoderBlock(c, name=f"block_{i}", **kw)(x, mask, train)
        states = _layer_norm("final_norm", **kw)(x)
        if c.temporal_width and c.temporal_kind == "one_hot":
            one_hot = jax.nn.one_hot(ids, c.temporal_width, dtype=states.dtype)
            states = jnp.concatenate([states, one_hot * mask[..., None].astype(states.dtype)],
                                     axis=-1)
        elif c.temporal_width:
            temporal_config = dataclasses.replace(c, width=c.temporal_width, depth=c.temporal_depth,
                                                  temporal_width=0)
            temporal_states, _ = TextEncoder(temporal_config, name="temporal_encoder", **kw)(
                ids, mask, train)
            states = jnp.concatenate([states, temporal_states], axis=-1)
        return states, mask
