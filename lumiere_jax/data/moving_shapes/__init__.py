"""`moving_shapes` TFDS builder (procedural captioned videos)."""

from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (
    MovingShapes, MovingShapesConfig, Scene, ShapeObject, make_example, render_scene,
    sample_scene)
