"""analyze_clip on real moving_shapes test clips agrees with the renderer's stored labels,
and is not fooled by noise, blank or frozen clips; time reversal flips the direction;
blur, colour drift and fading keep the reading."""

import collections

import numpy as np
import pytest
from scipy import ndimage

from lumiere_jax.data.moving_shapes import make_example
from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import BACKGROUNDS, DIRECTIONS
from lumiere_jax.eval import analyze_clip
from lumiere_jax.eval.analyzer import OPPOSITE, STILL

NUM_CLIPS, FRAMES = 256, 16
ATTRS = ("color", "shape", "size", "direction", "speed", "count", "background")


def _accuracy(examples, transform=lambda v: v, relabel=lambda ex: ex):
    hits = collections.defaultdict(list)
    for ex in examples:
        for attr, ok in analyze_clip(transform(ex["video"])).matches(relabel(ex)).items():
            hits[attr].append(ok)
    return {a: float(np.mean(v)) for a, v in hits.items()}


@pytest.fixture(scope="module", params=[32, 64])
def test_split(request):
    """The first 256 records of the moving_shapes test split (seed 0) at 32 or 64 px."""
    px = request.param
    return px, [make_example(0, "test", i, FRAMES, px, px) for i in range(NUM_CLIPS)]


def test_accuracy_on_real_test_clips(test_split):
    px, examples = test_split
    # The sample covers the dataset's variety.
    assert {ex["num_objects"] for ex in examples} == {1, 2}
    assert {ex["background"] for ex in examples} == set(BACKGROUNDS)
    acc = _accuracy(examples)
    print(f"\nanalyzer accuracy, {NUM_CLIPS} test clips at {px} px:",
          {a: round(acc[a], 4) for a in ATTRS})
    for attr in ("color", "direction", "count", "background"):
        assert acc[attr] >= 0.99, (attr, acc)
    assert acc["shape"] >= 0.95, acc
    assert acc["size"] >= 0.95 and acc["speed"] >= 0.95, acc


def test_centroids_follow_the_rendered_path():
    """Single-object clips: centroids on the renderer's start + velocity * t line."""
    errors = []
    for i in range(60):
        ex = make_example(0, "test", i, FRAMES, 32, 32)
        if ex["num_objects"] != 1:
            continue
        track, = analyze_clip(ex["video"]).objects
        truth = (ex["objects"]["start"][0]
                 + np.arange(FRAMES)[:, None] * ex["objects"]["velocity"][0])
        errors.append(np.abs(track.centroids - truth).max())
        assert track.presence == 1.0
        np.testing.assert_allclose(track.velocity, ex["objects"]["velocity"][0], atol=0.05)
    # Triangles' centroid is not their circumcentre: up to r / 2 away (~1 px at 32 px).
    assert len(errors) > 20 and np.median(errors) < 1.0 and max(errors) < 2.5


def test_clip_played_backwards_moves_the_other_way():
    examples = [make_example(0, "test", i, FRAMES, 32, 32) for i in range(60)]

    def flipped(ex):
        objs = dict(ex["objects"], direction=[OPPOSITE[d] for d in ex["objects"]["direction"]])
        return dict(ex, objects=objs)

    forward = _accuracy(examples)
    backward = _accuracy(examples, transform=lambda v: v[::-1], relabel=flipped)
    assert backward["direction"] >= 0.98 and backward["direction"] == pytest.approx(
        forward["direction"], abs=0.02)
    assert OPPOSITE == {"left": "right", "right": "left", "up": "down", "down": "up",
                        "up_left": "down_right", "down_right": "up_left",
                        "up_right": "down_left", "down_left": "up_right"}
    assert set(OPPOSITE) == set(DIRECTIONS)


def test_noise_and_blank_clips_show_no_object():
    rng = np.random.default_rng(0)
    for px in (16, 32, 64):
        for _ in range(6):
            noise = rng.integers(0, 256, (FRAMES, px, px, 3), dtype=np.uint8)
            assert analyze_clip(noise).num_objects == 0
            smooth = ndimage.gaussian_filter(rng.normal(128, 70, (FRAMES, px, px, 3)),
                                             (0, 1.5, 1.5, 0))
            assert analyze_clip(np.clip(smooth, 0, 255).astype(np.uint8)).num_objects == 0
        for name, rgb in BACKGROUNDS.items():
            blank = np.broadcast_to(np.asarray(rgb, np.uint8), (FRAMES, px, px, 3))
            a = analyze_clip(blank)
            assert a.num_objects == 0 and a.objects == () and a.background == name
            assert a.describe() == f"no object on a {name} background"
            assert a.matches("a red circle moving left on a black background") == {
                "color": False, "shape": False, "size": None, "direction": False,
                "speed": None, "count": False, "background": name == "black",
                "color_shape_direction": False}


