"""The object reader: prompt parsing, scores against NumPy, the frame and triplet means, safe
loading (`pretrained`), training on renders, the shipped reader on rendered clips."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from lumiere_jax.models.object_reader import MAX_OBJECTS, TERMS_PER_OBJECT, ObjectReader
from lumiere_jax.pretrained import read_object_reader, save_object_reader
from lumiere_jax.training.object_reader import (blank_reader, rendered_examples, soften,
                                                train_object_reader, training_scene)

COLORS, SHAPES = ("red", "blue", "green"), ("circle", "square")
DIRECTIONS = ("left", "right", "up and to the left")
FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "pretrained", "moving_shapes")


@pytest.fixture(scope="module")
def reader():
    r = ObjectReader(COLORS, SHAPES, DIRECTIONS, None)
    return ObjectReader(COLORS, SHAPES, DIRECTIONS, r.init_params(jax.random.key(0),
                                                                  (10, 8, 8, 3)))


def test_named_terms_read_each_object_phrase(reader):
    """Output layout: 6 pairs (colour * 2 + shape), 9 motions (6 + colour * 3 + direction),
    3 repeats (15 + colour)."""
    prompts = ["a red circle moving right",
               "a small blue square moving quickly up and to the left and a green circle "
               "moving left on a black background",
               "a purple triangle moving left",           # words it does not know: nothing
               "a green moving down",                     # colour only: one green object
               "a red circle and a red square"]           # red twice: no repeat term
    index, want = reader.named_terms(prompts)
    assert index.shape == want.shape == (5, MAX_OBJECTS * TERMS_PER_OBJECT)
    terms = [sorted((int(i), float(w)) for i, w in zip(ix, wt) if w) for ix, wt in zip(index, want)]
    assert terms[0] == [(0, 1.0), (6 + 0 * 3 + 1, 1.0), (15, -1.0)]
    assert terms[1] == sorted([(1 * 2 + 1, 1.0), (6 + 1 * 3 + 2, 1.0), (16, -1.0),
                               (2 * 2 + 0, 1.0), (6 + 2 * 3 + 0, 1.0), (17, -1.0)])
    assert terms[2] == [] and terms[3] == [(17, -1.0)]
    assert terms[4] == [(0, 1.0), (1, 1.0)]


def test_scores_sum_the_log_probability_of_each_term(reader):
    clips = jax.random.uniform(jax.random.key(1), (3, 10, 8, 8, 3), minval=-1, maxval=1)
    index, want = reader.named_terms(["a red square", "a blue circle moving left and a green "
                                      "square", "a cyan blob"])
    out = np.asarray(reader.scores(reader.params, clips, jnp.asarray(index), jnp.asarray(want)))
    logits = np.asarray(reader.logits(reader.params, clips), np.float64)
    log_p = lambda z: -np.log1p(np.exp(-z))
    expected = [log_p(logits[0, 1]) + log_p(-logits[0, 15]),
                log_p(logits[1, 2]) + log_p(logits[1, 6 + 3]) + log_p(-logits[1, 16])
                + log_p(logits[1, 5]) + log_p(-logits[1, 17]), 0.0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_logits_average_frames_and_triplets(reader):
    """Pairs and repeats: the mean over frames of the network on each frame alone; motions:
    the mean over starts t of the network on frames (t, t+4, t+8) alone."""
    clips = jax.random.uniform(jax.random.key(2), (2, 10, 8, 8, 3), minval=-1, maxval=1)
    whole = np.asarray(reader.logits(reader.params, clips))
    net = reader.net.apply
    per_frame = np.stack([np.asarray(net({"params": reader.params}, clips, np.array([t]),
                                         np.array([0]))) for t in range(10)])
    per_start = np.stack([np.asarray(net({"params": reader.params}, clips, np.array([0]),
                                         np.array([t]))) for t in range(2)])
    frame_outputs = np.r_[0:6, 15:18]
    np.testing.assert_allclose(whole[:, frame_outputs], per_frame.mean(0)[:, frame_outputs],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(whole[:, 6:15], per_start.mean(0)[:, 6:15], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="at least 9 frames.*got 8"):
        reader.logits(reader.params, clips[:, :8])


def test_save_load_round_trip_and_clear_errors(reader, tmp_path):
    path = tmp_path / "reader.safetensors"
    save_object_reader(reader, path)
    back = read_object_reader(path)
    assert back.colors == COLORS and back.shapes == SHAPES and back.directions == DIRECTIONS
    saved, loaded = (traverse_util.flatten_dict(p) for p in (reader.params, back.params))
    assert set(saved) == set(loaded)
    for p in saved:
        np.testing.assert_array_equal(saved[p], loaded[p], err_msg=str(p))
    with pytest.raises(ValueError, match="missing"):
        read_object_reader(tmp_path / "nope.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated.safetensors.*not an object reader file"):
        read_object_reader(truncated)
    other = ObjectReader(COLORS + ("pink",), SHAPES, DIRECTIONS, reader.params)  # 3 colours' weights
    save_object_reader(other, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="other.safetensors.*does not fit.*4 colours, 2 shapes"):
        read_object_reader(tmp_path / "other.safetensors")


def test_rendered_examples_label_every_object_of_the_scene():
    """Labels against the scene's own objects, re-drawn here with the same generator: each
    object's pair, each moving object's direction (the sign of its velocity), the colours
    seen twice; each labelled colour is on screen unless an object drawn later hides it."""
    from lumiere_jax.data.moving_shapes import COLORS as RGB
    from lumiere_jax.data.moving_shapes import DIRECTIONS as UNITS

    r = blank_reader()
    video, labels = rendered_examples(r, np.random.default_rng(0), 60, size=16,
                                      repeat_prob=0.5, still_prob=0.3)
    assert video.shape == (60, 16, 16, 16, 3) and video.dtype == np.uint8
    rng, seen, still, twice = np.random.default_rng(0), [], 0, 0
    groups = r.groups
    for clip, row in zip(video, labels):
        scene = training_scene(rng, 16, 16, repeat_prob=0.5, still_prob=0.3)
        colors = [o.color for o in scene.objects]
        assert set(np.flatnonzero(row[groups["pairs"]])) == {
            r.colors.index(o.color) * 4 + r.shapes.index(o.shape) for o in scene.objects}
        moving = set()
        for o in scene.objects:
            if o.velocity == (0.0, 0.0):
                still += 1
                continue
            name = next(n for n, (unit, _) in UNITS.items()
                        if tuple(np.sign(unit)) == tuple(np.sign(o.velocity)))
            moving.add(r.colors.index(o.color) * 8 + list(UNITS).index(name))
        assert set(np.flatnonzero(row[groups["motions"]])) == moving
        assert set(np.flatnonzero(row[groups["repeats"]])) == {
            r.colors.index(c) for c in colors if colors.count(c) > 1}
        twice += len(set(colors)) < len(colors)
        seen += [(np.abs(clip.astype(int) - np.asarray(RGB[c])).max(-1) < 40).any()
                 for c in colors]
    assert still > 0 and twice > 0
    assert np.mean(seen) >= 0.9, np.mean(seen)


def test_exact_set_accuracy_counts_renders_whose_sets_are_named_exactly():
    """The shipped reader, against a loop over clips comparing, per output group, the set
    of outputs with logit > 0 to the labels' set."""
    from lumiere_jax import pretrained
    from lumiere_jax.training.object_reader import rendered_exact_set_accuracy

    shipped = pretrained.load_object_reader(FOLDER)
    video, labels = rendered_examples(shipped, np.random.default_rng(5), 40)
    logits = np.asarray(shipped.logits(shipped.params, video / 127.5 - 1.0))
    accuracy = rendered_exact_set_accuracy(shipped, 40, seed=5)
    assert set(accuracy) == {"pairs", "motions", "repeats"}
    for name, group in shipped.groups.items():
        exact = [set(np.flatnonzero(lg[group] > 0)) == set(np.flatnonzero(lb[group]))
                 for lg, lb in zip(logits, labels)]
        assert 0 < sum(exact)  # a reading that can be right
        assert accuracy[name] == pytest.approx(np.mean(exact)), name


