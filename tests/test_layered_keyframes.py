"""Keyframes of a prompt that names several objects, chosen together (`keyframes.plan_layered`):
the ways to choose, the score of each way against a NumPy reference, and on the shipped
object reader, that two objects whose planned paths cover each other are not chosen."""

import dataclasses
import itertools

import jax
import numpy as np
import pytest

from lumiere_jax.data.moving_shapes.scenes import Scene, ShapeObject, render_scene
from lumiere_jax.keyframes import layered_choices, plan_layered
from lumiere_jax.models.object_reader import ObjectReader


def test_layered_choices_are_each_phrases_best_stills_in_every_stacking_order():
    """Two present phrases: every pair of their top-2 stills (by score), each in both
    orders (8 ways); one present phrase (the second padded): its best still alone, in the
    given order, repeated to fill the 8."""
    still = np.array([[[0.0, 3.0, 1.0, 2.0], [5.0, -1.0, 4.0, 0.0]],
                      [[1.0, 0.0, 7.0, 2.0], [9.0, 9.0, 9.0, 9.0]]])
    present = np.array([[True, True], [True, False]])
    picks, order = layered_choices(still, present, top=2)
    assert picks.shape == order.shape == (2, 8, 2)
    ways = {(tuple(p), tuple(o)) for p, o in zip(picks[0].tolist(), order[0].tolist())}
    assert ways == {((a, b), o) for a in (1, 3) for b in (0, 2) for o in ((0, 1), (1, 0))}
    assert len(ways) == 8
    assert (picks[1, :, 0] == 2).all() and (order[1] == [0, 1]).all()


def _carried(image, velocity, num_frames):
    """NumPy: frame k is `image` moved by k * velocity whole pixels (integer velocity), the
    uncovered pixels copied from the nearest edge."""
    h, w = image.shape[:2]
    frames = []
    for k in range(num_frames):
        rows = np.clip(np.arange(h) - k * velocity[0], 0, h - 1)
        cols = np.clip(np.arange(w) - k * velocity[1], 0, w - 1)
        frames.append(image[rows][:, cols])
    return np.stack(frames)


def _layered(clips):
    """NumPy: clip 0, then each later clip's pixels further than 0.7 (summed |RGB|) from the
    median of its border pixels over all frames, on top."""
    out = clips[0].copy()
    for clip in clips[1:]:
        border = np.concatenate([clip[:, 0], clip[:, -1], clip[:, 1:-1, 0], clip[:, 1:-1, -1]], 1)
        front = np.abs(clip - np.median(border.reshape(-1, 3), axis=0)).sum(-1) > 0.7
        out = np.where(front[..., None], clip, out)
    return out


@pytest.mark.parametrize("seed", [2, 5])
def test_plan_layered_keeps_the_way_whose_stills_and_planned_clip_score_highest(seed):
    """Every way (two phrases: both top-2 stills of each, both orders) is played in NumPy:
    each keyframe carried along its phrase's velocity, the clips layered in that order,
    the reader's logits of that clip turned into log p of the whole prompt's terms (each
    object's colour-shape and colour-direction, one object of each colour), plus the two
    stills' scores. The plan keeps the best way; a one-phrase prompt keeps its best still.
    Seed 2: the planned clip changes the pair the stills alone would keep; seed 5: the
    reversed stacking order wins."""
    blank = ObjectReader(("red", "blue"), ("circle", "square"), ("left", "right"), None)
    reader = dataclasses.replace(blank, params=blank.init_params(jax.random.key(0),
                                                                 (10, 8, 8, 3)))
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (2, 2, 3, 8, 8, 3)).astype(np.float32)
    still = rng.normal(size=(2, 2, 3)).astype(np.float32)
    velocity = np.array([[[0, 1], [1, 0]], [[0, -1], [0, -1]]], np.float32)
    present = np.array([[True, True], [True, False]])
    prompts = ["a red circle moving right and a blue square moving left", "a blue circle"]
    pick, order = plan_layered(reader, images, still, velocity, present, prompts, 10, top=2)

    log_p = lambda z: -np.log1p(np.exp(-z))
    # outputs: pairs colour * 2 + shape (0-3), motions 4 + colour * 2 + direction, repeats 8 +
    # colour: red circle, red right, one red; blue square, blue left, one blue
    terms = [(0, 1.0), (5, 1.0), (8, -1.0), (3, 1.0), (6, 1.0), (9, -1.0)]
    totals = {}
    for a, b in itertools.product(np.argsort(-still[0, 0])[:2], np.argsort(-still[0, 1])[:2]):
        clips = [_carried(images[0, 0, a], velocity[0, 0].astype(int), 10),
                 _carried(images[0, 1, b], velocity[0, 1].astype(int), 10)]
        for stack in ((0, 1), (1, 0)):
            clip = _layered([clips[i] for i in stack])
            logits = np.asarray(reader.logits(reader.params, clip[None]), np.float64)[0]
            totals[(a, b), stack] = (sum(log_p(w * logits[i]) for i, w in terms)
                                     + still[0, 0, a] + still[0, 1, b])
    (best, stack), top_score = max(totals.items(), key=lambda kv: kv[1])
    runner_up = sorted(totals.values())[-2]
    assert top_score - runner_up > 1e-3, totals  # not a tie
    assert tuple(pick[0]) == best and tuple(order[0]) == stack
    if seed == 2:
        assert best != tuple(still[0].argmax(1))
    else:
        assert stack == (1, 0)
    assert pick[1, 0] == still[1, 0].argmax() and tuple(order[1]) == (0, 1)
    with pytest.raises(ValueError, match="at least 9 frames"):
        plan_layered(reader, images, still, velocity, present, prompts, 8)


def _still(objects, background="gray"):
    """One rendered 32 px frame of `(color, shape, size, (y, x))` objects, in [-1, 1]."""
    scene = Scene(tuple(ShapeObject(shape, color, size, "right", "fast", start, (0.0, 0.0))
                        for color, shape, size, start in objects), background)
    return render_scene(scene, 1, 32, 32)[0].astype(np.float32) / 127.5 - 1.0


def test_plan_layered_on_the_shipped_reader_keeps_objects_apart():
    """Two large squares moving right together: the blue one's first keyframe sits where
    the red one is (whichever is on top, the other is hidden in every frame), its second
    keyframe in another row. With equal still scores the shipped reader's plan keeps the
    second; the same red keyframe either way."""
    from lumiere_jax import pretrained

    reader = pretrained.load_object_reader("pretrained/moving_shapes")
    red = _still([("red", "square", "large", (9.0, 8.0))])
    blue_on_red = _still([("blue", "square", "large", (9.0, 8.0))])
    blue_apart = _still([("blue", "square", "large", (23.0, 8.0))])
    images = np.stack([np.stack([red, red]), np.stack([blue_on_red, blue_apart])])[None]
    prompt = ("a large red square moving quickly right and a large blue square moving "
              "quickly right on a gray background")
    pick, _ = plan_layered(reader, images, np.zeros((1, 2, 2), np.float32),
                           np.array([[[0.0, 1.0], [0.0, 1.0]]], np.float32),
                           np.ones((1, 2), bool), [prompt], 16)
    assert pick[0, 1] == 1, pick