def test_frozen_clip_shows_objects_that_do_not_move():
    moving = 0
    for i in range(40):
        ex = make_example(0, "test", i, FRAMES, 32, 32)
        still = np.repeat(ex["video"][:1], FRAMES, axis=0)
        a = analyze_clip(still)
        assert a.num_objects >= 1
        moving += sum(o.direction != STILL or o.speed != STILL for o in a.objects)
        assert not a.matches(ex)["direction"]
    assert moving == 0


def _blur(video, sigma):
    out = ndimage.gaussian_filter(video.astype(np.float64), (0, sigma, sigma, 0))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _drift(video, rng):
    """Generated-looking colours: gain, a per-channel and a global shift, pixel noise."""
    v = video * rng.uniform(0.85, 1.1) + rng.uniform(-15, 15, 3) + rng.uniform(-15, 15)
    return np.clip(np.round(v + rng.normal(0, 6, video.shape)), 0, 255).astype(np.uint8)


def _fade(video, rng):
    """Three frames at 45% contrast, as a generated object that fades."""
    bg = np.median(video.reshape(-1, 3), axis=0)
    w = np.ones(len(video))
    w[rng.choice(len(video), 3, replace=False)] = 0.45
    return np.round(bg + (video - bg) * w[:, None, None, None]).astype(np.uint8)


@pytest.mark.parametrize("kind", ["blur", "drift", "blur+drift", "fade"])
def test_imperfect_pixels_still_read(kind):
    rng = np.random.default_rng(1)
    px = 32
    examples = [make_example(0, "test", i, FRAMES, px, px) for i in range(60)]
    transform = {"blur": lambda v: _blur(v, 0.03 * px),
                 "drift": lambda v: _drift(v, rng),
                 "blur+drift": lambda v: _drift(_blur(v, 0.025 * px), rng),
                 "fade": lambda v: _fade(v, rng)}[kind]
    acc = _accuracy(examples, transform)
    for attr in ("color", "direction", "count", "background"):
        assert acc[attr] >= 0.95, (kind, attr, acc)
    assert acc["shape"] >= 0.9, (kind, acc)


def test_matches_judges_only_what_a_short_caption_names():
    ex = next(e for i in range(50) if (e := make_example(0, "test", i, FRAMES, 32, 32))[
        "num_objects"] == 1)
    o = {k: v[0] for k, v in ex["objects"].items()}
    a = analyze_clip(ex["video"])
    phrase = DIRECTIONS[o["direction"]][1]
    short = f"a {o['color']} {o['shape']} moving {phrase}"
    assert a.matches(short) == {"color": True, "shape": True, "size": None,
                                "direction": True, "speed": None, "count": True,
                                "background": None, "color_shape_direction": True}
    other = OPPOSITE[o["direction"]]
    m = a.matches(f"a {o['color']} {o['shape']} moving {DIRECTIONS[other][1]}")
    assert m["direction"] is False and m["color"] and m["color_shape_direction"] is False
    two = f"{short} and a {o['color']} {o['shape']} moving {phrase}"
    assert a.matches(two)["count"] is False
    assert a.pairs(two)[1] is None and a.pairs(short)[0] is a.objects[0]


def test_two_objects_pair_by_colour_in_any_order():
    ex = next(e for i in range(50) if (e := make_example(0, "test", i, FRAMES, 64, 64))[
        "num_objects"] == 2)
    a = analyze_clip(ex["video"])
    swapped = {k: (v[::-1] if isinstance(v, list) else v) for k, v in ex["objects"].items()}
    assert all(a.matches(ex).values())
    assert all(a.matches(dict(ex, objects=swapped)).values())
    assert [t.color for t in a.pairs(ex)] == ex["objects"]["color"]


@pytest.mark.parametrize("video, message", [
    (np.zeros((8, 32, 32, 3), np.float32), "video must be uint8"),
    (np.zeros((8, 32, 32), np.uint8), r"video must be \(T, H, W, 3\)"),
    (np.zeros((3, 32, 32, 3), np.uint8), "video has 3 frames"),
    (np.zeros((8, 12, 32, 3), np.uint8), "video frames are 12x32"),
])
def test_bad_input(video, message):
    with pytest.raises(ValueError, match=message):
        analyze_clip(video)
