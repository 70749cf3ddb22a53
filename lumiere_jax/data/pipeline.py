"""grain input pipeline over TFDS `array_record` data sources (no TensorFlow).

    source = load_source("moving_shapes/f16_s32", "train", data_dir=d)
    ds = make_dataset(source, batch_size=4, seed=0)     # sharded by jax.process_index()
    it = iter(ds)
    batch = next(it)       # {'video': uint8 (B, T, H, W, 3), 'caption': str (B,)}
    state = it.get_state() # JSON-able dict; store it with the checkpoint
    it.set_state(state)    # resumes with exactly the batches that would have come next

Order of operations: shard (this process's slice of record indices, `shard_index::
shard_count`) -> shuffle (per-epoch permutation from `seed`) -> repeat -> per-example map
(random temporal crop / frame pick from a per-index RNG, center crop + resize) -> batch ->
threaded prefetch. Every random choice is a function of (seed, position in the stream),
so the stream is identical across runs, thread counts and restores.

`images=True` yields T2I batches from the same datasets: `{'image': uint8 (B, H, W, 3),
'caption'}` with one random frame per clip.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from einops import rearrange
import grain
import numpy as np
import tensorflow_datasets as tfds

from lumiere_jax.data import video_io

# captions (B,) -> (text states (B, L, D), text mask (B, L)), e.g. EmbeddingCache.lookup.
EmbeddingLookup = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """Which features of a TFDS dataset hold the video and the caption.

    video: a (T, H, W, 3) uint8 feature (`Tensor` or `Video`).
    caption: a `Text` feature, a `ClassLabel` (its names become captions, CamelCase split:
      "ApplyEyeMakeup" -> "apply eye makeup"), or None for empty captions.
    """

    video: str = "video"
    caption: str | None = "caption"


# Feature maps for known TFDS video datasets (`tfds build ucf101 --file_format=array_record`).
KNOWN_FEATURE_MAPS = {
    "ucf101": FeatureMap(video="video", caption="label"),
    "moving_shapes": FeatureMap(),
    "video_folder": FeatureMap(),
}


def load_source(
    name_or_dir: str | os.PathLike,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    builder_kwargs: dict[str, Any] | None = None,
) -> Any:
    """A random-access TFDS data source of an `array_record` dataset.

    name_or_dir: a built dataset directory (holding dataset_info.json, e.g.
      `<data_dir>/moving_shapes/f16_s32/1.0.0`) or a registered TFDS name ('ucf101',
      'moving_shapes/f16_s32'); builders of this package are registered on import.
    split: TFDS split string ('train', 'test[:10%]', ...).
    """
    # Registers moving_shapes / video_folder with TFDS so they resolve by name.
    from lumiere_jax.data import moving_shapes, video_folder  # noqa: F401

    path = os.fspath(name_or_dir)
    if os.path.isfile(os.path.join(path, "dataset_info.json")):
        builder = tfds.builder_from_directory(path)
    else:
        try:
            builder = tfds.builder(path, data_dir=data_dir, **(builder_kwargs or {}))
        except tfds.core.registered.DatasetNotFoundError as e:
            raise ValueError(
                f"name_or_dir {path!r} is neither a built dataset directory (no dataset_info.json) "
                f"nor a registered TFDS dataset name.") from e
        if not builder.is_prepared():
            raise ValueError(
                f"dataset {path!r} is not prepared in data_dir={builder.data_dir_root!r}; build it "
                f"first (`builder.download_and_prepare()` or `tfds build {path.split('/')[0]} "
                "--file_format=array_record`).")
    file_format = builder.info.file_format
    fmt = getattr(file_format, "value", file_format)
    if fmt != "array_record":
        raise ValueError(
            f"dataset {builder.name!r} was written as {fmt!r}; random access needs "
            f"'array_record'. Rebuild it: `tfds build {builder.name} --file_format=array_record`.")
    return builder.as_data_source(split=split)


def prepare_moving_shapes(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Build a `moving_shapes/<config>` dataset if it is not on disk yet (it is procedural
    and offline, so a fresh clone can train at once). Returns True if it built one; other
    names are left alone (False). Safe to rerun after an interrupted build."""
    from lumiere_jax.data.moving_shapes import MovingShapes  # pylint: disable=g-import-not-at-top

    dataset, _, config = os.fspath(name).partition("/")
    built_folder = os.path.isfile(os.path.join(os.fspath(name), "dataset_info.json"))
    if dataset != "moving_shapes" or built_folder:
        return False
    builder = MovingShapes(data_dir=data_dir, config=config or None)
    if builder.is_prepared():
        return False
    print(f"moving_shapes/{builder.builder_config.name} is not in {builder.data_dir_root}: "
          "building "
          f"it now ({builder.builder_config.num_train} + {builder.builder_config.num_test} clips, "
          "a few minutes, once).", flush=True)
    builder.download_and_prepare()
    return True


