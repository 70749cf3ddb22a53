"""`video_folder` TFDS builder (a user's captioned videos cut into clips)."""

from lumiere_jax.data.video_folder.video_folder_dataset_builder import (
    SkippedVideoWarning, VideoFolder, VideoFolderConfig, clip_starts, find_videos,
    read_captions_jsonl)
