"""Captions <-> labels: every stored caption parses back to its record's labels, shortened
captions keep exactly the parts they name, ClassLabel ids and names agree."""

import itertools

import numpy as np
import pytest

from lumiere_jax.data.moving_shapes import make_example
from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (COLORS, DIRECTIONS,
                                                                          SHAPES, SIZES, SPEEDS)
from lumiere_jax.eval.captions import (format_caption, normalize_labels, parse_caption,
                                       short_caption)

EXAMPLES = [make_example(3, split, i, 4, 16, 16) for split in ("train", "test")
            for i in range(150)]


def test_every_stored_caption_parses_to_its_labels():
    for ex in EXAMPLES:
        labels = normalize_labels(ex)
        assert parse_caption(ex["caption"]) == labels, ex["caption"]
        assert format_caption(labels) == ex["caption"]
        assert len(labels["objects"]) == ex["num_objects"]


def test_class_label_ids_read_as_names():
    # A decoded TFDS record stores ClassLabel ids in vocabulary order, captions as bytes.
    ex = EXAMPLES[0]
    vocab = {"shape": SHAPES, "color": list(COLORS), "size": list(SIZES),
             "direction": list(DIRECTIONS), "speed": list(SPEEDS)}
    record = {"background": ["black", "gray", "white"].index(ex["background"]),
              "num_objects": np.int32(ex["num_objects"]),
              "caption": ex["caption"].encode(),
              "objects": {a: np.asarray([vocab[a].index(v) for v in ex["objects"][a]])
                          for a in vocab}}
    assert normalize_labels(record) == normalize_labels(ex)


def test_short_and_partial_captions_name_only_their_parts():
    rng = np.random.default_rng(0)
    optional = ("size", "speed")
    for ex in EXAMPLES[:80]:
        labels = normalize_labels(ex)
        keep_bg = bool(rng.random() < 0.5)
        objs = labels["objects"][:1 + int(rng.random() < 0.5)]
        dropped = [{a: v for a, v in o.items() if a not in optional or rng.random() < 0.5}
                   for o in objs]
        partial = {"objects": dropped, **({"background": labels["background"]} if keep_bg else {})}
        assert parse_caption(format_caption(partial)) == partial, format_caption(partial)


def test_short_caption_is_colour_shape_direction_of_the_largest_object():
    for ex in EXAMPLES:
        sizes = ex["objects"]["size"]
        i = sizes.index("large") if "large" in sizes else 0
        want = (f"a {ex['objects']['color'][i]} {ex['objects']['shape'][i]} moving "
                f"{DIRECTIONS[ex['objects']['direction'][i]][1]}")
        assert short_caption(ex) == want


@pytest.mark.parametrize("caption, want", [
    ("A red circle, moving right.", {"objects": [
        {"color": "red", "shape": "circle", "direction": "right"}]}),
    ("a blue square moving up and to the left and a pink diamond moving down on grey",
     {"background": "gray", "objects": [
         {"color": "blue", "shape": "square", "direction": "up_left"},
         {"color": "pink", "shape": "diamond", "direction": "down"}]}),
    ("a large green triangle moving fast down_right on the white background",
     {"background": "white", "objects": [
         {"size": "large", "color": "green", "shape": "triangle", "speed": "fast",
          "direction": "down_right"}]}),
    ("something else entirely", {"objects": []}),
])
def test_free_form_captions(caption, want):
    assert parse_caption(caption) == want


def test_every_direction_phrase_round_trips():
    for (name, (_, phrase)), (other, (_, phrase2)) in itertools.product(DIRECTIONS.items(),
                                                                        repeat=2):
        cap = f"a red circle moving {phrase} and a blue square moving {phrase2}"
        got = parse_caption(cap)["objects"]
        assert [o["direction"] for o in got] == [name, other]


def test_bad_labels_are_value_errors():
    with pytest.raises(ValueError, match="caption"):
        parse_caption(b"a red circle")
    with pytest.raises(ValueError, match="objects"):
        normalize_labels({"background": "black"})
    with pytest.raises(ValueError, match="color"):
        normalize_labels({"objects": [{"color": "mauve"}]})
    with pytest.raises(ValueError, match="shape"):
        normalize_labels({"objects": {"shape": [7], "color": [0]}, "num_objects": 1})