def humanize_label(name: str) -> str:
    """'ApplyEyeMakeup' / 'apply_eye_makeup' -> 'apply eye makeup'."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|_|-", " ", name).split()
    return " ".join(w.lower() for w in words)


def _feature_names(source: Any, key: str | None) -> list[str] | None:
    """ClassLabel names of `key` in the source's features, else None."""
    info = getattr(source, "dataset_info", None)
    if key is None or info is None:
        return None
    feature = info.features[key] if key in info.features else None
    if isinstance(feature, tfds.features.ClassLabel):
        return [humanize_label(n) for n in feature.names]
    return None


def _check_keys(source: Any, feature_map: FeatureMap) -> None:
    info = getattr(source, "dataset_info", None)
    if info is None:
        return
    keys = list(info.features.keys())
    for field in ("video", "caption"):
        key = getattr(feature_map, field)
        if key is not None and key not in keys:
            raise ValueError(
                f"FeatureMap.{field}={key!r} is not a feature of {info.name!r}; its features are "
                f"{keys}.")


def _caption_of(example: dict[str, Any], feature_map: FeatureMap,
                label_names: list[str] | None) -> str:
    if feature_map.caption is None:
        return ""
    value = example[feature_map.caption]
    if label_names is not None:
        return label_names[int(value)]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def all_captions(source: Sequence[Any], feature_map: FeatureMap = FeatureMap()) -> list[str]:
    """Sorted unique non-empty captions of a source (to build a text embedding cache)."""
    _check_keys(source, feature_map)
    names = _feature_names(source, feature_map.caption)
    if names is not None:
        return sorted(set(names))
    caps = {_caption_of(source[i], feature_map, None) for i in range(len(source))}
    return sorted(caps - {""})


