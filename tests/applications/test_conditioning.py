"""The <C, M> condition builders against NumPy constructions."""

import jax
import numpy as np
import pytest

from lumiere_jax.applications import (cinemagraph_condition, image_to_video_condition,
                                      inpainting_condition, make_condition,
                                      random_training_condition, split_condition)

B, T, H, W = 2, 4, 6, 5
RNG = np.random.default_rng(0)
VIDEO = RNG.uniform(-1, 1, (B, T, H, W, 3)).astype(np.float32)
FRAME = RNG.uniform(-1, 1, (B, H, W, 3)).astype(np.float32)
HOLE = (RNG.uniform(size=(B, T, H, W, 1)) < 0.5)


def test_make_condition_masks_content_and_appends_mask():
    cond = np.asarray(make_condition(VIDEO, HOLE))
    assert cond.shape == (B, T, H, W, 4) and cond.dtype == np.float32
    np.testing.assert_array_equal(cond[..., 3:], HOLE.astype(np.float32))
    np.testing.assert_array_equal(cond[..., :3], np.where(HOLE, VIDEO, 0.0))
    assert np.all(cond[..., :3][np.broadcast_to(~HOLE, VIDEO.shape)] == 0.0)
    known, mask = split_condition(cond)
    np.testing.assert_array_equal(known, np.where(HOLE, VIDEO, 0.0))
    np.testing.assert_array_equal(mask, HOLE)


def test_make_condition_broadcasts_a_shared_mask():
    per_frame = np.array([1.0, 0.0, 1.0, 0.0], np.float32).reshape(1, T, 1, 1, 1)
    cond = np.asarray(make_condition(VIDEO, per_frame))
    np.testing.assert_array_equal(cond[..., 3], np.broadcast_to(per_frame[..., 0], (B, T, H, W)))
    np.testing.assert_array_equal(cond[:, 1, ..., :3], 0.0)
    np.testing.assert_array_equal(cond[:, 2, ..., :3], VIDEO[:, 2])


def test_image_to_video():
    cond = np.asarray(image_to_video_condition(FRAME, T))
    assert cond.shape == (B, T, H, W, 4)
    expected_mask = np.zeros((B, T, H, W), np.float32)
    expected_mask[:, 0] = 1.0
    np.testing.assert_array_equal(cond[..., 3], expected_mask)
    np.testing.assert_array_equal(cond[:, 0, ..., :3], FRAME)
    np.testing.assert_array_equal(cond[:, 1:, ..., :3], 0.0)


def test_inpainting_equals_masked_video():
    static_hole = HOLE[:, :1]                                  # (B, 1, H, W, 1): all frames
    cond = np.asarray(inpainting_condition(VIDEO, static_hole))
    mask = np.broadcast_to(static_hole, (B, T, H, W, 1)).astype(np.float32)
    np.testing.assert_array_equal(cond, np.concatenate([VIDEO * mask, mask], -1))


def test_cinemagraph_mask_and_content_equal_on_all_frames():
    still = HOLE[:, 0]                                         # (B, H, W, 1)
    cond = np.asarray(cinemagraph_condition(FRAME, still, T))
    assert cond.shape == (B, T, H, W, 4)
    for t in range(T):
        np.testing.assert_array_equal(cond[:, t, ..., 3:], still.astype(np.float32))
        np.testing.assert_array_equal(cond[:, t, ..., :3], np.where(still, FRAME, 0.0))


@pytest.mark.parametrize("call,match", [
    (lambda: make_condition(VIDEO[0], HOLE[0]), "video"),
    (lambda: make_condition(VIDEO, HOLE[..., 0]), "mask"),
    (lambda: make_condition(VIDEO, np.ones((B, T, H, 3, 1))), "mask"),
    (lambda: make_condition(VIDEO, 2.0 * HOLE), r"mask .*\[0, 1\]"),
    (lambda: split_condition(VIDEO[..., :1]), "cond"),
    (lambda: image_to_video_condition(VIDEO, T), "first_frame"),
    (lambda: image_to_video_condition(FRAME, 0), "num_frames"),
    (lambda: image_to_video_condition(FRAME, 4.0), "num_frames"),
    (lambda: inpainting_condition(VIDEO, HOLE[:, 0]), "known_mask"),
    (lambda: inpainting_condition(VIDEO, -1.0 * HOLE), "known_mask"),
    (lambda: cinemagraph_condition(FRAME, HOLE[:, 0, :3], T), "still_mask"),
    (lambda: cinemagraph_condition(FRAME, HOLE[:, 0], -2), "num_frames"),
])
def test_bad_input_names_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kind", ["i2v", "inpaint", "cinemagraph", "none"])
def test_random_training_condition_per_kind(kind):
    """Each kind, checked with NumPy against the clip it was drawn from."""
    rng = np.random.default_rng(3)
    video = rng.uniform(-1, 1, (16, 4, 12, 10, 3)).astype(np.float32)
    cond = np.asarray(random_training_condition(video, jax.random.key(1), kinds=(kind,)))
    content, m = cond[..., :3], cond[..., 3:]
    assert cond.shape == (16, 4, 12, 10, 4) and set(np.unique(m)) <= {0.0, 1.0}
    np.testing.assert_array_equal(content, np.where(m == 1, content, 0))  # C * M
    if kind == "none":
        assert not m.any()
    if kind == "i2v":
        assert m[:, 0].all() and not m[:, 1:].any()
        np.testing.assert_array_equal(content[:, 0], video[:, 0])
    if kind in ("inpaint", "cinemagraph"):
        # The same hole on every frame; a box covering 1/4 to 3/4 of each side.
        np.testing.assert_array_equal(m, np.broadcast_to(m[:, :1], m.shape))
        hole = m[:, 0, :, :, 0] == 0
        for h in hole:
            rows, cols = np.nonzero(h.any(axis=1))[0], np.nonzero(h.any(axis=0))[0]
            assert h[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one rectangle
            assert 3 <= len(rows) <= 9 and 2 <= len(cols) <= 8
        source = video if kind == "inpaint" else np.repeat(video[:, :1], 4, axis=1)
        np.testing.assert_array_equal(content, source * m)


def test_random_training_condition_mixes_kinds_and_rejects_unknown():
    video = np.zeros((64, 2, 4, 4, 3), np.float32)
    m = np.asarray(random_training_condition(video, jax.random.key(0)))[..., 3]
    known = m.mean(axis=(1, 2, 3))
    assert (known == 0).any() and (known == 0.5).any() and ((known > 0) & (known < 1)).any()
    with pytest.raises(ValueError, match="kinds"):
        random_training_condition(video, jax.random.key(0), kinds=("outpaint",))
