"""Translating starting noise (`diffusion.motion_noise`) against NumPy rolls and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.motion_noise import frame_offsets, translating_noise


def test_offsets_are_the_centred_travel_rounded_half_up():
    v = np.array([[0.5, -1.0], [0.0, 0.3]], np.float32)
    got = np.asarray(frame_offsets(4, jnp.asarray(v)))
    t = np.arange(4) - 1.5
    want = np.stack([np.stack([np.floor(tk * vb + 0.5) for tk in t]) for vb in v]).astype(int)
    np.testing.assert_array_equal(got, want)


def test_fully_shared_noise_is_one_field_rolled_along_the_velocity():
    """correlation -> 1: every frame is frame 0 rolled by the offset difference (np.roll)."""
    v = jnp.asarray([[1.0, 2.0], [-1.0, 0.0]])
    x = np.asarray(translating_noise(jax.random.key(0), (2, 5, 8, 8, 3), v, 1.0 - 1e-8))
    offsets = np.asarray(frame_offsets(5, v))
    for b in range(2):
        for k in range(5):
            shift = offsets[b, k] - offsets[b, 0]
            want = np.roll(x[b, 0], tuple(shift), axis=(0, 1))
            np.testing.assert_allclose(x[b, k], want, atol=2e-3)


def test_each_element_is_standard_normal_and_the_shared_part_has_the_given_correlation():
    c = 0.6
    v = jnp.tile(jnp.asarray([[0.0, 1.0]]), (256, 1))
    x = np.asarray(translating_noise(jax.random.key(1), (256, 4, 8, 8, 1), v, c))
    assert abs(x.mean()) < 0.02 and abs(x.var() - 1.0) < 0.03
    # frame 1 rolled back by its step (NumPy: floor(-0.5 + 0.5) - floor(-1.5 + 0.5) = 1 px)
    # lines up with frame 0: correlation c (closed form: sqrt(c)^2 of shared variance);
    # unaligned frames: 0.
    aligned = np.roll(x[:, 1], -1, axis=2)
    assert abs(np.corrcoef(aligned.ravel(), x[:, 0].ravel())[0, 1] - c) < 0.03
    assert abs(np.corrcoef(x[:, 1].ravel(), x[:, 0].ravel())[0, 1]) < 0.03


@pytest.mark.parametrize("shape,velocity,corr,match", [
    ((2, 4, 8, 8), (2, 2), 0.5, "shape"),
    ((2, 4, 8, 8, 3), (3, 2), 0.5, "velocity"),
    ((2, 4, 8, 8, 3), (2, 2), 1.0, "correlation"),
])
def test_bad_arguments_are_named(shape, velocity, corr, match):
    with pytest.raises(ValueError, match=match):
        translating_noise(jax.random.key(0), shape, jnp.zeros(velocity), corr)


def _aligned_correlations(x, velocity):
    """Per clip: the correlation of frame 1 rolled back onto frame 0 (NumPy offsets)."""
    t = np.arange(x.shape[1]) - (x.shape[1] - 1) / 2
    out = []
    for b in range(x.shape[0]):
        step = (np.floor(t[1] * velocity[b] + 0.5) - np.floor(t[0] * velocity[b] + 0.5))
        back = np.roll(x[b, 1], tuple(-step.astype(int)), axis=(0, 1))
        out.append(np.corrcoef(back.ravel(), x[b, 0].ravel())[0, 1])
    return np.asarray(out)


def test_one_correlation_per_clip():
    v = np.asarray([[0.0, 1.0], [1.0, 0.0], [0.0, -2.0]], np.float32)
    c = np.asarray([0.0, 0.5, 0.9], np.float32)
    x = np.asarray(translating_noise(jax.random.key(2), (3, 4, 64, 64, 4), jnp.asarray(v),
                                     jnp.asarray(c)))
    np.testing.assert_allclose(_aligned_correlations(x, v), c, atol=0.04)
    assert abs(x.var() - 1.0) < 0.03


def test_training_noise_draws_each_clips_correlation_uniformly_below_the_maximum():
    from lumiere_jax.diffusion.motion_noise import training_motion_noise
    rng = np.random.default_rng(0)
    v = rng.uniform(-1.5, 1.5, (96, 2)).astype(np.float32)
    x = np.asarray(training_motion_noise(jax.random.key(3), (96, 3, 48, 48, 3),
                                         jnp.asarray(v), 0.8))
    c = _aligned_correlations(x, v)
    assert c.min() > -0.05 and c.max() < 0.85          # within [0, 0.8] up to sampling error
    assert abs(c.mean() - 0.4) < 0.07                  # U(0, 0.8): mean 0.4, sd 0.23 / sqrt(96)
    assert abs(c.std() - 0.8 / np.sqrt(12)) < 0.06     # and spread like a uniform
    assert abs(x.var() - 1.0) < 0.02