def test_soften_keeps_constant_clips_without_noise_and_adds_bounded_noise():
    x = jnp.full((4, 2, 8, 8, 3), 0.3)
    out = soften(jax.random.key(0), x, max_noise=0.0)
    np.testing.assert_allclose(out, x, atol=1e-6)  # a blur of a constant is that constant
    noisy = np.asarray(soften(jax.random.key(0), x, max_noise=0.15)) - 0.3
    assert 0.0 < noisy.std() < 0.15


def test_a_short_training_run_lowers_the_loss_and_rejects_bad_sizes():
    _, short = train_object_reader(num_clips=64, steps=10, batch=8, size=16)
    _, longer = train_object_reader(num_clips=64, steps=120, batch=8, size=16)
    assert longer["final_loss"] < short["final_loss"], (short, longer)
    with pytest.raises(ValueError, match="steps=0"):
        train_object_reader(steps=0)


def test_the_shipped_reader_reads_rendered_clips():
    """pretrained/moving_shapes' reader on 64 rendered one-object clips (labels from the
    scenes): its likeliest (colour, shape) pair is the scene's, and its likeliest direction
    for that colour the scene's, each in at least 0.9 of them (chance 1 in 32 and 1 in 8)."""
    from lumiere_jax import pretrained
    from lumiere_jax.data.moving_shapes import single_object_clips

    shipped = pretrained.load_object_reader(FOLDER)
    captions, clips = single_object_clips(np.random.default_rng(3), 64, 16, 32)
    logits = np.asarray(jax.jit(shipped.logits)(shipped.params, clips / 127.5 - 1.0))
    index, want = shipped.named_terms(captions)
    assert (want[:, :3] == [1, 1, -1]).all() and not want[:, 3:].any()
    groups = shipped.groups
    pair = np.mean(logits[:, groups["pairs"]].argmax(1) == index[:, 0])
    n_dir = len(shipped.directions)
    color = (index[:, 1] - shipped.num_pairs) // n_dir
    own = np.stack([logits[i, shipped.num_pairs + c * n_dir:][:n_dir]
                    for i, c in enumerate(color)])
    direction = np.mean(own.argmax(1) == (index[:, 1] - shipped.num_pairs) % n_dir)
    assert pair >= 0.9 and direction >= 0.9, (pair, direction)


def test_a_damaged_or_unlisted_reader_in_a_folder_is_named(reader, tmp_path):
    """`pretrained.load_object_reader`: the manifest's SHA-256 catches a changed file; a
    manifest without the entry names the script that writes one."""
    import json

    from lumiere_jax import pretrained

    path = tmp_path / "object_reader.safetensors"
    save_object_reader(reader, path)
    pretrained.write_manifest(tmp_path, {}, sampling={"base_steps": 8})
    entry = pretrained.write_helper_entry(tmp_path, "object_reader", path.name, steps=3)
    assert entry == dict(weights=path.name, sha256=pretrained.sha256(path), steps=3)
    kept = json.loads((tmp_path / "manifest.json").read_text())
    assert kept["sampling"] == {"base_steps": 8} and kept["object_reader"] == entry
    assert pretrained.load_object_reader(tmp_path).directions == DIRECTIONS
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="object_reader.safetensors.*object reader.*SHA-256"):
        pretrained.load_object_reader(tmp_path)
    pretrained.write_manifest(tmp_path, {})
    with pytest.raises(ValueError, match="lists no 'object_reader'.*train_object_reader.py"):
        pretrained.load_object_reader(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["stages"] == {}
