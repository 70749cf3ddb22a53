"""`moving_shapes` TFDS builder (procedural captioned videos)."""

from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (
    MovingShapes, MovingShapesConfig, Scene, ShapeObject, caption_from_labels, caption_vocabulary,
    make_example, render_scene, reverse_directions, sample_scene)
