"""A pretrained folder: each stage's EMA weights as safetensors, its train config, a manifest.

    pretrained/moving_shapes/
      manifest.json          {"format": 1, "stages": {name: entry}, "sampling": {...}}
      base.safetensors       flat "unet/<module>/<param>" and "text/..." float32 arrays
      base.config.json       the train.py config that made the weights (ConfigDict JSON)
      ssr.safetensors, ssr.config.json, ...

Each manifest entry names its files, the train stage ('stunet', 'ssr', 't2i', ...), the
SHA-256 of the weights file and what training reached (steps, wall time, loss).
Loading checks the hash, the file's integrity and every array's shape against the
config, and names the file in one-line `ValueError`s. No pickles anywhere.

    write_stage(folder, "base", config, params, training={"steps": 2000})
    write_manifest(folder, {"base": entry, ...}, sampling={...})
    config, params = load_stage(folder, "base")
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import traverse_util

from lumiere_jax import runs

FORMAT = 1
MANIFEST = "manifest.json"


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flat(params: Any) -> dict[str, np.ndarray]:
    flat = traverse_util.flatten_dict(jax.tree.map(np.asarray, params))
    return {"/".join(path): np.array(v, np.float32, order="C") for path, v in flat.items()}


def write_stage(folder: str | os.PathLike, name: str, config: Any, params: Any,
                training: dict | None = None) -> dict:
    """Write `<name>.safetensors` + `<name>.config.json`; return the manifest entry."""
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    weights, config_file = f"{name}.safetensors", f"{name}.config.json"
    save_file(_flat(params), os.path.join(folder, weights), metadata={"stage": config.stage})
    with open(os.path.join(folder, config_file), "w") as f:
        f.write(config.to_json(indent=2, sort_keys=True))
    return dict(stage=config.stage, weights=weights, config=config_file,
                sha256=sha256(os.path.join(folder, weights)), training=training or {})


def write_manifest(folder: str | os.PathLike, stages: dict[str, dict], **extra) -> str:
    """`manifest.json` listing `stages` (entries from `write_stage`) plus `extra` keys."""
    path = os.path.join(folder, MANIFEST)
    with open(path, "w") as f:
        json.dump(dict(format=FORMAT, stages=stages, **extra), f, indent=2, sort_keys=True)
        f.write("\n")
    return path


def read_manifest(folder: str | os.PathLike) -> dict:
    path = os.path.join(os.fspath(folder), MANIFEST)
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} not found: {os.fspath(folder)!r} is not a pretrained folder "
                         "(it needs manifest.json and one .safetensors file per stage)")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path!r} is not readable JSON ({e})") from e
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("stages"), dict):
        raise ValueError(f"{path!r}: expected format {FORMAT} with a 'stages' mapping")
    return manifest


def load_config(folder: str | os.PathLike, name: str) -> ml_collections.ConfigDict:
    """The train config of stage `name` (as it was when the weights were made)."""
    return _read_config(folder, _entry(folder, name))


def _read_config(folder: str | os.PathLike, entry: dict) -> ml_collections.ConfigDict:
    path = os.path.join(os.fspath(folder), entry["config"])
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path!r}: cannot read the stage config ({e})") from e


def load_stage(folder: str | os.PathLike, name: str, verify: bool = True
               ) -> tuple[ml_collections.ConfigDict, dict]:
    """(train config, `{'unet', 'text'}` NumPy weights) of stage `name`.

    `verify`: check the file's SHA-256 against the manifest. Every array must be present
    with the shape the config implies; anything else is a `ValueError` naming the file.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    entry = _entry(folder, name)
    config = _read_config(folder, entry)
    path = os.path.join(os.fspath(folder), entry["weights"])
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} (stage {name!r}) is missing")
    if verify and sha256(path) != entry.get("sha256"):
        raise ValueError(f"{path!r} (stage {name!r}) does not match the SHA-256 in "
                         f"{MANIFEST}: the file is damaged or was replaced")
    try:
        flat = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path!r} (stage {name!r}) is not a readable safetensors file "
                         f"({e})") from e
    expected = {"/".join(p): v.shape for p, v in
                traverse_util.flatten_dict(runs.param_shapes(config)).items()}
    missing = sorted(set(expected) - set(flat))
    unexpected = sorted(set(flat) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(flat) if flat[k].shape != expected[k])
    if missing or unexpected or misshaped:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}" + (" ..." if len(keys) > 3 else "")
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", misshaped)) if keys)
        raise ValueError(f"{path!r} does not fit its config {entry['config']!r} ({detail})")
    params = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
    return config, params