@dataclasses.dataclass(frozen=True)
class _ExampleTransform:
    """Per-example: pick frames (random temporal crop or one frame), crop/resize, caption."""

    feature_map: FeatureMap
    label_names: list[str] | None
    num_frames: int | None
    size: tuple[int, int] | None
    images: bool
    random_crop: bool
    caption_dropout: float = 0.0
    motion_labels: bool = False

    def __call__(self, example: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        video = np.asarray(example[self.feature_map.video])
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(
                f"feature {self.feature_map.video!r} must be (T, H, W, 3), got {video.shape}.")
        t, first = video.shape[0], 0
        if self.images:
            video = video[rng.integers(t) if self.random_crop else t // 2][None]
        elif self.num_frames is not None:
            if t < self.num_frames:
                raise ValueError(
                    f"num_frames={self.num_frames} but a clip of {self.feature_map.video!r} has "
                    "only "
                    f"{t} frames; use num_frames <= {t} or rebuild the dataset with longer clips.")
            first = rng.integers(t - self.num_frames + 1) if self.random_crop else 0
            video = video[first:first + self.num_frames]
        stored_height = video.shape[1]
        if self.size is not None and video.shape[1:3] != self.size:
            video = video_io.center_crop_resize(video, self.size)
        if self.caption_dropout:
            from lumiere_jax.data.moving_shapes import caption_from_labels
            out = {"caption": caption_from_labels(example, rng, self.caption_dropout)}
        else:
            out = {"caption": _caption_of(example, self.feature_map, self.label_names)}
        if self.images:
            out["image"] = video[0]
        else:
            out["video"] = video
        if self.motion_labels:  # px per frame at the output size (square moving_shapes)
            from lumiere_jax.data.moving_shapes import object_tracks
            objects, scale = example["objects"], video.shape[1] / stored_height
            velocity = np.asarray(objects["velocity"], np.float32).reshape(-1, 2)
            out["velocity"] = velocity.mean(0) * scale
            out["tracks"] = object_tracks(objects["start"], velocity, objects["size"],
                                          video.shape[1], scale, int(first))
        return out


class _TimeReversalPairs:
    """Batch map: `B` clips -> `2 B`, rows `2i, 2i + 1` = clip `i` and clip `i` played
    backwards, its caption with every direction reversed (`moving_shapes.reverse_directions`).
    """

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from lumiere_jax.data.moving_shapes import reverse_directions
        video = np.asarray(batch["video"])
        captions = [c.decode() if isinstance(c, bytes) else str(c) for c in batch["caption"]]
        paired = [c for caption in captions for c in (caption, reverse_directions(caption))]
        return {"video": rearrange(np.stack([video, video[:, ::-1]], axis=1),
                                   "b pair ... -> (b pair) ..."),
                "caption": np.asarray(paired)}


class _Tokenize:
    """Batch map: captions -> 'ids' int32 (B, L), 'mask' bool (B, L)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ids, mask = self.tokenizer.encode([c.decode() if isinstance(c, bytes) else str(c)
                                           for c in batch["caption"]])
        return {**batch, "ids": np.asarray(ids, np.int32), "mask": np.asarray(mask, bool)}


def make_dataset(
    source: Sequence[Any],
    *,
    batch_size: int,
    seed: int = 0,
    feature_map: FeatureMap = FeatureMap(),
    num_frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    images: bool = False,
    shuffle: bool = True,
    random_crop: bool | None = None,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
    shard_index: int | None = None,
    shard_count: int | None = None,
    embedding_lookup: EmbeddingLookup | None = None,
    caption_dropout: float = 0.0,
    time_reversal_pairs: bool = False,
    motion_labels: bool = False,
    tokenizer: Any | None = None,
    num_threads: int = 8,
    prefetch_buffer_size: int = 16,
    num_workers: int = 0,
) -> grain.IterDataset:
    """Shuffled, repeated, batched, per-process-sharded, checkpointable stream of batches.

    Args:
      source: a random-access data source (`load_source(...)`, `builder.as_data_source()`).
      batch_size: examples per batch on this process.
      seed: drives the shuffle and every per-example random choice.
      feature_map: feature keys of the video and caption.
      num_frames: clip length T (random temporal crop of longer clips); None keeps T.
      size: output (H, W) (center crop + resize when different); None keeps the size.
      images: yield single frames for the T2I stage (`'image': (B, H, W, 3)`).
      shuffle: shuffle records (per epoch); random_crop defaults to the same value.
      num_epochs: None repeats forever (use this for multi-process training: with finite
        epochs, shards of a split not divisible by shard_count differ by one record).
      drop_remainder: drop a last partial batch (only matters with finite num_epochs).
      shard_index, shard_count: this reader's shard; default jax.process_index() /
        jax.process_count(). Shards are disjoint and together cover the split.
      embedding_lookup: captions -> (states (B, L, D), mask (B, L)) (e.g.
        `lumiere_jax.text.EmbeddingCache.lookup`), added as 'text' and 'text_mask'.
      caption_dropout: > 0 rebuilds each `moving_shapes` caption from its stored labels with
        size, speed, background and one of two objects each dropped with this probability
        (`moving_shapes.caption_from_labels`), so short prompts are in the training data.
      time_reversal_pairs: `moving_shapes` clips only: every batch is `batch_size / 2` clips,
        each followed by itself played backwards with its caption's directions reversed
        (an exact symmetry of the data), so a train step can pair their noise and time
        (`training.StepConfig.reversal_pairs`); `batch_size` must be even.
      motion_labels: `moving_shapes` clips only: each example gains 'velocity' float32 (2,),
        the mean (dy, dx) velocity of its objects in px per frame at the output size (what
        `training.StepConfig.motion_noise` moves the noise by), and 'tracks' float32 (2, 5),
        each object's (y0, x0, vy, vx, r) in px at the output size from the clip's first
        frame, zero rows for absent objects (`moving_shapes.object_tracks`).
      tokenizer: an object with `encode(captions) -> (ids (B, L), mask (B, L))` (e.g.
        `lumiere_jax.text.WordTokenizer`): each batch gains 'ids' int32 and 'mask' bool,
        tokenised by a map step of the pipeline (in its read threads).
      num_threads, prefetch_buffer_size: batches read in parallel / kept ready.
      num_workers: > 0 decodes in that many worker processes (grain `mp_prefetch`), for
        when one Python process (GIL) cannot keep up; the stream and its state are the same.

    Returns:
      grain.IterDataset of dicts {'video': uint8 (B, T, H, W, 3) | 'image': uint8 (B, H, W, 3),
      'caption': str (B,)[, 'velocity': float32 (B, 2), 'tracks': float32 (B, 2, 5)]
      [, 'ids': int32 (B, L), 'mask': bool
      (B, L)][, 'text': float32
      (B, L, D), 'text_mask': bool (B, L)]}; its
      iterator has `get_state()` / `set_state()` (JSON-able dicts).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}.")
    if num_frames is not None and num_frames <= 0:
        raise ValueError(f"num_frames must be > 0 or None, got {num_frames}.")
    if num_epochs is not None and num_epochs <= 0:
        raise ValueError(f"num_epochs must be > 0 or None, got {num_epochs}.")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
    if size is not None:
        size = video_io.parse_size(size)
    if (shard_index is None) != (shard_count is None):
        raise ValueError(
            f"shard_index and shard_count must be given together, got shard_index={shard_index}, "
            f"shard_count={shard_count}.")
    if shard_index is None:
        import jax  # pylint: disable=g-import-not-at-top
        shard_index, shard_count = jax.process_index(), jax.process_count()
    if shard_count <= 0 or not 0 <= shard_index < shard_count:
        raise ValueError(
            f"shard_index must be in [0, shard_count) with shard_count > 0, got "
            f"shard_index={shard_index}, shard_count={shard_count}.")
    _check_keys(source, feature_map)
    if len(source) < shard_count:
        raise ValueError(
            f"the split has {len(source)} records, fewer than shard_count={shard_count} readers.")
    random_crop = shuffle if random_crop is None else random_crop
    if not 0.0 <= caption_dropout <= 1.0:
        raise ValueError(f"caption_dropout must be in [0, 1], got {caption_dropout}.")
    info = getattr(source, "dataset_info", None)
    if caption_dropout and info is not None and "objects" not in info.features:
        raise ValueError(
            f"caption_dropout={caption_dropout} rebuilds moving_shapes captions from their labels, "
            f"but {info.name!r} has no 'objects' labels; use caption_dropout=0.")

    if motion_labels and (images or time_reversal_pairs or (
            info is not None and "objects" not in info.features)):
        raise ValueError(f"motion_labels reads each clip's moving_shapes object velocities: "
                         f"it needs clips (images=False, got {images}), no "
                         f"time_reversal_pairs (got {time_reversal_pairs}) and a dataset with "
                         f"'objects' labels ({getattr(info, 'name', 'this source')!r})")
    if time_reversal_pairs:
        if images or batch_size % 2:
            raise ValueError(f"time_reversal_pairs needs clips (images=False) and an even "
                             f"batch_size, got images={images}, batch_size={batch_size}.")
        if info is not None and "objects" not in info.features:
            raise ValueError(f"time_reversal_pairs reverses moving_shapes directions, but "
                             f"{info.name!r} has no 'objects' labels.")

    ds = grain.MapDataset.source(source)
    ds = ds[shard_index::shard_count]
    if drop_remainder and num_epochs is not None and len(ds) < batch_size:
        raise ValueError(
            f"batch_size={batch_size} exceeds this shard's {len(ds)} records; with "
            "drop_remainder=True no batch would come out.")
    # Per-shard seeds: processes draw different shuffles and crops, each reproducible.
    shuffle_seed, crop_seed = (int(x) for x in np.random.SeedSequence(
        [seed, shard_index, shard_count]).generate_state(2))
    if shuffle:
        ds = ds.shuffle(seed=shuffle_seed)
    ds = ds.repeat(num_epochs)
    transform = _ExampleTransform(
        feature_map, _feature_names(source, feature_map.caption), num_frames, size, images,
        random_crop, caption_dropout, motion_labels)
    # Seeded per record position: the same element gets the same crop on every run.
    ds = ds.random_map(transform, seed=crop_seed)
    if time_reversal_pairs:
        ds = ds.batch(batch_size // 2, drop_remainder=drop_remainder).map(_TimeReversalPairs())
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if tokenizer is not None:
        ds = ds.map(_Tokenize(tokenizer))
    it_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size))
    if num_workers:
        from absl import flags  # pylint: disable=g-import-not-at-top
        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; use their defaults
            flags.FLAGS.mark_as_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    if embedding_lookup is not None:  # in this process: the lookup may hold device arrays
        def add_text(batch: dict[str, Any]) -> dict[str, Any]:
            states, mask = embedding_lookup(list(batch["caption"]))
            return {**batch, "text": np.asarray(states), "text_mask": np.asarray(mask, bool)}
        it_ds = it_ds.map(add_text)
    return it_ds
