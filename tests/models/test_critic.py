"""The noised video-text critic: its contrastive loss against a NumPy reference, its
embeddings, its config checks, and that its training step learns a direction of motion."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lumiere_jax.diffusion.schedules import cosine_schedule
from lumiere_jax.models.critic import CriticConfig, VideoTextCritic, critic_loss
from lumiere_jax.training.critic import init_critic_state, make_critic_step

B, T, S, L = 6, 4, 8, 5
TINY = CriticConfig(vocab_size=12, max_length=L, widths=(4, 8), text_width=8, embed_dim=8)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, S, S, 3)).astype(np.float32)
    t = rng.uniform(size=B).astype(np.float32)
    ids = rng.integers(1, 12, size=(B, L)).astype(np.int32)
    ids[3] = ids[0]                        # rows 0 and 3 share a caption
    mask = np.ones((B, L), bool)
    mask[:, -1] = False
    return x, t, ids, mask


def _clip_loss_numpy(video, text, scale, ids, mask):
    """CLIP's symmetric cross-entropy, rows with equal (masked) captions all matches."""
    logits = scale * video @ text.T
    same = np.array([[np.array_equal(ids[i][mask[i]], ids[j][mask[j]]) for j in range(B)]
                     for i in range(B)], np.float64)
    target = same / same.sum(1, keepdims=True)
    def xent(lg):
        lg = lg - lg.max(1, keepdims=True)
        logp = lg - np.log(np.exp(lg).sum(1, keepdims=True))
        return -np.mean(np.sum(target * logp, 1))
    return 0.5 * (xent(logits) + xent(logits.T))


def test_critic_loss_matches_numpy_clip_loss():
    critic = VideoTextCritic(TINY)
    x, t, ids, mask = _inputs()
    params = critic.init(jax.random.key(0), x, t, ids, mask)
    video = np.asarray(critic.apply(params, x, t, method=critic.embed_video), np.float64)
    text = np.asarray(critic.apply(params, ids, mask, method=critic.embed_text), np.float64)
    np.testing.assert_allclose(np.linalg.norm(video, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    scale = float(critic.apply(params, method=critic.logit_scale))
    loss, metrics = critic_loss(critic, params, x, t, ids, mask)
    np.testing.assert_allclose(float(loss), _clip_loss_numpy(video, text, scale, ids, mask),
                               rtol=1e-5)
    score = critic.apply(params, x, t, ids, mask)
    np.testing.assert_allclose(score, scale * np.sum(video * text, 1), rtol=1e-5, atol=1e-6)
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0


def test_critic_text_ignores_padding_and_the_video_depends_on_t():
    critic = VideoTextCritic(TINY)
    x, t, ids, mask = _inputs()
    params = critic.init(jax.random.key(0), x, t, ids, mask)
    other = ids.copy()
    other[:, -1] = 0                       # padded position changed
    a = critic.apply(params, ids, mask, method=critic.embed_text)
    b = critic.apply(params, other, mask, method=critic.embed_text)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    # FiLM from t starts at zero; after a few updates the same clip embeds differently by t.
    v0 = critic.apply(params, x, t, method=critic.embed_video)
    v1 = critic.apply(params, x, t + 0.3, method=critic.embed_video)
    np.testing.assert_allclose(v0, v1, rtol=1e-6)


@pytest.mark.parametrize("field,value", [("vocab_size", 0), ("embed_dim", -1), ("widths", ()),
                                         ("max_length", 1.5)])
def test_critic_config_rejects_bad_sizes(field, value):
    with pytest.raises(ValueError, match=field):
        CriticConfig(**{**dict(vocab_size=4), field: value})


def _moving_dot_pairs(rng, n_pairs):
    """uint8 reversal pairs of a bright dot moving right (caption 1) or left (caption 2),
    each pair = a clip and itself played backwards, as `data.time_reversal_pairs` makes."""
    clips, ids = [], []
    for _ in range(n_pairs):
        row = rng.integers(1, S - 1)
        start = rng.integers(0, 2)
        clip = np.zeros((T, S, S, 3), np.uint8)
        for f in range(T):
            clip[f, row - 1:row + 2, start + 2 * f - 1 + 1:start + 2 * f + 2] = 255
        right_first = rng.integers(0, 2) == 0
        pair = [clip, clip[::-1]] if right_first else [clip[::-1], clip]
        clips += pair
        ids += [[1, 3], [2, 3]] if right_first else [[2, 3], [1, 3]]
    ids = np.pad(np.asarray(ids, np.int32), ((0, 0), (0, L - 2)))
    return np.stack(clips), ids, ids > 0


def test_critic_step_learns_which_way_a_dot_moves():
    """Trained on time-reversal pairs only (so nothing but the motion tells the pair
    apart), the critic ranks the right caption first for held-out clips at low noise."""
    config = ml_collections.ConfigDict(dict(
        seed=0, model=dict(num_frames=T, image_size=S), text=dict(max_length=L),
        diffusion=dict(t_power=1.0), optim=dict(ema_decay=0.9)))
    critic = VideoTextCritic(TINY)
    tx = optax.adam(3e-3)
    schedule = cosine_schedule(S, S)
    state = init_critic_state(critic, tx, config)
    step = jax.jit(make_critic_step(critic, tx, schedule, config))
    rng = np.random.default_rng(0)
    for _ in range(150):
        pixels, ids, mask = _moving_dot_pairs(rng, 4)
        state, metrics = step(state, dict(pixels=pixels, ids=ids, mask=mask))
    assert int(state["step"]) == 150 and int(metrics["nonfinite"]) == 0
    pixels, ids, mask = _moving_dot_pairs(np.random.default_rng(1), 16)
    x0 = pixels.astype(np.float32) / 127.5 - 1.0
    t = np.full(len(x0), 0.2, np.float32)
    alpha, sigma = (np.asarray(v)[:, None, None, None, None] for v in schedule.alpha_sigma(t))
    x_t = alpha * x0 + sigma * np.random.default_rng(2).standard_normal(x0.shape)
    swapped = np.where(ids == 1, 2, np.where(ids == 2, 1, ids))
    params = {"params": state["params"]["critic"]}
    own = critic.apply(params, x_t, t, ids, mask)
    other = critic.apply(params, x_t, t, swapped, mask)
    assert np.mean(np.asarray(own) > np.asarray(other)) >= 0.9
