"""`video_folder`: a directory of the user's videos + captions, cut into fixed clips.

Layout of `video_dir` (searched recursively):

    video_dir/
      a.mp4  a.txt              # sidecar caption: same stem, .txt
      sub/b.webm
      captions.jsonl            # optional: {"file": "sub/b.webm", "caption": "..."} per line

A sidecar `.txt` wins over a `captions.jsonl` entry; a video with neither gets caption ""
(counted in the metadata, usable as the null prompt). Each video is decoded at the
config's fps and size (center crop + resize) and cut into clips of `num_frames` frames
every `clip_stride` frames. Files that cannot be decoded or are shorter than one clip are
skipped with a `SkippedVideoWarning`, and listed in `info.metadata['skipped']`.

    builder = VideoFolder(data_dir=out, video_dir="/my/videos",
                          config=VideoFolderConfig(name="f16_s64", num_frames=16, fps=8,
                                                   height=64, width=64))
    builder.download_and_prepare()
    builder.info.metadata["skipped"]   # [{"file": ..., "reason": ...}, ...]

The video directory can also be given as TFDS's manual dir
(`download_config=tfds.download.DownloadConfig(manual_dir=...)`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from lumiere_jax.data import video_io
from lumiere_jax.data.features import ArrayRecordBuilder, clip_feature

VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif", ".mov", ".mkv", ".avi", ".m4v")
CAPTIONS_FILE = "captions.jsonl"


class SkippedVideoWarning(UserWarning):
    """A file in the video folder was skipped (unreadable or too short)."""


@dataclasses.dataclass
class VideoFolderConfig(tfds.core.BuilderConfig):
    """Clip length, frame rate and size of a `video_folder` build."""

    num_frames: int = 16
    fps: float = 8.0
    height: int = 64
    width: int = 64
    clip_stride: int | None = None  # frames between clip starts; None: num_frames
    max_clips_per_video: int | None = None

    def __post_init__(self):
        for field in ("num_frames", "height", "width"):
            if getattr(self, field) <= 0:
                raise ValueError(f"VideoFolderConfig.{field} must be > 0, got "
                                 f"{getattr(self, field)}.")
        if self.fps <= 0:
            raise ValueError(f"VideoFolderConfig.fps must be > 0, got {self.fps}.")
        if self.clip_stride is not None and self.clip_stride <= 0:
            raise ValueError(
                f"VideoFolderConfig.clip_stride must be > 0 or None, got {self.clip_stride}.")
        if self.max_clips_per_video is not None and self.max_clips_per_video <= 0:
            raise ValueError(
                "VideoFolderConfig.max_clips_per_video must be > 0 or None, got "
                f"{self.max_clips_per_video}.")


def find_videos(video_dir: str) -> list[str]:
    """Video files under video_dir (by extension), as sorted '/'-separated relative paths."""
    found = []
    for root, dirs, files in os.walk(video_dir):
        dirs.sort()
        for name in files:
            if name.lower().endswith(VIDEO_EXTENSIONS):
                rel = os.path.relpath(os.path.join(root, name), video_dir)
                found.append(rel.replace(os.sep, "/"))
    return sorted(found)


def read_captions_jsonl(path: str) -> dict[str, str]:
    """{relative file: caption} from a JSON-lines file of {"file": ..., "caption": ...}."""
    captions = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({e}).") from e
            if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
                    and isinstance(entry.get("caption"), str)):
                raise ValueError(
                    f"{path}:{line_no}: each line must be an object with string fields 'file' and "
                    f"'caption', got {line.strip()[:200]!r}.")
            captions[entry["file"].replace(os.sep, "/")] = entry["caption"]
    return captions


def clip_starts(num_decoded: int, num_frames: int, stride: int,
                max_clips: int | None = None) -> list[int]:
    """Start frames of the full clips in a video of num_decoded frames."""
    starts = list(range(0, num_decoded - num_frames + 1, stride))
    return starts[:max_clips] if max_clips is not None else starts


class VideoFolder(ArrayRecordBuilder):
    """A user's folder of captioned videos as fixed-size clips (written as array_record)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [VideoFolderConfig(name="f16_s64", description="16 frames, 8 fps, 64 px")]
    DEFAULT_CONFIG_NAME = "f16_s64"

    def __init__(self, *, video_dir: str | os.PathLike | None = None, **kwargs):
        self._video_dir = os.fspath(video_dir) if video_dir is not None else None
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "video": clip_feature(c.num_frames, c.height, c.width),
                "caption": tfds.features.Text(),
                "source": tfds.features.Text(),  # file, relative to video_dir
                "start_time": tfds.features.Scalar(dtype=np.float32),  # seconds
            }),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        video_dir = self._video_dir
        if video_dir is None:
            try:
                video_dir = os.fspath(dl_manager.manual_dir)
            except Exception:  # pylint: disable=broad-except
                video_dir = None
        if video_dir is None or not os.path.isdir(video_dir):
            raise ValueError(
                f"video_dir must be an existing directory of videos, got {video_dir!r}; pass "
                "VideoFolder(video_dir=...) or DownloadConfig(manual_dir=...).")
        return {"train": self._generate_examples(video_dir)}

    def _generate_examples(self, video_dir: str) -> Iterator[tuple[str, dict[str, Any]]]:
        c = self.builder_config
        stride = c.clip_stride or c.num_frames
        files = find_videos(video_dir)
        jsonl = os.path.join(video_dir, CAPTIONS_FILE)
        listed = read_captions_jsonl(jsonl) if os.path.isfile(jsonl) else {}
        skipped: list[dict[str, str]] = []
        num_clips = num_uncaptioned = 0

        def skip(rel: str, reason: str) -> None:
            skipped.append({"file": rel, "reason": reason})
            warnings.warn(f"video_folder: skipping {rel}: {reason}", SkippedVideoWarning,
                          stacklevel=2)

        for rel in sorted(set(listed) - set(files)):
            skip(rel, f"listed in {CAPTIONS_FILE} but not found as a video file")
        for rel in files:
            path = os.path.join(video_dir, rel)
            try:
                frames = video_io.read_video(path, fps=c.fps, size=(c.height, c.width))
            except video_io.VideoReadError as e:
                skip(rel, f"unreadable: {e}")
                continue
            starts = clip_starts(len(frames), c.num_frames, stride, c.max_clips_per_video)
            if not starts:
                skip(rel, f"too short: {len(frames)} frames at {c.fps} fps, a clip needs "
                          f"{c.num_frames}")
                continue
            sidecar = os.path.splitext(path)[0] + ".txt"
            if os.path.isfile(sidecar):
                with open(sidecar, encoding="utf-8") as f:
                    caption = " ".join(f.read().split())
            else:
                caption = listed.get(rel, "")
            num_uncaptioned += caption == ""
            for start in starts:
                num_clips += 1
                yield f"{rel}#{start}", {
                    "video": frames[start:start + c.num_frames],
                    "caption": caption,
                    "source": rel,
                    "start_time": np.float32(start / c.fps),
                }
        # Written with dataset_info.json once all splits are generated.
        self.info.metadata.update({
            "video_dir": os.path.abspath(video_dir),
            "num_videos": len(files) - sum(s["file"] in files for s in skipped),
            "num_clips": num_clips,
            "num_uncaptioned_videos": int(num_uncaptioned),
            "num_skipped": len(skipped),
            "skipped": skipped,
        })
        if skipped:
            warnings.warn(
                f"video_folder: skipped {len(skipped)} file(s): "
                f"{', '.join(s['file'] for s in skipped)}", SkippedVideoWarning, stacklevel=2)
