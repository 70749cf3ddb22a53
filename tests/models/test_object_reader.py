"""The object reader: prompt parsing, scores against NumPy, safe loading (`pretrained`),
training on renders, the shipped reader on rendered clips."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from lumiere_jax.models.object_reader import MAX_OBJECTS, ObjectReader
from lumiere_jax.pretrained import read_object_reader, save_object_reader
from lumiere_jax.training.object_reader import rendered_examples, soften, train_object_reader

COLORS, SHAPES = ("red", "blue", "green"), ("circle", "square")
FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "pretrained", "moving_shapes")


@pytest.fixture(scope="module")
def reader():
    r = ObjectReader(COLORS, SHAPES, None)
    return ObjectReader(COLORS, SHAPES, r.init_params(jax.random.key(0), (2, 8, 8, 3)))


def test_named_pairs_reads_each_object_phrase(reader):
    prompts = ["a red circle moving right",
               "a small blue square moving quickly up and to the left and a green circle "
               "moving down on a black background",
               "a purple triangle moving left",           # words it does not know: nothing
               "a green moving left"]                    # no shape: nothing
    pairs, present = reader.named_pairs(prompts)
    assert pairs.shape == present.shape == (4, MAX_OBJECTS)
    assert present.tolist() == [[True, False], [True, True], [False, False], [False, False]]
    assert pairs[0, 0] == 0 * 2 + 0 and pairs[1, 0] == 1 * 2 + 1 and pairs[1, 1] == 2 * 2 + 0


def test_scores_sum_the_log_probability_of_each_named_pair(reader):
    clips = jax.random.uniform(jax.random.key(1), (3, 2, 8, 8, 3), minval=-1, maxval=1)
    pairs, present = reader.named_pairs(["a red square", "a blue circle and a green square",
                                         "a cyan blob"])
    out = np.asarray(reader.scores(reader.params, clips, jnp.asarray(pairs),
                                   jnp.asarray(present)))
    logits = np.asarray(reader.logits(reader.params, clips), np.float64)
    log_p = -np.log1p(np.exp(-logits))
    want = [log_p[0, 1], log_p[1, 2] + log_p[1, 5], 0.0]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_logits_are_the_mean_of_per_frame_logits(reader):
    clips = jax.random.uniform(jax.random.key(2), (2, 3, 8, 8, 3), minval=-1, maxval=1)
    whole = reader.logits(reader.params, clips)
    frames = jnp.stack([reader.logits(reader.params, clips[:, i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(whole, frames.mean(0), rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_and_clear_errors(reader, tmp_path):
    path = tmp_path / "reader.safetensors"
    save_object_reader(reader, path)
    back = read_object_reader(path)
    assert back.colors == COLORS and back.shapes == SHAPES
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
    other = ObjectReader(COLORS + ("pink",), SHAPES, reader.params)  # 8 pairs' file, 6 outputs
    save_object_reader(other, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="other.safetensors.*does not fit.*4 colours x 2"):
        read_object_reader(tmp_path / "other.safetensors")


def test_rendered_examples_label_every_object_of_the_scene():
    r = ObjectReader(("red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink"),
                     ("circle", "square", "triangle", "diamond"), None)
    video, labels = rendered_examples(r, np.random.default_rng(0), 40, frames=2, size=16)
    assert video.shape == (40, 2, 16, 16, 3) and video.dtype == np.uint8
    counts = labels.sum(1)
    assert set(counts.tolist()) <= {1.0, 2.0} and 1.0 in counts and 2.0 in counts
    # a labelled colour is on screen (some pixel within 40 levels of it) unless the other
    # object, drawn on top, hides it
    from lumiere_jax.data.moving_shapes import COLORS as RGB
    seen = [(np.abs(clip.astype(int) - np.asarray(RGB[r.colors[i // 4]])).max(-1) < 40).any()
            for clip, row in zip(video, labels) for i in np.flatnonzero(row)]
    assert np.mean(seen) >= 0.9, np.mean(seen)


def test_exact_set_accuracy_counts_renders_whose_object_set_is_named_exactly():
    """The shipped reader, against a loop over clips comparing the set of pairs with
    logit > 0 to the labels' set."""
    from lumiere_jax import pretrained
    from lumiere_jax.training.object_reader import rendered_exact_set_accuracy

    shipped = pretrained.load_object_reader(FOLDER)
    video, labels = rendered_examples(shipped, np.random.default_rng(5), 40)
    logits = np.asarray(shipped.logits(shipped.params, video / 127.5 - 1.0))
    exact = [set(np.flatnonzero(lg > 0)) == set(np.flatnonzero(lb))
             for lg, lb in zip(logits, labels)]
    assert 0 < sum(exact)  # a reading that can be right
    assert rendered_exact_set_accuracy(shipped, 40, seed=5) == pytest.approx(np.mean(exact))


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
    scenes): its likeliest (colour, shape) pair is the scene's in at least 0.9 of them
    (chance 1 in 32)."""
    from lumiere_jax import pretrained
    from lumiere_jax.data.moving_shapes import single_object_clips

    shipped = pretrained.load_object_reader(FOLDER)
    captions, clips = single_object_clips(np.random.default_rng(3), 64, 16, 32)
    logits = np.asarray(jax.jit(shipped.logits)(shipped.params, clips / 127.5 - 1.0))
    pairs, present = shipped.named_pairs(captions)
    assert present[:, 0].all() and not present[:, 1].any()
    right = np.mean(logits.argmax(1) == pairs[:, 0])
    assert right >= 0.9, right


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
    assert pretrained.load_object_reader(tmp_path).colors == COLORS
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="object_reader.safetensors.*object reader.*SHA-256"):
        pretrained.load_object_reader(tmp_path)
    pretrained.write_manifest(tmp_path, {})
    with pytest.raises(ValueError, match="lists no 'object_reader'.*train_object_reader.py"):
        pretrained.load_object_reader(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["stages"] == {}
