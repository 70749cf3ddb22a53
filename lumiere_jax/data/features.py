"""TFDS helpers shared by the builders: clip feature, array_record base builder."""

from __future__ import annotations

import inspect

import numpy as np
import tensorflow_datasets as tfds
from etils import epath


def clip_feature(num_frames: int, height: int, width: int) -> tfds.features.Tensor:
    """uint8 (T, H, W, 3) clip stored as zlib-compressed raw bytes.

    Raw + zlib decodes with one `zlib.decompress` (no per-frame PNG decode), which keeps
    the input pipeline far ahead of the train step; synthetic clips compress well.
    """
    for field, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if int(value) <= 0:
            raise ValueError(f"{field} must be > 0, got {value}.")
    return tfds.features.Tensor(
        shape=(int(num_frames), int(height), int(width), 3), dtype=np.uint8,
        encoding=tfds.features.Encoding.ZLIB)


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """GeneratorBasedBuilder that writes `array_record` (readable without TensorFlow)."""

    def __init__(self, *, file_format: str = "array_record", **kwargs):
        super().__init__(file_format=file_format, **kwargs)

    # TFDS 4.9.10 resolves `code_path` through `importlib_resources`, a package it does not
    # declare; the source file of the builder class is the same answer without it.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path | None:  # pylint: disable=invalid-name
        try:
            return epath.Path(inspect.getfile(cls))
        except (TypeError, OSError):
            return None
