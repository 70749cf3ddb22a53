"""Motion read from pixels (`diffusion.clip_motion`) against the renderer's labels, known
shifts and a NumPy least-squares fit."""

import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.data.moving_shapes import make_example
from lumiere_jax.diffusion.clip_motion import clip_velocity, motion_agreement, motion_coherence


@pytest.fixture(scope="module")
def rendered():
    """60 held-out clips (16 frames, 32 px) in [-1, 1], their mean object velocity and
    object count, as the renderer stored them."""
    clips, velocity, count = [], [], []
    for i in range(60):
        ex = make_example(0, "test", i, 16, 32, 32)
        clips.append(ex["video"].astype(np.float32) / 127.5 - 1.0)
        velocity.append(np.mean(ex["objects"]["velocity"], 0))
        count.append(ex["num_objects"])
    return np.stack(clips), np.stack(velocity), np.asarray(count)


def test_one_object_clips_move_the_way_the_renderer_says(rendered):
    clips, truth, count = rendered
    one = count == 1
    assert one.sum() >= 20
    v, truth = np.asarray(clip_velocity(jnp.asarray(clips[one]))), truth[one]
    cos = (v * truth).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(truth, axis=1)
    assert (cos > 0.92).all(), cos               # within 23 degrees: 8 directions 45 apart
    assert np.abs(v - truth).max() < 0.45         # px per frame (true: 0.53 or 1.07)


def test_a_shifted_smooth_field_reads_its_shift():
    """A smooth random texture rolled by (-1, +1) px every second frame (0.5 px per frame):
    the whole frame moves, so the estimate is the shift."""
    rng = np.random.default_rng(0)
    field = rng.normal(size=(48, 48, 3))
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 2.0) ** 2)
    for axis in (0, 1):
        field = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), axis, field)
    frames = [np.roll(field, (-(k // 2), k // 2), axis=(0, 1)) for k in range(12)]
    v = np.asarray(clip_velocity(jnp.asarray(np.stack(frames)[None], jnp.float32)))[0]
    np.testing.assert_allclose(v, [-0.5, 0.5], atol=0.08)


def test_agreement_is_one_for_the_plan_zero_standing_still_and_negative_against_it(rendered):
    clips, truth, count = rendered
    one = np.flatnonzero(count == 1)[:8]
    x, plan = jnp.asarray(clips[one]), jnp.asarray(truth[one])
    assert (np.asarray(motion_agreement(x, plan)) > 0.5).all()
    assert (np.asarray(motion_agreement(x, -plan)) < -0.5).all()
    still = jnp.repeat(x[:, :1], 16, axis=1)
    np.testing.assert_allclose(np.asarray(motion_agreement(still, plan)), 0.0, atol=1e-6)


def _coherence_by_lstsq(clip: np.ndarray) -> float:
    """R^2 of one velocity for `dt + vy gy + vx gx = 0`, with the constraint rows built
    pixel by pixel (central differences of the mean of frames k and k + 1, inner pixels)
    and solved by `np.linalg.lstsq`."""
    rows, rhs = [], []
    t, h, w, c = clip.shape
    for k in range(t - 1):
        mid, dt = 0.5 * (clip[k + 1] + clip[k]), clip[k + 1] - clip[k]
        for i in range(1, h - 1):
            for j in range(1, w - 1):
                for ch in range(c):
                    rows.append([0.5 * (mid[i + 1, j, ch] - mid[i - 1, j, ch]),
                                 0.5 * (mid[i, j + 1, ch] - mid[i, j - 1, ch])])
                    rhs.append(-dt[i, j, ch])
    a, b = np.asarray(rows), np.asarray(rhs)
    v = np.linalg.lstsq(a, b, rcond=None)[0]
    return 1.0 - np.sum((b - a @ v) ** 2) / np.sum(b ** 2)


def test_coherence_is_the_r2_of_the_one_velocity_fit(rendered):
    clips, _, _ = rendered
    rng = np.random.default_rng(1)
    x = np.concatenate([clips[:3, :6], rng.normal(size=(1, 6, 32, 32, 3))])
    got = np.asarray(motion_coherence(jnp.asarray(x, jnp.float32)))
    want = [_coherence_by_lstsq(c.astype(np.float64)) for c in x]
    np.testing.assert_allclose(got, want, atol=2e-3)  # the fit's ridge is 1e-3 of trace / 2


def test_coherence_is_high_for_translation_and_falls_when_frames_are_shuffled(rendered):
    """One-object rendered clips travel rigidly: one velocity explains most of their change
    (the rest: anti-aliased edges, the linearised constraint). The same clips with their
    frames in random order keep every frame's content but no single motion."""
    clips, _, count = rendered
    one = clips[count == 1][:12]
    order = np.random.default_rng(0).permutation(16)
    kept = np.asarray(motion_coherence(jnp.asarray(one)))
    shuffled = np.asarray(motion_coherence(jnp.asarray(one[:, order])))
    assert (kept > 0.5).all() and (kept > shuffled + 0.2).all(), (kept, shuffled)
    still = jnp.repeat(jnp.asarray(one[:2, :1]), 16, axis=1)
    np.testing.assert_array_equal(np.asarray(motion_coherence(still)), 0.0)
