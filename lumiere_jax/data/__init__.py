"""Data: video IO, TFDS builders writing array_record, grain input pipelines.

    from lumiere_jax.data import make_dataset, load_source
    from lumiere_jax.data.video_io import read_video, write_video
    from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig
    from lumiere_jax.data.video_folder import VideoFolder, VideoFolderConfig

Video IO needs only NumPy, PIL and imageio: the TFDS / grain half (`data.pipeline`) is
imported on first use of one of its names, so writing a video does not load them.
"""

from lumiere_jax.data.video_io import (VideoReadError, center_crop_resize, frame_indices_at_fps,
                                       read_video, resample_fps, write_video)

_PIPELINE_NAMES = ("KNOWN_FEATURE_MAPS", "FeatureMap", "all_captions", "humanize_label",
                   "load_source", "make_dataset", "prepare_moving_shapes")


def __getattr__(name: str):
    if name in _PIPELINE_NAMES:
        from lumiere_jax.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'lumiere_jax.data' has no attribute {name!r}")

__all__ = [
    "KNOWN_FEATURE_MAPS", "FeatureMap", "VideoReadError", "all_captions", "center_crop_resize",
    "frame_indices_at_fps", "humanize_label", "load_source", "make_dataset",
    "prepare_moving_shapes", "read_video",
    "resample_fps", "write_video",
]
