"""Reading a word back off the denoiser: alternatives, losses (against a NumPy loop), pick."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.schedules import cosine_schedule
from lumiere_jax.diffusion.word_reading import read_words, reads_own_word, word_alternatives

SHAPES = ("circle", "square", "triangle", "diamond")


@pytest.mark.parametrize("prompt, expected, own", [
    ("a red circle moving right", [f"a red {s} moving right" for s in SHAPES], 0),
    ("A Diamond and a circle", [f"A {s} and a circle" for s in SHAPES], 3),  # the first one
    ("two squares moving up", ["two squares moving up"] * 4, -1),   # whole words only
    ("waves", ["waves"] * 4, -1),
])
def test_word_alternatives_swap_the_first_whole_word(prompt, expected, own):
    assert word_alternatives(prompt, SHAPES) == (expected, own)


def test_read_words_equals_a_numpy_loop():
    """A toy denoiser whose output depends on its prompt's encoding: the loss of every clip
    under every alternative at every t, noised with the draw `key` gives, against
    `mean((output - v)^2)` computed one row at a time."""
    rng = np.random.default_rng(0)
    n, a, length, dim, times = 3, 4, 5, 2, (0.3, 0.7)
    clips = rng.uniform(-1, 1, (n, 2, 4, 4, 3)).astype(np.float32)
    text = rng.normal(size=(n, a, length, dim)).astype(np.float32)
    mask = rng.random((n, a, length)) < 0.7
    schedule, key = cosine_schedule(4, 4), jax.random.key(3)

    def weight(text_, mask_):  # (M,): what the toy denoiser reads from a prompt
        return np.sum(np.asarray(text_) * np.asarray(mask_)[..., None], axis=(1, 2))

    def denoiser_for(text_, mask_):
        w = jnp.sum(text_ * mask_[..., None], axis=(1, 2))
        return lambda x, t: 0.1 * w[:, None, None, None, None] * x + t[:, None, None, None, None]

    losses = np.asarray(read_words(denoiser_for, jnp.asarray(clips), jnp.asarray(text),
                                   jnp.asarray(mask), times, key, schedule, "v"))
    eps = np.asarray(jax.random.normal(key, (len(times),) + clips.shape[1:]))
    expected = np.zeros((n, a))
    for i in range(n):
        for j in range(a):
            w = weight(text[i, j][None], mask[i, j][None])[0]
            for s, t in enumerate(times):
                alpha, sigma = (float(v) for v in schedule.alpha_sigma(jnp.float32(t)))
                x_t = alpha * clips[i] + sigma * eps[s]
                out = 0.1 * w * x_t + t
                expected[i, j] += np.mean((out - (alpha * eps[s] - sigma * clips[i])) ** 2)
    np.testing.assert_allclose(losses, expected / len(times), rtol=2e-5, atol=1e-6)


def test_reads_own_word_is_the_argmin_and_false_without_a_word():
    losses = jnp.asarray([[0.3, 0.1, 0.2], [0.1, 0.2, 0.3], [0.5, 0.1, 0.4], [0.2, 0.1, 0.3]])
    own = jnp.asarray([1, 2, -1, 1])
    assert np.asarray(reads_own_word(losses, own)).tolist() == [True, False, False, True]


def test_the_shipped_base_reads_the_shape_of_rendered_clips():
    """The shipped demo base, on 8 rendered single-object clips (labels from the scene):
    the shape word whose caption it denoises best (t = 0.5 ... 0.8, the same noise) is the
    rendered shape in at least 7 (measured 0.98 of 64, `benchmarks/shape_reading.py`;
    chance 1 in 4: P(>= 7 of 8) = 0.0004)."""
    import os

    from lumiere_jax import pretrained, runs
    from lumiere_jax.data.moving_shapes import single_object_clips
    from lumiere_jax.sampling import unet_model_fn

    folder = os.path.join(os.path.dirname(__file__), "..", "..", "pretrained", "moving_shapes")
    config, params = pretrained.load_stage(folder, "base")
    unet = runs.unet_config(config)
    captions, clips = single_object_clips(np.random.default_rng(123), 8, unet.num_frames,
                                          unet.image_size)
    readings = [word_alternatives(c, SHAPES) for c in captions]
    text, mask = runs.text_encode_fn(config, params["text"])(
        [a for alts, _ in readings for a in alts])
    fn_for = lambda t_, m_: (lambda x, t: unet_model_fn(unet, params["unet"], t_, m_,
                                                        clips_per_call=16)(x, t, None))
    losses = jax.jit(lambda x, t_, m_: read_words(
        fn_for, x, t_, m_, (0.5, 0.6, 0.7, 0.8), jax.random.key(0), runs.noise_schedule(config),
        "v"), compiler_options={"xla_backend_optimization_level": 2})(
        jnp.asarray(clips, jnp.float32) / 127.5 - 1.0,
        jnp.asarray(text).reshape(8, 4, *np.shape(text)[1:]),
        jnp.asarray(mask).astype(bool).reshape(8, 4, -1))
    right = np.asarray(reads_own_word(losses, jnp.asarray([o for _, o in readings])))
    assert right.sum() >= 7, list(zip(captions, np.asarray(losses).argmin(1)))
