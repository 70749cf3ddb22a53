"""moving_shapes captions and labels <-> one normalized form the analyzer can judge.

    parse_caption("a red circle moving right and a small blue square moving slowly up "
                  "and to the left on a gray background")
    -> {'background': 'gray', 'objects': [{'color': 'red', 'shape': 'circle',
        'direction': 'right'}, {'size': 'small', 'color': 'blue', 'shape': 'square',
        'speed': 'slow', 'direction': 'up_left'}]}

An attribute a caption does not name is absent from its dict (and is not judged).
`normalize_labels` turns a stored record (`make_example` output or a decoded TFDS
record, whose ClassLabels are ids) into the same form with every attribute present.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (BACKGROUNDS, COLORS,
                                                                          DIRECTIONS, SHAPES,
                                                                          SIZES, SPEEDS)

ATTRIBUTES = ("color", "shape", "size", "direction", "speed")
VOCAB = {"color": tuple(COLORS), "shape": SHAPES, "size": tuple(SIZES),
         "direction": tuple(DIRECTIONS), "speed": tuple(SPEEDS)}
BACKGROUND_NAMES = tuple(BACKGROUNDS)

# Caption words -> label names. Directions: the caption phrase, the label ('up_left'), and
# the label with a space ('up left').
_SPEED_WORDS = {"slowly": "slow", "slow": "slow", "quickly": "fast", "fast": "fast"}
_DIRECTION_PHRASES = {}
for _name, (_, _phrase) in DIRECTIONS.items():
    _DIRECTION_PHRASES[_phrase] = _name
    _DIRECTION_PHRASES[_name.replace("_", " ")] = _name
    _DIRECTION_PHRASES[_name] = _name
# Longest phrases first, so "up and to the left" wins over "up" and "left".
_DIRECTION_RE = re.compile(r"\b(" + "|".join(
    re.escape(p) for p in sorted(_DIRECTION_PHRASES, key=len, reverse=True)) + r")\b")
_BACKGROUND_RE = re.compile(r"\bon (?:an? |the )?(black|gray|grey|white)(?: background)?\b")
# " and " joins objects, except inside "up and to the left".
_OBJECT_SPLIT_RE = re.compile(r" and (?!to the )")


def parse_caption(caption: str) -> dict[str, Any]:
    """A caption -> {'background'?: str, 'objects': [ {attribute: label name} ]}.

    Accepts the dataset's captions and shortened ones ("a red circle moving right"); case,
    punctuation and extra spaces are ignored. Object phrases naming no attribute are
    dropped. ValueError if `caption` is not a string.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}.")
    text = " ".join(re.sub(r"[^a-z_ ]", " ", caption.lower()).split())
    out: dict[str, Any] = {}
    bg = _BACKGROUND_RE.search(text)
    if bg:
        out["background"] = "gray" if bg.group(1) == "grey" else bg.group(1)
        text = (text[:bg.start()] + text[bg.end():]).strip()
    objects = []
    for part in _OBJECT_SPLIT_RE.split(text):
        obj = {}
        m = _DIRECTION_RE.search(part)
        if m:
            obj["direction"] = _DIRECTION_PHRASES[m.group(1)]
            part = part[:m.start()] + part[m.end():]
        for word in part.split():
            for attr in ("color", "shape", "size"):
                if word in VOCAB[attr]:
                    obj.setdefault(attr, word)
            if word in _SPEED_WORDS:
                obj.setdefault("speed", _SPEED_WORDS[word])
        if obj:
            objects.append(obj)
    out["objects"] = objects
    return out


def _name(value: Any, names: tuple[str, ...], field: str) -> str:
    """A label given as a name, bytes or a ClassLabel id -> its name."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"labels {field}={value!r} is not one of {names}.")
        return value
    if isinstance(value, (int, np.integer)) and 0 <= int(value) < len(names):
        return names[int(value)]
    raise ValueError(f"labels {field}={value!r} is neither a name in {names} nor an id "
                     f"in [0, {len(names)}).")


def normalize_labels(labels: dict[str, Any]) -> dict[str, Any]:
    """A stored record's labels -> the `parse_caption` form with every attribute present.

    labels: {'background': name | id, 'objects': {attribute: [name | id per object]} or
    [{attribute: name | id}], optional 'num_objects'} (extra keys such as 'video' are
    ignored). A dict that already is in `parse_caption` form is returned normalized.
    """
    if not isinstance(labels, dict) or "objects" not in labels:
        raise ValueError("labels must be a dict with an 'objects' entry (a moving_shapes "
                         f"record or a parse_caption result), got {type(labels).__name__}"
                         f"{' keys ' + str(sorted(labels)) if isinstance(labels, dict) else ''}.")
    objs = labels["objects"]
    if isinstance(objs, dict):  # columns: {attribute: [value per object]}
        n = int(labels.get("num_objects", len(objs.get("color", []))))
        objs = [{a: objs[a][i] for a in ATTRIBUTES if a in objs} for i in range(n)]
    out: dict[str, Any] = {"objects": [
        {a: _name(o[a], VOCAB[a], a) for a in ATTRIBUTES if a in o} for o in objs]}
    if "background" in labels:
        out["background"] = _name(labels["background"], BACKGROUND_NAMES, "background")
    return out


def format_caption(labels: dict[str, Any]) -> str:
    """The normalized form back to a caption in the dataset's wording (named parts only)."""
    phrases = []
    for o in labels["objects"]:
        words = ["a"] + [o[a] for a in ("size", "color", "shape") if a in o]
        if "direction" in o or "speed" in o:
            words.append("moving")
        if "speed" in o:
            words.append(SPEEDS[o["speed"]][1])
        if "direction" in o:
            words.append(DIRECTIONS[o["direction"]][1])
        phrases.append(" ".join(words))
    text = " and ".join(phrases)
    if "background" in labels:
        text += f" on a {labels['background']} background"
    return text


def short_caption(labels: dict[str, Any]) -> str:
    """"a <color> <shape> moving <direction>" of the largest object (the first on ties)."""
    objs = normalize_labels(labels)["objects"]
    if not objs:
        raise ValueError("labels hold no objects.")
    sizes = [VOCAB["size"].index(o["size"]) if "size" in o else 0 for o in objs]
    o = objs[int(np.argmax(sizes))]  # argmax: the first of equal sizes
    return format_caption({"objects": [{a: o[a] for a in ("color", "shape", "direction")}]})
