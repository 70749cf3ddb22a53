"""`moving_shapes`: procedural captioned videos (`scenes`, NumPy only) and their TFDS
builder (`MovingShapes`, `MovingShapesConfig`; TensorFlow Datasets is imported on first
use of one of those names, so rendering a clip does not load it)."""

from lumiere_jax.data.moving_shapes.scenes import (
    BACKGROUNDS, COLORS, DIRECTIONS, SHAPES, SIZES, SPEEDS, STYLES, Scene, ShapeObject,
    caption_from_labels, caption_vocabulary, make_example, object_tracks, render_scene, reverse_directions,
    sample_scene, single_object_clips, travel_examples)

_BUILDER_NAMES = ("MovingShapes", "MovingShapesConfig")


def __getattr__(name: str):
    if name in _BUILDER_NAMES:
        from lumiere_jax.data.moving_shapes import moving_shapes_dataset_builder

        return getattr(moving_shapes_dataset_builder, name)
    raise AttributeError(f"module 'lumiere_jax.data.moving_shapes' has no attribute {name!r}")


__all__ = ["BACKGROUNDS", "COLORS", "DIRECTIONS", "SHAPES", "SIZES", "SPEEDS", "STYLES",
           "MovingShapes", "MovingShapesConfig", "Scene", "ShapeObject", "caption_from_labels",
           "caption_vocabulary", "make_example", "object_tracks", "render_scene", "reverse_directions",
           "sample_scene", "single_object_clips", "travel_examples"]
