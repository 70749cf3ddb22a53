"""Video IO: codec round trips, fps resampling, crop/resize, bad files."""

import numpy as np
import pytest
from PIL import Image

from lumiere_jax.data.video_io import (VideoReadError, center_crop_resize, frame_indices_at_fps,
                                       read_video, resample_fps, write_video)


def _smooth_video(t=12, h=32, w=48):
    """A smooth moving pattern (what codecs are built for)."""
    tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    video = np.stack([128 + 100 * np.sin(xx / 5 + tt / 3), 128 + 100 * np.cos(yy / 6 - tt / 4),
                      128 + 60 * np.sin((xx + yy) / 7)], -1)
    return np.round(video).astype(np.uint8)


def _index_video(t=12, h=16, w=16):
    """Frame i is flat gray level 20 * i, so a decoded frame tells which source frame it is."""
    return np.broadcast_to((np.arange(t) * 20).astype(np.uint8)[:, None, None, None],
                           (t, h, w, 3)).copy()


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_codec_round_trip_keeps_count_size_and_pixels(tmp_path, suffix):
    video = _smooth_video()
    path = tmp_path / f"v{suffix}"
    write_video(path, video, fps=8)
    back = read_video(path)
    assert back.shape == video.shape and back.dtype == np.uint8
    # Lossy codec at crf 18: small error everywhere, no frame dropped or shifted.
    assert np.abs(back.astype(int) - video).mean() < 8
    assert _psnr(back, video) > 28
    for i in range(len(video)):  # each frame is closest to its own source frame
        errs = [np.abs(back[i].astype(int) - v).mean() for v in video]
        assert int(np.argmin(errs)) == i


def test_mp4_is_h264(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, _smooth_video(t=4), fps=8)
    data = path.read_bytes()
    assert b"ftyp" in data[:32] and b"avc1" in data  # MP4 container, H.264 sample entry


def test_gif_round_trip_is_exact_for_few_colors(tmp_path):
    rng = np.random.default_rng(0)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    video = palette[rng.integers(0, 4, (6, 10, 14))]
    write_video(tmp_path / "v.gif", video, fps=10)
    np.testing.assert_array_equal(read_video(tmp_path / "v.gif"), video)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
@pytest.mark.parametrize("dst_fps", [5, 4, 20, 6])
def test_read_resamples_fps(tmp_path, suffix, dst_fps):
    src_fps, t = 10, 12
    write_video(tmp_path / f"v{suffix}", _index_video(t), fps=src_fps)
    back = read_video(tmp_path / f"v{suffix}", fps=dst_fps)
    # Reference: output frame k shows source frame floor(k * src / dst), for k / dst < t / src.
    expected = [k * src_fps // dst_fps for k in range(t * dst_fps) if k * src_fps < t * dst_fps]
    got = np.round(back.mean(axis=(1, 2, 3)) / 20).astype(int).tolist()
    assert got == expected


def test_frame_indices_variable_durations_match_loop():
    starts = np.array([0.0, 0.1, 0.35, 0.4, 0.9])
    duration, fps = 1.2, 7.0
    expected = []
    for k in range(100):
        t = k / fps
        if t >= duration:
            break
        expected.append(max(i for i, s in enumerate(starts) if s <= t + 1e-9))
    np.testing.assert_array_equal(frame_indices_at_fps(starts, duration, fps), expected)


def test_resample_fps_array():
    frames = np.arange(9)
    np.testing.assert_array_equal(resample_fps(frames, 3, 1), [0, 3, 6])
    np.testing.assert_array_equal(resample_fps(frames[:3], 3, 6), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(resample_fps(frames[:8], 3, 2), [0, 1, 3, 4, 6, 7])


def test_num_frames_and_size(tmp_path):
    write_video(tmp_path / "v.mp4", _index_video(12, 32, 48), fps=10)
    back = read_video(tmp_path / "v.mp4", num_frames=5, size=(8, 8), fps=5)
    assert back.shape == (5, 8, 8, 3)
    np.testing.assert_allclose(back.mean(axis=(1, 2, 3)) / 20, [0, 2, 4, 6, 8], atol=0.3)


def test_center_crop_is_a_centered_slice():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 10, 16, 3), np.uint8)
    np.testing.assert_array_equal(center_crop_resize(frames, 10), frames[:, :, 3:13])
    np.testing.assert_array_equal(center_crop_resize(frames, (10, 4)), frames[:, :, 6:10])


def test_resize_of_block_image_by_integer_factor():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (2, 4, 6, 3), np.uint8)
    big = small.repeat(4, axis=1).repeat(4, axis=2)  # 16 x 24, constant 4x4 blocks
    out = center_crop_resize(big, (4, 6))
    # Antialiased bilinear of constant blocks: block centers keep their value up to the
    # filter's reach into neighbouring blocks; compare with PIL's own box filter too.
    box = np.stack([np.asarray(Image.fromarray(f).resize((6, 4), Image.Resampling.BOX))
                    for f in big])
    np.testing.assert_array_equal(box, small)
    assert np.abs(out.astype(int) - small).mean() < 40
    assert out.shape == (2, 4, 6, 3)


def test_text_file_and_truncated_file_raise(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video")
    write_video(tmp_path / "good.mp4", _smooth_video(t=8), fps=8)
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    for name in ("notes.mp4", "cut.mp4", "missing.mp4"):
        with pytest.raises(VideoReadError, match=name):
            read_video(tmp_path / name)
    (tmp_path / "notes.gif").write_text("GIF89a but not really")
    with pytest.raises(VideoReadError):
        read_video(tmp_path / "notes.gif")


def test_bad_arguments(tmp_path):
    video = _smooth_video(t=2)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "v.mp4", video[:, :31], fps=8)
    with pytest.raises(ValueError, match="suffix"):
        write_video(tmp_path / "v.avi", video, fps=8)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "v.mp4", video.astype(np.float32), fps=8)
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "v.mp4", video, fps=0)
    write_video(tmp_path / "v.mp4", video, fps=8)
    with pytest.raises(ValueError, match="num_frames"):
        read_video(tmp_path / "v.mp4", num_frames=0)
    with pytest.raises(ValueError, match="size"):
        read_video(tmp_path / "v.mp4", size=(0, 4))


def test_writing_a_video_loads_neither_tfds_nor_grain(tmp_path):
    """`lumiere_jax.data` imports its TFDS / grain half lazily: the cascade writes videos
    through `write_video` without them; their names still resolve on first use."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from lumiere_jax.pipeline import save_video\n"
        f"save_video({str(tmp_path / 'a.gif')!r}, np.zeros((2, 8, 8, 3), np.uint8))\n"
        "heavy = [m for m in ('tensorflow_datasets', 'grain', 'tensorflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import lumiere_jax.data as data\n"
        "assert callable(data.load_source) and 'grain' in sys.modules\n"
        "try:\n    data.no_such_name\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "has no attribute 'no_such_name'" in out.stdout
    assert (tmp_path / "a.gif").stat().st_size > 0
