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
