"""video_folder: clips from the good files only, bad files skipped and reported."""

import json
import warnings

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lumiere_jax.data.video_folder import SkippedVideoWarning, VideoFolder, VideoFolderConfig
from lumiere_jax.data.video_io import write_video

NUM_FRAMES, FPS, SIZE = 4, 8, 16


def _clip(t, h, w, seed):
    """Smooth colored motion (codec friendly); channel 2 is flat per seed."""
    tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    v = np.stack([128 + 90 * np.sin(xx / 6 + tt / 3 + seed), 128 + 90 * np.cos(yy / 5 - tt / 4),
                  np.full_like(xx, 60 + 40 * seed, dtype=float)], -1)
    return np.round(v).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    (root / "sub").mkdir()
    good_mp4 = _clip(20, 24, 32, 0)  # 20 frames at 8 fps -> 5 clips of 4
    write_video(root / "walk.mp4", good_mp4, fps=FPS)
    (root / "walk.txt").write_text("a person\n walking  left\n")
    good_gif = _clip(10, 16, 16, 1)  # 10 frames at 10 fps = 1 s -> 8 frames at 8 fps -> 2 clips
    write_video(root / "sub" / "spin.gif", good_gif, fps=10)
    write_video(root / "sub" / "nocap.webm", _clip(8, 16, 16, 2), fps=FPS)  # 2 clips, no caption
    data = (root / "walk.mp4").read_bytes()
    (root / "broken.mp4").write_bytes(data[: len(data) // 2])  # truncated copy
    (root / "notes.mp4").write_text("meeting notes, not a video")  # text renamed .mp4
    write_video(root / "short.mp4", _clip(3, 16, 16, 3), fps=FPS)  # < one clip
    (root / "readme.md").write_text("ignored: not a video extension")
    with open(root / "captions.jsonl", "w") as f:
        f.write(json.dumps({"file": "sub/spin.gif", "caption": "a top spinning"}) + "\n")
        f.write(json.dumps({"file": "walk.mp4", "caption": "loses to the sidecar"}) + "\n")
    return root, good_mp4


@pytest.fixture(scope="module")
def built(folder, tmp_path_factory):
    root, _ = folder
    config = VideoFolderConfig(name="t", num_frames=NUM_FRAMES, fps=FPS, height=SIZE, width=SIZE)
    builder = VideoFolder(data_dir=str(tmp_path_factory.mktemp("out")), video_dir=str(root),
                          config=config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        builder.download_and_prepare()
    return builder, [w for w in caught if issubclass(w.category, SkippedVideoWarning)]


def test_clips_come_from_good_files_only(built):
    builder, _ = built
    source = builder.as_data_source("train")
    sources = sorted(ex["source"].decode() for ex in source)
    assert sources == ["sub/nocap.webm"] * 2 + ["sub/spin.gif"] * 2 + ["walk.mp4"] * 5
    assert builder.info.splits["train"].num_examples == 9
    for ex in source:
        assert ex["video"].shape == (NUM_FRAMES, SIZE, SIZE, 3) and ex["video"].dtype == np.uint8
    captions = {ex["source"].decode(): ex["caption"].decode() for ex in source}
    assert captions == {"walk.mp4": "a person walking left", "sub/spin.gif": "a top spinning",
                        "sub/nocap.webm": ""}


def test_bad_files_reported_in_metadata_and_warnings(built):
    builder, caught = built
    meta = tfds.builder_from_directory(builder.data_dir).info.metadata  # as saved on disk
    reasons = {s["file"]: s["reason"] for s in meta["skipped"]}
    assert set(reasons) == {"broken.mp4", "notes.mp4", "short.mp4"}
    assert reasons["broken.mp4"].startswith("unreadable")
    assert reasons["notes.mp4"].startswith("unreadable")
    assert reasons["short.mp4"].startswith("too short")
    assert meta["num_skipped"] == 3 and meta["num_clips"] == 9 and meta["num_videos"] == 3
    assert meta["num_uncaptioned_videos"] == 1
    warned = " ".join(str(w.message) for w in caught)
    for name in ("broken.mp4", "notes.mp4", "short.mp4"):
        assert name in warned


def test_clip_pixels_follow_the_source(built, folder):
    builder, _ = built
    _, good = folder
    # Reference: center crop 24x32 -> 24x24 (cols 4:28), then 1.5x box-like downsample; compare
    # clip means per channel (robust to codec + filter differences) against the source frames.
    src = good[:, :, 4:28].astype(float)
    for ex in builder.as_data_source("train"):
        if ex["source"] != b"walk.mp4":
            continue
        start = int(round(float(ex["start_time"]) * FPS))
        ref = src[start:start + NUM_FRAMES].mean(axis=(1, 2))
        np.testing.assert_allclose(ex["video"].astype(float).mean(axis=(1, 2)), ref, atol=6)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="video_dir"):
        VideoFolder(data_dir=str(tmp_path / "o"), video_dir=str(tmp_path / "missing"),
                    config=VideoFolderConfig(name="x")).download_and_prepare()
    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "a.mp4", _clip(8, 16, 16, 0), fps=FPS)
    (tmp_path / "v" / "captions.jsonl").write_text('{"file": "a.mp4"}\n')
    with pytest.raises(ValueError, match="captions.jsonl:1"):
        VideoFolder(data_dir=str(tmp_path / "o2"), video_dir=str(tmp_path / "v"),
                    config=VideoFolderConfig(name="x", num_frames=4, height=16, width=16)
                    ).download_and_prepare()
    with pytest.raises(ValueError, match="fps"):
        VideoFolderConfig(name="x", fps=0)
    with pytest.raises(ValueError, match="clip_stride"):
        VideoFolderConfig(name="x", clip_stride=0)
