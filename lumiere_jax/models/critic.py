"""A noised video-text critic for guidance: GLIDE's noised CLIP (Nichol et al. 2022, sec. 2.3),
for clips.

    critic = VideoTextCritic(CriticConfig(vocab_size=tok.vocab_size, max_length=32))
    video = critic.apply(p, x_t, t, method=critic.embed_video)    # (B, D), unit norm
    text = critic.apply(p, ids, mask, method=critic.embed_text)   # (B, D), unit norm
    score = critic.apply(p, x_t, t, ids, mask)                     # (B,) scaled cosine

Trained contrastively on noisy clips (`critic_loss`), its score's gradient with respect
to `x_t` steers a sampler towards clips that match the caption (`diffusion.guidance.
critic_guidance`). The video tower is a small strided 3D conv net whose last map is
flattened, not pooled, so it keeps where the content is in which frame (a direction of
motion at high noise is mostly "left in the first frames, right in the last ones"); the
text tower embeds each word with its position, mixes them per token and averages.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from lumiere_jax.nn.embeddings import sinusoidal_embedding


@dataclasses.dataclass(frozen=True)
class CriticConfig:
    """Sizes of a `VideoTextCritic`. `widths`: channels of the 3D convs, each halving
    height and width (and, from the second on, frames); `embed_dim`: the joint space."""

    vocab_size: int
    max_length: int = 32
    widths: tuple[int, ...] = (32, 64, 128, 128)
    text_width: int = 128
    embed_dim: int = 128

    def __post_init__(self):
        for name in ("vocab_size", "max_length", "text_width", "embed_dim"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"CriticConfig.{name}={value!r} must be an int >= 1")
        if not self.widths or not all(isinstance(w, int) and w >= 1 for w in self.widths):
            raise ValueError(f"CriticConfig.widths={self.widths!r} must be ints >= 1")


def _unit(x: jax.Array) -> jax.Array:
    return x / jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-12)


class VideoTextCritic(nn.Module):
    """`(x_t (B, T, H, W, 3) float, t (B,), ids (B, L) int, mask (B, L) bool) -> (B,)`:
    the scaled cosine between the noisy clip's and the caption's embeddings."""

    config: CriticConfig

    def setup(self):
        c = self.config
        self.convs = [nn.Conv(w, (3, 3, 3), strides=(1 if i == 0 else 2, 2, 2),
                              padding="SAME", name=f"conv_{i}")
                      for i, w in enumerate(c.widths)]
        self.films = [nn.Dense(2 * w, kernel_init=nn.initializers.zeros, name=f"film_{i}")
                      for i, w in enumerate(c.widths)]
        self.time_mlp = nn.Dense(c.text_width, name="time")
        self.video_hidden = nn.Dense(2 * c.embed_dim, name="video_hidden")
        self.video_out = nn.Dense(c.embed_dim, name="video_out")
        self.words = nn.Embed(c.vocab_size, c.text_width, name="words")
        self.positions = nn.Embed(c.max_length, c.text_width, name="positions")
        self.token_mlp = nn.Dense(c.text_width, name="token_mlp")
        self.text_out = nn.Dense(c.embed_dim, name="text_out")
        self.log_scale = self.param("log_scale", lambda _: jnp.log(jnp.float32(10.0)))

    def embed_video(self, x_t: jax.Array, t: jax.Array) -> jax.Array:
        """x_t: (B, T, H, W, 3) noisy clip in [-1, 1] scale; t: (B,) -> (B, D) unit vectors."""
        temb = nn.silu(self.time_mlp(sinusoidal_embedding(t * 1000.0, self.config.text_width)))
        h = x_t.astype(jnp.float32)
        for conv, film in zip(self.convs, self.films):
            scale, shift = jnp.split(film(temb)[:, None, None, None], 2, axis=-1)
            h = nn.silu(conv(h) * (1.0 + scale) + shift)
        h = h.reshape(h.shape[0], -1)
        return _unit(self.video_out(nn.silu(self.video_hidden(h))))

    def embed_text(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        """ids: (B, L) int; mask: (B, L) bool -> (B, D) unit vectors."""
        tokens = self.words(ids) + self.positions(jnp.arange(ids.shape[1]))[None]
        tokens = nn.silu(self.token_mlp(nn.silu(tokens)))
        m = mask.astype(jnp.float32)[..., None]
        pooled = jnp.sum(tokens * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
        return _unit(self.text_out(pooled))

    def logit_scale(self) -> jax.Array:
        """The learnt temperature, a float32 scalar (starts at 10, capped at 100)."""
        return jnp.minimum(jnp.exp(self.log_scale), 100.0)

    def __call__(self, x_t: jax.Array, t: jax.Array, ids: jax.Array, mask: jax.Array
                 ) -> jax.Array:
        video, text = self.embed_video(x_t, t), self.embed_text(ids, mask)
        return self.logit_scale() * jnp.sum(video * text, axis=-1)


def init_critic_params(critic: VideoTextCritic, key: jax.Array, num_frames: int,
                       image_size: int) -> dict:
    """Fresh weights (the `params` collection) of `critic` for (T, H, W) clips."""
    x = jnp.zeros((1, num_frames, image_size, image_size, 3), jnp.float32)
    ids = jnp.zeros((1, critic.config.max_length), jnp.int32)
    return critic.init(key, x, jnp.ones((1,)), ids, ids > 0)["params"]


def critic_loss(critic: VideoTextCritic, params, x_t: jax.Array, t: jax.Array,
                ids: jax.Array, mask: jax.Array) -> tuple[jax.Array, dict]:
    """Symmetric InfoNCE over the batch (CLIP), rows with the same caption all counted as
    matches. x_t: (B, T, H, W, 3); t: (B,); ids, mask: (B, L). Returns (loss, metrics)
    with `accuracy`: how often a clip's best-scoring caption in the batch is one of its own.
    """
    video = critic.apply(params, x_t, t, method=critic.embed_video)
    text = critic.apply(params, ids, mask, method=critic.embed_text)
    logits = critic.apply(params, method=critic.logit_scale) * video @ text.T      # (B, B)
    same = jnp.all((ids[:, None] == ids[None]) | ~(mask[:, None] | mask[None]), axis=-1)
    target = same / jnp.sum(same, axis=-1, keepdims=True)
    loss_v = -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits, axis=1), axis=1))
    loss_t = -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits.T, axis=1), axis=1))
    accuracy = jnp.mean(same[jnp.arange(len(ids)), jnp.argmax(logits, axis=1)])
    return 0.5 * (loss_v + loss_t), dict(accuracy=accuracy)
