"""`evaluate.py` as users run it: scoring a folder of videos (unreadable files skipped and
counted, FVD against the test split), generating from test-split prompts with a (random
tiny) cascade, --short_prompts, --help, one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig, make_example
from lumiere_jax.data.video_io import write_video
from lumiere_jax.eval import normalize_labels, short_caption

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_TEST = 16


def run_evaluate(*args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), *args,
                           "--noprogress"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A tiny moving_shapes build (16 test clips of 16 frames, 32 px): its folder."""
    builder = MovingShapes(data_dir=str(tmp_path_factory.mktemp("tfds")), config=MovingShapesConfig(
        name="eval_tiny", num_frames=16, height=32, width=32, num_train=8, num_test=NUM_TEST))
    builder.download_and_prepare()
    return str(builder.data_dir)


def test_help_exits_zero(tmp_path):
    r = run_evaluate("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for flag in ("--videos_dir", "--short_prompts", "--base_ckpt", "--num_clips", "--out_dir"):
        assert flag in r.stdout


def test_folder_of_videos_is_scored_and_bad_files_are_skipped(dataset, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    examples = [make_example(0, "test", 100 + i, 16, 32, 32) for i in range(3)]
    prompts = {}
    for i, ex in enumerate(examples):  # real clips: the analyzer reads them right
        name = f"clip{i}.{'mp4' if i % 2 else 'gif'}"
        write_video(videos / name, ex["video"], fps=8)
        prompts[name] = {"prompt": ex["caption"], "labels": normalize_labels(ex)}
    (videos / "broken.mp4").write_bytes(b"not a video")
    prompts["broken.mp4"] = "a red circle moving right"
    prompts["missing.gif"] = "a red circle moving left"
    (videos / "prompts.json").write_text(json.dumps(prompts))

    out = tmp_path / "out"
    r = run_evaluate("--dataset", dataset, "--videos_dir", str(videos), "--out_dir", str(out),
                     cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "folder" and m["num_clips"] == 3 and m["skipped"] == 2
    assert sorted(s["file"] for s in m["skipped_files"]) == ["broken.mp4", "missing.gif"]
    for metric in ("color", "shape", "direction", "count", "background"):
        assert m["accuracy"][metric] == 1.0 and m["judged"][metric] == 3, (metric, m["accuracy"])
    assert m["presence"] == pytest.approx(1.0)
    # FVD against 3 real test clips at the same size and length.
    assert np.isfinite(m["fvd"]) and m["fvd"] > 0, m["fvd_note"]
    assert "16 frames at 32x32" in m["fvd_note"]
    assert "colour+shape+direction" in r.stdout and "skipped files" in r.stdout
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height >= 3 * 64


def test_generates_from_short_test_prompts(dataset, tmp_path):
    out = tmp_path / "out"
    r = run_evaluate("--dataset", dataset, "--random", "--num_clips", "3", "--batch_size", "2",
                     "--steps", "2", "--ssr_steps", "1", "--short_prompts", "--seed", "1",
                     "--out_dir", str(out), "--save_videos", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RANDOM weights" in r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "generate" and m["split"] == "test" and m["num_clips"] == 3
    idx = [c["index"] for c in m["clips"]]
    assert len(set(idx)) == 3 and all(0 <= i < NUM_TEST for i in idx)
    # Prompts: short captions of test records (TFDS stores them in a shuffled order).
    test_split = [normalize_labels(make_example(0, "test", j, 16, 32, 32)) for j in range(NUM_TEST)]
    for c in m["clips"]:
        assert c["labels"] in test_split
        assert c["prompt"] == short_caption(c["labels"])
        assert c["shape"] == [4, 16, 16, 3]  # configs/tiny_*: 4 frames, 8 -> 16 px
    # Short prompts name colour, shape and direction (and one object): nothing else judged.
    assert {k for k, n in m["judged"].items() if n} == {"color", "shape", "direction", "count",
                                                        "color_shape_direction"}
    assert m["fvd"] is None and "9 frames" in m["fvd_note"]
    assert m["seconds_per_clip"] > 0
    # The cascade's SSR against its base video (lumiere_jax.eval.cascade): one 4-frame
    # window covers the tiny clips, so there is no boundary to judge.
    ssr = m["ssr_consistency"]
    assert (ssr["window"], ssr["stride"]) == (4, 2) and np.isnan(ssr["seam_ratio"])
    assert 0 < ssr["psnr_downsampled_vs_base"] < 100
    assert "SSR vs base PSNR (dB)" in r.stdout
    saved = json.loads((out / "videos" / "prompts.json").read_text())
    assert sorted(saved) == ["0000.gif", "0001.gif", "0002.gif"]
    assert all(os.path.isfile(out / "videos" / name) for name in saved)


def test_base_only_judges_the_base_stage_at_its_size(dataset, tmp_path):
    out = tmp_path / "out"
    r = run_evaluate("--dataset", dataset, "--random", "--num_clips", "2", "--batch_size", "2",
                     "--steps", "2", "--base_only", "--fvd=false", "--out_dir", str(out),
                     "--base_config.model.image_size=16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["stage"] == "base" and m["num_clips"] == 2 and "ssr_consistency" not in m
    assert all(c["shape"] == [4, 16, 16, 3] for c in m["clips"])  # the base's 16 px, no SSR


@pytest.mark.parametrize("args, message", [
    (["--num_clips", "99", "--random"], "--num_clips=99 must be in [1, 16]"),
    (["--num_clips", "2"], "--base_ckpt is not set"),
    (["--videos_dir", "{tmp}", "--prompts_file", "{tmp}/nope.json"], "--prompts_file="),
    (["--base_run", "{tmp}", "--base_only", "--num_clips", "2"], "has no config.json"),
])
def test_bad_inputs_fail_with_one_line(dataset, tmp_path, args, message):
    r = run_evaluate("--dataset", dataset, *[a.format(tmp=tmp_path) for a in args],
                     cwd=tmp_path)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
