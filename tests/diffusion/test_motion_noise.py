"""Translating starting noise (`diffusion.motion_noise`) against NumPy rolls and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.motion_noise import carried_frames, frame_offsets, translating_noise


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


def test_carried_frames_move_the_image_with_the_noise_and_copy_the_edge():
    """Frame k is the image moved by the noise's own offset from frame 0 to k (a NumPy loop
    over pixels; uncovered pixels copy the nearest edge pixel), frame 0 the image; and
    with fully shared noise moving the same way, every frame keeps the same noise under
    the image: image + noise moves as one."""
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (2, 6, 7, 3)).astype(np.float32)
    v = np.array([[1.0, -2.0], [-0.6, 0.4]], np.float32)
    got = np.asarray(carried_frames(jnp.asarray(image), jnp.asarray(v), 5))
    offsets = np.asarray(frame_offsets(5, jnp.asarray(v)))
    assert got.shape == (2, 5, 6, 7, 3)
    for b in range(2):
        for k in range(5):
            dy, dx = offsets[b, k] - offsets[b, 0]
            for i in range(6):
                for j in range(7):
                    src = image[b, min(max(i - dy, 0), 5), min(max(j - dx, 0), 6)]
                    np.testing.assert_array_equal(got[b, k, i, j], src)
    np.testing.assert_array_equal(got[:, 0], image)
    big = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    noise = np.asarray(translating_noise(jax.random.key(3), (2, 5, 32, 32, 3), jnp.asarray(v),
                                         1.0 - 1e-8))
    both = np.asarray(carried_frames(jnp.asarray(big), jnp.asarray(v), 5)) + noise
    for b in range(2):  # away from the edges and the roll's wrap, frame k is frame 0 moved
        dy, dx = offsets[b, 4] - offsets[b, 0]
        inner = both[b, 4, 10:22, 10:22]
        np.testing.assert_allclose(inner, both[b, 0, 10 - dy:22 - dy, 10 - dx:22 - dx],
                                   atol=2e-3)


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


def _object_noise_numpy(shared, fresh, tracks, c):
    """Pixel by pixel: the shared value a frame shows (static, or the covering object's
    roll by round-half-up(k v)), mixed with the fresh noise."""
    b_, t_, h_, w_, _ = fresh.shape
    out = np.empty_like(fresh)
    for b in range(b_):
        for k in range(t_):
            for y in range(h_):
                for x in range(w_):
                    value = shared[b, y, x]
                    for y0, x0, vy, vx, r in tracks[b]:  # later objects on top
                        cy, cx = y0 + k * vy, x0 + k * vx
                        if r > 0 and (y + 0.5 - cy) ** 2 + (x + 0.5 - cx) ** 2 <= r * r:
                            oy, ox = int(np.floor(k * vy + 0.5)), int(np.floor(k * vx + 0.5))
                            value = shared[b, (y - oy) % h_, (x - ox) % w_]
                    out[b, k, y, x] = np.sqrt(c[b]) * value + np.sqrt(1 - c[b]) * fresh[b, k, y, x]
    return out


def test_object_noise_moves_the_shared_field_inside_each_objects_disc_only():
    """Against a per-pixel NumPy loop, with the same Gaussian draws (the key's split)."""
    from lumiere_jax.diffusion.motion_noise import object_noise
    tracks = np.asarray([[[3.0, 4.0, 0.5, 1.0, 2.5], [9.0, 9.0, -1.0, 0.0, 2.0]],
                         [[6.0, 6.0, 0.0, -0.75, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]]], np.float32)
    shape, c = (2, 5, 12, 12, 2), np.asarray([0.9, 0.4], np.float32)
    key = jax.random.key(4)
    got = np.asarray(object_noise(key, shape, jnp.asarray(tracks), jnp.asarray(c)))
    k_shared, k_fresh = jax.random.split(key)
    shared = np.asarray(jax.random.normal(k_shared, (2, 12, 12, 2)))
    fresh = np.asarray(jax.random.normal(k_fresh, shape))
    np.testing.assert_allclose(got, _object_noise_numpy(shared, fresh, tracks, c), atol=1e-5)


def test_object_noise_is_standard_normal_static_outside_and_moving_inside():
    from lumiere_jax.diffusion.motion_noise import object_noise, track_masks
    tracks = jnp.tile(jnp.asarray([[[8.0, 8.0, 0.0, 1.0, 4.0]]]), (128, 1, 1))
    x = np.asarray(object_noise(jax.random.key(5), (128, 4, 24, 24, 1), tracks, 0.8))
    assert abs(x.mean()) < 0.02 and abs(x.var() - 1.0) < 0.03
    inside = np.asarray(track_masks(tracks, 4, 24, 24))[:, 0]  # (B, T, H, W)
    still = ~inside[:, 0] & ~inside[:, 2]   # background in frames 0 and 2: same field
    assert abs(np.corrcoef(x[:, 0][still].ravel(), x[:, 2][still].ravel())[0, 1] - 0.8) < 0.03
    # inside the disc in frame 2 (offset 2 px right): frame 0's values 2 px to the left
    moved = np.roll(x[:, 0], 2, axis=2)[inside[:, 2]]
    assert abs(np.corrcoef(moved.ravel(), x[:, 2][inside[:, 2]].ravel())[0, 1] - 0.8) < 0.03


def test_planned_tracks_stay_inside_the_frame_and_absent_objects_are_empty():
    from lumiere_jax.diffusion.motion_noise import plan_tracks
    rng = np.random.default_rng(0)
    v = rng.uniform(-1.0, 1.0, (64, 2, 2)).astype(np.float32)
    present = rng.random((64, 2)) < 0.7
    tracks = np.asarray(plan_tracks(jax.random.key(6), jnp.asarray(v), jnp.asarray(present),
                                    5.0, 16, 32, 40))
    np.testing.assert_allclose(tracks[..., 2:4], v)
    np.testing.assert_array_equal(tracks[..., 4], np.where(present, 5.0, 0.0))
    for k in (0, 15):  # every disc inside the (32, 40) frame in the first and last frame
        centre = tracks[..., 0:2] + k * v
        assert (centre >= 5.0 - 1e-4).all() and (centre <= np.asarray([27.0, 35.0]) + 1e-4).all()
    assert tracks[..., 0].std() > 3.0  # starts are drawn, not fixed


@pytest.mark.parametrize("tracks,corr,match", [
    (np.zeros((2, 5)), 0.5, "tracks"), (np.zeros((3, 1, 5)), 0.5, "tracks"),
    (np.zeros((2, 1, 5)), 1.0, "correlation")])
def test_object_noise_bad_arguments_are_named(tracks, corr, match):
    from lumiere_jax.diffusion.motion_noise import object_noise
    with pytest.raises(ValueError, match=match):
        object_noise(jax.random.key(0), (2, 4, 8, 8, 3), jnp.asarray(tracks), corr)