def helper_path(folder: str | os.PathLike, key: str, script: str, verify: bool = True) -> str:
    """The path of the folder's helper file listed under manifest key `key` ('motion_planner',
    'object_reader'), checked against its SHA-256 (`verify`) when present; a ValueError
    naming `script`, which writes it, when the manifest lists none."""
    entry = read_manifest(folder).get(key)
    if not isinstance(entry, dict) or "weights" not in entry:
        raise ValueError(f"{os.path.join(os.fspath(folder), MANIFEST)!r} lists no "
                         f"{key!r} ({script} writes one)")
    path = os.path.join(os.fspath(folder), entry["weights"])
    if verify and os.path.isfile(path) and sha256(path) != entry.get("sha256"):
        raise ValueError(f"{path!r} ({key.replace('_', ' ')}) does not match the SHA-256 in "
                         f"{MANIFEST}: the file is damaged or was replaced")
    return path


def write_helper_entry(folder: str | os.PathLike, key: str, file: str, **info) -> dict:
    """List the folder's helper `file` (already written there) in its manifest under `key`,
    with its SHA-256 and `info` (how it was made); the rest of the manifest is kept.
    Returns the entry (`helper_path` reads it back)."""
    manifest = read_manifest(folder)
    entry = dict(weights=file, sha256=sha256(os.path.join(os.fspath(folder), file)), **info)
    manifest[key] = entry
    write_manifest(folder, manifest["stages"], **{
        k: v for k, v in manifest.items() if k not in ("format", "stages")})
    return entry


def load_motion_planner(folder: str | os.PathLike, verify: bool = True):
    """The folder's `MotionPlanner` (manifest key 'motion_planner': its file and SHA-256)."""
    from lumiere_jax.text.motion_planner import MotionPlanner

    return MotionPlanner.load(helper_path(folder, "motion_planner",
                                          "scripts/fit_motion_planner.py", verify))


READER_WORDS = ("colors", "shapes", "directions")  # an object reader file's metadata


def save_object_reader(reader, path: str | os.PathLike) -> None:
    """An `ObjectReader` -> safetensors (its colour, shape and direction words in the
    metadata)."""
    from safetensors.numpy import save_file

    flat = {"/".join(k): np.asarray(v, np.float32)
            for k, v in traverse_util.flatten_dict(reader.params).items()}
    save_file(flat, os.fspath(path), metadata={name: json.dumps(list(getattr(reader, name)))
                                               for name in READER_WORDS})


def read_object_reader(path: str | os.PathLike):
    """The `ObjectReader` of a file `save_object_reader` wrote; ValueError naming the file
    when it is missing, unreadable, or its weights do not fit the network."""
    from safetensors import SafetensorError, safe_open

    from lumiere_jax.models.object_reader import ObjectReader

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} (object reader) is missing")
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            colors, shapes, directions = (tuple(json.loads(meta[k])) for k in READER_WORDS)
            flat = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path!r} is not an object reader file (safetensors with "
                         f"{', '.join(map(repr, READER_WORDS))} metadata: {e!r})") from e
    blank = ObjectReader(colors, shapes, directions, None)
    expected = jax.eval_shape(lambda: blank.init_params(jax.random.key(0), (16, 8, 8, 3)))
    expected = {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(expected).items()}
    wrong = sorted(k for k in set(expected) | set(flat)
                   if k not in flat or k not in expected or flat[k].shape != expected[k])
    if wrong:
        raise ValueError(f"{path!r} does not fit an object reader of {len(colors)} colours, "
                         f"{len(shapes)} shapes, {len(directions)} directions (missing, unexpected or misshaped: "
                         f"{', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''})")
    params = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
    return ObjectReader(colors, shapes, directions, params)


