"""moving_shapes: declared counts/shapes/dtypes, determinism, and text that matches pixels."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig, make_example
from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (
    BACKGROUNDS, COLORS, DIRECTIONS, SHAPES, SIZES, SPEEDS)

T, H, W, N_TRAIN, N_TEST = 8, 16, 16, 24, 6


def _config(seed=0):
    return MovingShapesConfig(name=f"tiny_seed{seed}", num_frames=T, height=H, width=W,
                              num_train=N_TRAIN, num_test=N_TEST, seed=seed)


def _build(data_dir, seed=0):
    builder = MovingShapes(data_dir=str(data_dir), config=_config(seed))
    builder.download_and_prepare()
    return builder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return [_build(tmp_path_factory.mktemp(f"ms{i}"), seed) for i, seed in enumerate((0, 0, 1))]


def test_declared_counts_shapes_and_dtypes(built):
    builder = built[0]
    assert builder.info.splits["train"].num_examples == N_TRAIN
    assert builder.info.splits["test"].num_examples == N_TEST
    assert builder.info.features["video"].shape == (T, H, W, 3)
    assert builder.info.features["video"].np_dtype == np.uint8
    assert str(builder.info.file_format.value) == "array_record"
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        source = builder.as_data_source(split=split)
        assert len(source) == n
        for ex in source:
            assert ex["video"].shape == (T, H, W, 3) and ex["video"].dtype == np.uint8
            assert isinstance(ex["caption"], bytes) and ex["caption"].startswith(b"a ")
            assert ex["num_objects"] in (1, 2) and len(ex["objects"]["shape"]) == ex["num_objects"]


def test_reloads_from_directory_without_builder_class(built):
    reloaded = tfds.builder_from_directory(built[0].data_dir)
    a, b = reloaded.as_data_source("train"), built[0].as_data_source("train")
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i]["video"], b[i]["video"])


def _records(builder, split):
    source = builder.as_data_source(split=split)
    return sorted((ex["caption"], ex["video"].tobytes()) for ex in source)


def test_same_seed_same_records_other_seed_differs(built):
    for split in ("train", "test"):
        assert _records(built[0], split) == _records(built[1], split)
    assert _records(built[0], "train") != _records(built[2], "train")
    assert _records(built[0], "train") != _records(built[0], "test")


def test_records_are_the_pure_function_of_seed_split_index(built):
    expected = {make_example(0, "test", i, T, H, W)["video"].tobytes() for i in range(N_TEST)}
    got = {ex["video"].tobytes() for ex in built[0].as_data_source("test")}
    assert got == expected


def _color_mask(video, rgb, tol=40):
    return (np.abs(video.astype(int) - np.asarray(rgb)).sum(-1) < tol)


def test_caption_controls_the_pixels():
    """Read every caption word back from the pixels, with an independent measurement."""
    n, checked_two = 200, 0
    size = 48
    for i in range(n):
        ex = make_example(7, "train", i, 12, size, size)
        video, caption, objs = ex["video"], ex["caption"], ex["objects"]
        bg = ex["background"]
        assert caption.endswith(f"on a {bg} background")
        # Corners are background (objects stay inside the frame and never reach a corner cell).
        np.testing.assert_array_equal(video[:, 0, 0], np.tile(BACKGROUNDS[bg], (12, 1)))
        k = len(objs["shape"])
        checked_two += k == 2
        phrases = caption[: -len(f" on a {bg} background")].split(" and a ")
        assert len(phrases) == k
        for j in range(k):
            shape, color, sz = objs["shape"][j], objs["color"][j], objs["size"][j]
            direction, speed = objs["direction"][j], objs["speed"][j]
            motion = f"{SPEEDS[speed][1]} {DIRECTIONS[direction][1]}"
            assert phrases[j].lstrip("a ").startswith(f"{sz} {color} {shape} moving {motion}")
            if k == 2 and j == 0:
                continue  # the first object may be occluded by the second; check only the top one
            mask = _color_mask(video, COLORS[color])  # (T, H, W)
            assert mask[0].sum() > 0
            if k == 1:
                # Size: coverage (pixel = bg + alpha * (color - bg)) summed over the frame vs the
                # closed-form area of the named shape at radius r = frac * size.
                c, b = np.asarray(COLORS[color], float), np.asarray(BACKGROUNDS[bg], float)
                alpha = np.clip((video[0] - b) @ (c - b) / ((c - b) @ (c - b)), 0, 1)
                r = SIZES[sz] * size
                closed = {"circle": np.pi * r**2, "square": (1.7 * r) ** 2,
                          "diamond": 2 * (1.1 * r) ** 2,
                          "triangle": 3 * np.sqrt(3) / 4 * r**2}[shape]
                np.testing.assert_allclose(alpha.sum(), closed, rtol=0.05)
            # Direction and speed: centroid displacement from first to last frame.
            ys, xs = np.nonzero(mask[0])
            ye, xe = np.nonzero(mask[-1])
            disp = np.array([ye.mean() - ys.mean(), xe.mean() - xs.mean()])
            unit = np.asarray(DIRECTIONS[direction][0]) / np.linalg.norm(DIRECTIONS[direction][0])
            travel = SPEEDS[speed][0] * size
            np.testing.assert_allclose(disp, unit * travel, atol=1.0)
    assert checked_two > 40  # both one- and two-object scenes were exercised


def test_attribute_coverage():
    seen = {k: set() for k in ("shape", "color", "size", "direction", "speed")}
    backgrounds = set()
    for i in range(300):
        ex = make_example(3, "train", i, 4, 16, 16)
        backgrounds.add(ex["background"])
        for k in seen:
            seen[k].update(ex["objects"][k])
    assert seen["shape"] == set(SHAPES) and seen["color"] == set(COLORS)
    assert seen["size"] == set(SIZES) and seen["direction"] == set(DIRECTIONS)
    assert seen["speed"] == set(SPEEDS) and backgrounds == set(BACKGROUNDS)


def test_bad_config():
    with pytest.raises(ValueError, match="num_frames"):
        MovingShapesConfig(name="x", num_frames=0)
    with pytest.raises(ValueError, match="height/width"):
        MovingShapesConfig(name="x", height=4, width=4)
    with pytest.raises(ValueError, match="two_object_prob"):
        MovingShapesConfig(name="x", two_object_prob=1.5)
    with pytest.raises(ValueError, match="split"):
        make_example(0, "validation", 0, 4, 16, 16)


def _record(built, split="train"):
    return list(built[0].as_data_source(split=split))


def test_caption_from_labels_without_dropout_is_the_stored_caption(built):
    from lumiere_jax.data.moving_shapes import caption_from_labels
    rng = np.random.default_rng(0)
    for ex in _record(built) + _record(built, "test"):
        assert caption_from_labels(ex, rng, 0.0) == ex["caption"].decode()


def test_caption_from_labels_full_dropout_is_the_short_prompt(built):
    """drop_prob=1: one object, only colour, shape and direction, as a user types it."""
    from lumiere_jax.data.moving_shapes import caption_from_labels
    rng = np.random.default_rng(1)
    for ex in _record(built):
        short = caption_from_labels(ex, rng, 1.0)
        objs = ex["objects"]
        phrases = {f"a {list(COLORS)[c]} {SHAPES[s]} moving {DIRECTIONS[list(DIRECTIONS)[d]][1]}"
                   for c, s, d in zip(objs["color"], objs["shape"], objs["direction"])}
        assert short in phrases


def test_caption_dropout_keeps_every_kept_phrase_true_to_the_labels(built):
    """Dropped parts vary; what stays is a sub-sequence of the stored caption's words, and
    every word is in `caption_vocabulary()`."""
    from lumiere_jax.data.moving_shapes import caption_from_labels, caption_vocabulary
    rng, vocab, lengths = np.random.default_rng(2), set(caption_vocabulary()), set()
    for ex in _record(built) * 4:
        full = ex["caption"].decode().split(" and a ")
        cap = caption_from_labels(ex, rng, 0.5)
        assert set(cap.split()) <= vocab
        lengths.add(len(cap.split()))
        for phrase in cap.split(" on a ")[0].split(" and a "):
            words = phrase.removeprefix("a ").split()
            source = next(f for f in full if words[0] in f.split() and words[1] in f.split())
            it = iter(source.split())
            assert all(w in it for w in words), (phrase, source)  # ordered sub-sequence
    assert len(lengths) > 5  # the dropout really varies the captions


def _opposite(direction):
    dy, dx = DIRECTIONS[direction][0]
    return next(d for d, (vec, _) in DIRECTIONS.items() if vec == (-dy + 0.0, -dx + 0.0))


def _played_backwards(scene, frames):
    """The scene whose clip is `scene`'s played backwards: each object starts where it
    ended, with the opposite velocity and direction."""
    from lumiere_jax.data.moving_shapes import Scene, ShapeObject
    return Scene(tuple(ShapeObject(o.shape, o.color, o.size, _opposite(o.direction), o.speed,
                                   (o.start[0] + o.velocity[0] * (frames - 1),
                                    o.start[1] + o.velocity[1] * (frames - 1)),
                                   (-o.velocity[0], -o.velocity[1])) for o in scene.objects),
                 scene.background)


def test_time_reversal_maps_the_data_onto_itself_and_reverses_the_caption_words():
    """A clip played backwards is the clip of the reversed scene (the renderer's pixels),
    whose caption is `reverse_directions` of the original, and whose starts lie in the
    range `sample_scene` draws for the opposite directions."""
    from lumiere_jax.data.moving_shapes import render_scene, reverse_directions, sample_scene
    rng, seen = np.random.default_rng(3), set()
    for _ in range(40):
        scene = sample_scene(rng, T, H, W)
        back = _played_backwards(scene, T)
        np.testing.assert_allclose(render_scene(back, T, H, W).astype(int),
                                   render_scene(scene, T, H, W)[::-1].astype(int), atol=1)
        assert back.caption() == reverse_directions(scene.caption())
        assert reverse_directions(back.caption()) == scene.caption()
        for obj in back.objects:
            seen.add(obj.direction)
            r, s = SIZES[obj.size] * min(H, W), min(H, W)
            unit = np.asarray(DIRECTIONS[obj.direction][0]) / np.linalg.norm(
                DIRECTIONS[obj.direction][0])
            for start, extent, d in zip(obj.start, (H, W), unit * SPEEDS[obj.speed][0] * s):
                assert r - min(0.0, d) - 1e-4 <= start <= extent - r - max(0.0, d) + 1e-4
    assert seen == set(DIRECTIONS)


def test_time_reversal_pairs_follow_each_clip_with_itself_played_backwards(built):
    """Rows 2i, 2i + 1 of a batch: record i's clip and caption, then the clip reversed in
    time with the caption of the reversed scene (built from the record's labels)."""
    from lumiere_jax.data import make_dataset
    from lumiere_jax.data.moving_shapes import Scene, ShapeObject
    source = built[0].as_data_source(split="train")
    batch = next(iter(make_dataset(source, batch_size=6, shuffle=False,
                                   time_reversal_pairs=True, shard_index=0, shard_count=1)))
    assert batch["video"].shape == (6, T, H, W, 3)
    for i in range(3):
        record = source[i]
        np.testing.assert_array_equal(batch["video"][2 * i], record["video"])
        np.testing.assert_array_equal(batch["video"][2 * i + 1], record["video"][::-1])
        assert batch["caption"][2 * i] == record["caption"].decode()
        objs = record["objects"]
        back = Scene(tuple(
            ShapeObject(SHAPES[objs["shape"][k]], list(COLORS)[objs["color"][k]],
                        list(SIZES)[objs["size"][k]],
                        _opposite(list(DIRECTIONS)[objs["direction"][k]]),
                        list(SPEEDS)[objs["speed"][k]], (0.0, 0.0), (0.0, 0.0))
            for k in range(int(record["num_objects"]))), list(BACKGROUNDS)[record["background"]])
        assert batch["caption"][2 * i + 1] == back.caption()
    with pytest.raises(ValueError, match="even batch_size"):
        make_dataset(source, batch_size=3, time_reversal_pairs=True)
    with pytest.raises(ValueError, match="even batch_size"):
        make_dataset(source, batch_size=4, images=True, time_reversal_pairs=True)


def _centroid_velocity(video, background):
    """(dy, dx) px per frame of a one-object clip, measured from its pixels: the slope of
    the centroid of each frame's coverage |pixel - background| over time."""
    coverage = np.abs(video.astype(np.float32) - np.float32(background)).sum(-1)
    ys, xs = np.mgrid[:video.shape[1], :video.shape[2]] + 0.5
    mass = coverage.sum((1, 2))
    centre = np.stack([(coverage * ys).sum((1, 2)) / mass,
                       (coverage * xs).sum((1, 2)) / mass], -1)
    return np.polyfit(np.arange(len(video)), centre, 1)[0]


@pytest.mark.parametrize("size", [H, H // 2])
def test_motion_labels_are_the_objects_mean_velocity_measured_in_pixels(built, size):
    """`make_dataset(motion_labels=True)`: 'velocity' is the mean object velocity at the
    output size: one-object clips against their pixels' centroid motion, two-object clips
    against the renderer's stored per-object velocities."""
    from lumiere_jax.data import make_dataset
    source = built[0].as_data_source(split="train")
    batch = next(iter(make_dataset(source, batch_size=N_TRAIN, shuffle=False, size=size,
                                   motion_labels=True, shard_index=0, shard_count=1)))
    assert batch["velocity"].shape == (N_TRAIN, 2) and batch["velocity"].dtype == np.float32
    singles = 0
    for i in range(N_TRAIN):
        record = source[i]
        stored = np.mean(record["objects"]["velocity"], 0) * size / H
        np.testing.assert_allclose(batch["velocity"][i], stored, rtol=1e-6)
        if record["num_objects"] == 1:
            singles += 1
            bg = BACKGROUNDS[list(BACKGROUNDS)[record["background"]]]
            np.testing.assert_allclose(_centroid_velocity(batch["video"][i], bg),
                                       batch["velocity"][i], atol=0.08 * size / H + 0.02)
    assert singles >= 5
    # 'tracks': each object's centre in every frame and its radius at the output size
    assert batch["tracks"].shape == (N_TRAIN, 2, 5) and batch["tracks"].dtype == np.float32
    for i in range(N_TRAIN):
        record, tracks = source[i], batch["tracks"][i]
        n = int(record["num_objects"])
        radius = [SIZES[list(SIZES)[z]] * size for z in record["objects"]["size"]]
        np.testing.assert_allclose(tracks[:n, 4], radius, rtol=1e-6)
        assert not tracks[n:].any()
        if n == 1:
            bg = BACKGROUNDS[list(BACKGROUNDS)[record["background"]]]
            coverage = np.abs(batch["video"][i].astype(np.float32) - np.float32(bg)).sum(-1)
            ys, xs = np.mgrid[:size, :size] + 0.5
            mass = coverage.sum((1, 2))
            centre = np.stack([(coverage * ys).sum((1, 2)) / mass,
                               (coverage * xs).sum((1, 2)) / mass], -1)
            want = tracks[0, 0:2] + np.arange(len(centre))[:, None] * tracks[0, 2:4]
            np.testing.assert_allclose(centre, want, atol=0.25 * size / H + 0.15)
    with pytest.raises(ValueError, match="motion_labels .*images=False"):
        make_dataset(source, batch_size=2, images=True, motion_labels=True)


def test_single_object_clips_are_the_scenes_of_the_generator_rendered_and_captioned():
    """Against the same draws made one scene at a time: one object each, its short caption
    (colour, shape, direction) and its rendered frames; the generator is left where the
    draws end (callers go on drawing from it)."""
    from lumiere_jax.data.moving_shapes import (DIRECTIONS, render_scene, sample_scene,
                                                single_object_clips)

    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    captions, clips = single_object_clips(rng, 3, 4, 16)
    assert clips.shape == (3, 4, 16, 16, 3) and clips.dtype == np.uint8
    for caption, clip in zip(captions, clips):
        scene = sample_scene(ref, 4, 16, 16, two_object_prob=0.0)
        (o,) = scene.objects
        assert caption == f"a {o.color} {o.shape} moving {DIRECTIONS[o.direction][1]}"
        np.testing.assert_array_equal(clip, render_scene(scene, 4, 16, 16))
    assert rng.random() == ref.random()
