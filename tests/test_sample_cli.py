"""`sample.py` as users run it: random tiny weights, each input kind, clear input errors."""

import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from lumiere_jax.data.video_io import read_video, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--steps", "2", "--ssr_steps", "1", "--random", "--cache_dir", ""]


def run_sample(*args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), *args, *FAST],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    iio.imwrite(d / "image.png", rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    mask = np.zeros((20, 20), np.uint8)
    mask[:, :10] = 255
    iio.imwrite(d / "mask.png", mask)
    write_video(d / "clip.mp4", rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), fps=8)
    return d


def test_inpaint_writes_a_video(inputs, tmp_path):
    out = tmp_path / "inpainted.mp4"
    r = run_sample("--mode", "inpaint", "--video", str(inputs / "clip.mp4"), "--mask",
                   str(inputs / "mask.png"), "--prompt", "a ball", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RANDOM weights" in r.stderr  # no checkpoint given: says so
    assert "--mask is 20x20: center-cropped and resized to 16x16" in r.stderr
    video = read_video(out)
    assert video.shape == (4, 16, 16, 3)  # configs/tiny_*: 4 frames, 8 -> 16 px


@pytest.mark.parametrize("args, message", [
    (["--mode", "inpaint", "--video", "{d}/clip.mp4"], "--mode=inpaint needs --mask"),
    (["--mode", "edit", "--image", "{d}/image.png"], "--image is not used by --mode=edit"),
    (["--mode", "i2v", "--image", "{d}/missing.png"], "--image="),
    (["--style_alpha", "0.5"], "--style_alpha needs --style"),
    (["--style", "outline", "--style_alpha", "1.5"], "--style_alpha=1.5 must be in [0, 1]"),
    (["--mode", "edit", "--video", "{d}/clip.mp4", "--strength", "0"], "--strength=0.0 must"),
    (["--mode", "edit", "--video", "{d}/clip.mp4", "--candidates", "4"],
     "--candidates=4: --mode=edit (SDEdit) samples one clip per input video"),
    (["--mode", "i2v", "--image", "{d}/image.png", "--candidates", "4", "--candidate_score",
      "critic"], "the critic reads text-to-video clips only"),
    (["--candidates", "-2"], "base_candidates=-2 must be an int >= 1"),
    (["--clips_per_call", "-2"], "clips_per_call=-2 must be an int >= 1"),
    (["--redraw_strength", "2"], "redraw_strength=2.0 must be in [0, 1]"),
    (["--mode", "i2v", "--image", "{d}/image.png", "--redraw_strength", "0.7"],
     "--redraw_strength=0.7: the redraw is text-to-video's"),
    (["--mode", "i2v", "--image", "{d}/image.png", "--base_stage", "base"],
     "--base_stage=base picks a stage of --pretrained"),
])
def test_bad_inputs_fail_with_one_line(inputs, tmp_path, args, message):
    r = run_sample(*[a.format(d=inputs) for a in args], cwd=tmp_path)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_a_grey_mask_is_thresholded_with_a_warning(inputs, tmp_path):
    grey = np.full((16, 16), 100, np.uint8)
    grey[:, 8:] = 200
    iio.imwrite(tmp_path / "grey.png", grey)
    out = tmp_path / "out.gif"
    r = run_sample("--mode", "cinemagraph", "--image", str(inputs / "image.png"), "--mask",
                   str(tmp_path / "grey.png"), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "not black and white only: thresholded at half grey" in r.stderr
    assert read_video(out).shape == (4, 16, 16, 3)


def test_help_documents_every_flag_and_exits_0(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), "--help"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    for flag in ("--prompt", "--pretrained", "--steps", "--guidance", "--num_frames", "--seed",
                 "--out", "--mode", "--cache_dir", "--[no]progress", "--[no]random",
                 "--candidates"):
        assert f"  {flag}:" in r.stdout, flag