def load_object_reader(folder: str | os.PathLike, verify: bool = True):
    """The folder's `ObjectReader` (manifest key 'object_reader': its file and SHA-256)."""
    return read_object_reader(helper_path(folder, "object_reader",
                                          "scripts/train_object_reader.py", verify))


def stage_of_kind(folder: str | os.PathLike, kind: str) -> str:
    """The name of the stage of train stage `kind` ('t2i', 'stunet', ...) in a folder: the
    only one, or among several the one named `kind` (a 'style_*' t2i beside 't2i')."""
    names = [n for n, e in read_manifest(folder)["stages"].items() if e.get("stage") == kind]
    if len(names) > 1 and kind in names:
        return kind
    if len(names) != 1:
        raise ValueError(f"{os.fspath(folder)!r} holds {len(names)} stages of kind {kind!r} "
                         f"({names}); expected exactly one")
    return names[0]


CONDITIONED_MODES = ("i2v", "cinemagraph", "inpaint")  # read a <C, M> condition
BASE_STAGES = ("base", "conditional")  # what a conditioned mode can sample from
SAMPLE_MODES = ("t2v", "edit") + CONDITIONED_MODES  # what sample.py's --mode makes


def base_stage_for(folder: str | os.PathLike, mode: str, stage: str | None = None) -> str:
    """The stage to sample `mode` from. Text-to-video and edit: 'base'. The modes that read
    a `<C, M>` condition: `stage` if given, else the manifest's `mode_stages[mode]`, else
    'conditional' when the folder ships one; 'base' is steered by replacement alone."""
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode={mode!r}; valid: {SAMPLE_MODES}")
    manifest = read_manifest(folder)
    if mode not in CONDITIONED_MODES:
        if stage not in (None, "base"):
            raise ValueError(f"base stage {stage!r}: --mode={mode} samples the 'base' stage "
                             f"(a conditional stage is for {', '.join(CONDITIONED_MODES)})")
        return "base"
    shipped = [s for s in BASE_STAGES if s in manifest["stages"]]
    chosen = stage or manifest.get("mode_stages", {}).get(mode) or (
        "conditional" if "conditional" in shipped else "base")
    if chosen not in shipped:
        where = "given" if stage else f"in {os.path.join(os.fspath(folder), MANIFEST)}"
        raise ValueError(f"base stage {chosen!r} for --mode={mode} ({where}): "
                         f"{os.fspath(folder)!r} ships {shipped}")
    return chosen


def sampling_defaults(folder: str | os.PathLike, mode: str = "t2v") -> dict:
    """The folder's sampling defaults for `mode`: the manifest's 'sampling', updated by its
    'mode_sampling'[mode] where it has one (e.g. `{"i2v": {"candidate_score": "motion"}}`:
    one mode picks its candidates another way). Field names are checked by the caller
    (`SamplingConfig`); the mode names and layout here."""
    manifest = read_manifest(folder)
    per_mode = manifest.get("mode_sampling", {})
    where = os.path.join(os.fspath(folder), MANIFEST)
    if not isinstance(per_mode, dict) or not all(isinstance(v, dict) for v in per_mode.values()):
        raise ValueError(f"{where!r}: 'mode_sampling' must map a mode to sampling fields, "
                         f'e.g. {{"i2v": {{"candidate_score": "motion"}}}}')
    unknown = sorted(set(per_mode) - set(SAMPLE_MODES))
    if unknown:
        raise ValueError(f"{where!r}: 'mode_sampling' names the modes {unknown}; valid: "
                         f"{SAMPLE_MODES}")
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode={mode!r}; valid: {SAMPLE_MODES}")
    return {**manifest.get("sampling", {}), **per_mode.get(mode, {})}


def _entry(folder: str | os.PathLike, name: str) -> dict:
    stages = read_manifest(folder)["stages"]
    if name not in stages:
        raise ValueError(f"{os.fspath(folder)!r} has no stage {name!r}; it has {sorted(stages)}")
    return stages[name]
