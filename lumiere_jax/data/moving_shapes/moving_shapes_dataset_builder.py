"""`moving_shapes`: procedural captioned videos where the caption controls the motion.

Each clip shows one or two objects (shape, color, size) moving in a straight line
(direction, speed) over a plain background, captioned from those attributes, e.g.
"a small red circle moving slowly left on a black background" or
"a large blue square moving quickly up and a small yellow triangle moving slowly down
and to the right on a gray background". Every attribute is stored as a label too, so an
evaluation can check that generated videos follow the text.

Deterministic: example i of a split is rendered from `np.random.default_rng([seed,
split_id, i])`, so the same seed builds the same records in any order.

    builder = MovingShapes(data_dir=d, config='f16_s32')   # or a MovingShapesConfig
    builder.download_and_prepare()
    source = builder.as_data_source(split='train')
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from lumiere_jax.data.features import ArrayRecordBuilder, clip_feature
from lumiere_jax.data.moving_shapes.scenes import (  # noqa: F401  (re-exported)
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    MAX_OBJECTS,
    SHAPES,
    SIZES,
    SPEEDS,
    STYLES,
    Scene,
    ShapeObject,
    caption_from_labels,
    caption_vocabulary,
    make_example,
    outline_width,
    render_scene,
    reverse_directions,
    sample_scene,
)


@dataclasses.dataclass
class MovingShapesConfig(tfds.core.BuilderConfig):
    """Frame count, resolution, split sizes and seed of a `moving_shapes` build."""

    num_frames: int = 16
    height: int = 32
    width: int = 32
    num_train: int = 20_000
    num_test: int = 1_000
    seed: int = 0
    two_object_prob: float = 0.5
    style: str = "filled"

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"MovingShapesConfig.style must be one of {STYLES}, got "
                             f"{self.style!r}.")
        for field in ("num_frames", "height", "width", "num_train"):
            if getattr(self, field) <= 0:
                raise ValueError(f"MovingShapesConfig.{field} must be > 0, got "
                                 f"{getattr(self, field)}.")
        if min(self.height, self.width) < 8:
            raise ValueError(
                f"MovingShapesConfig height/width must be >= 8 for shapes to be visible, got "
                f"{self.height}x{self.width}.")
        if self.num_test < 0:
            raise ValueError(f"MovingShapesConfig.num_test must be >= 0, got {self.num_test}.")
        if not 0.0 <= self.two_object_prob <= 1.0:
            raise ValueError(
                "MovingShapesConfig.two_object_prob must be in [0, 1], got "
                f"{self.two_object_prob}.")


def _cfg(frames: int, px: int, num_train: int = 20_000, style: str = "filled"
         ) -> MovingShapesConfig:
    suffix = "" if style == "filled" else f"_{style}"
    return MovingShapesConfig(
        name=f"f{frames}_s{px}{suffix}",
        description=f"{frames} frames, {px}x{px} px" + suffix.replace("_", ", "),
        num_frames=frames, height=px, width=px, num_train=num_train, style=style)


class MovingShapes(ArrayRecordBuilder):
    """Procedural captioned moving-shapes videos (written as array_record)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    # f16_s32_outline: the style the shipped style model learns (outlined shapes).
    BUILDER_CONFIGS = [_cfg(16, 32), _cfg(16, 64), _cfg(32, 64), _cfg(80, 128, 5_000),
                       _cfg(16, 32, 5_000, style="outline")]
    DEFAULT_CONFIG_NAME = "f16_s32"

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        label = lambda names: tfds.features.ClassLabel(names=list(names))
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "video": clip_feature(c.num_frames, c.height, c.width),
                "caption": tfds.features.Text(),
                "background": label(BACKGROUNDS),
                "num_objects": tfds.features.Scalar(dtype=np.int32),
                "objects": tfds.features.Sequence({
                    "shape": label(SHAPES),
                    "color": label(COLORS),
                    "size": label(SIZES),
                    "direction": label(DIRECTIONS),
                    "speed": label(SPEEDS),
                    "start": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                    "velocity": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                }),
            }),
            metadata=tfds.core.MetadataDict(seed=c.seed),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        c = self.builder_config
        splits = {"train": self._generate_examples("train", c.num_train)}
        if c.num_test:
            splits["test"] = self._generate_examples("test", c.num_test)
        return splits

    def _generate_examples(self, split: str, num_examples: int):
        c = self.builder_config
        for i in range(num_examples):
            yield i, make_example(c.seed, split, i, c.num_frames, c.height, c.width,
                                  c.two_object_prob, c.style)
