"""export_pretrained.py refuses bad sampling defaults before it writes anything: each
one-line error names the flag, and `--out` is left as it was (here: never created).
Stage sources are one-stage pretrained folders cut from the shipped one (no training)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from lumiere_jax import pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "pretrained", "moving_shapes")


def one_stage_folder(tmp_path, name):
    """A pretrained folder holding only the shipped stage `name` (weights copied)."""
    folder = tmp_path / name
    folder.mkdir()
    entry = pretrained.read_manifest(SHIPPED)["stages"][name]
    for file in (entry["weights"], entry["config"]):
        shutil.copy(os.path.join(SHIPPED, file), folder / file)
    pretrained.write_manifest(folder, {name: entry})
    return str(folder)


def export(out, *args):
    return subprocess.run([sys.executable, "export_pretrained.py", "--out", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sources")
    return {name: one_stage_folder(tmp, name) for name in ("ssr", "critic")}


@pytest.mark.parametrize("flags, message", [
    (["--candidates", "4"], "--candidates=4 needs a 'critic' stage"),
    (["--critic_scale", "2"], "--critic_scale=2.0 needs a 'critic' stage"),
    (["--candidates", "0"], "--candidates=0: SamplingConfig.base_candidates=0 must be"),
    (["--steps", "0"], "--steps=0: SamplingConfig.base_steps must be an int >= 1"),
    (["--sampler", "euler"], "--sampler='euler': SamplingConfig.sampler='euler'"),
    (["--mode_stage", "edit=base"], "--mode_stage='edit=base': expected MODE=STAGE"),
    (["--mode_stage", "i2v=conditional"], "the folder has no 'conditional' stage"),
    (["--mode_sampling", "video.image_start=0.6"], "--mode_sampling='video.image_start=0.6': "
                                                   "expected MODE.FIELD=VALUE"),
    (["--mode_sampling", "i2v.start=0.6"], "FIELD a SamplingConfig field"),
    (["--mode_sampling", "i2v.candidate_score=critic"], "the critic reads text-to-video"),
    (["--mode_sampling", "i2v.image_start=0.6"],
     "--mode_sampling i2v.image_start=0.6: SamplingConfig.image_start=0.6 carries the image "
     "along the planner's motion: it needs motion_noise > 0"),
    (["--mode_sampling", "i2v.motion_noise=0.9"],
     "--mode_sampling=i2v.motion_noise=0.9 needs the folder's motion planner"),
    (["--mode_sampling", "i2v.candidate_score=motion", "--candidates", "4"],
     "SamplingConfig.candidate_score='motion' compares each candidate with the planner's "
     "motion: it needs motion_noise > 0"),
])
def test_bad_sampling_defaults_are_one_line_and_nothing_is_written(tmp_path, sources, flags,
                                                                   message):
    out = tmp_path / "out"
    r = export(out, "--stage", f"ssr={sources['ssr']}", *flags)
    assert r.returncode == 1, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("export_pretrained.py: error: ") and message in lines[-1], \
        r.stderr[-3000:]
    assert not out.exists()


def test_a_critic_stage_lets_the_folder_default_to_best_of_k(tmp_path, sources):
    out = tmp_path / "out"
    r = export(out, "--stage", f"ssr={sources['ssr']}", "--stage", f"critic={sources['critic']}",
               "--candidates", "4", "--critic_scale", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / pretrained.MANIFEST) as f:
        manifest = json.load(f)
    assert set(manifest["stages"]) == {"ssr", "critic"}
    assert manifest["sampling"]["base_candidates"] == 4
    assert manifest["sampling"]["critic_scale"] == 2.0
    # The critic that ranks the candidates is the one shipped, bit for bit.
    assert manifest["stages"]["critic"]["sha256"] == \
        pretrained.read_manifest(SHIPPED)["stages"]["critic"]["sha256"]


def test_mode_stage_is_written_and_chooses_the_stage_a_mode_samples(tmp_path, sources):
    tmp = tmp_path / "src"
    tmp.mkdir()
    base, cond = (one_stage_folder(tmp, name) for name in ("base", "conditional"))
    out = tmp_path / "out"
    r = export(out, "--stage", f"base={base}", "--stage", f"conditional={cond}",
               "--stage", f"ssr={sources['ssr']}", "--mode_stage", "inpaint=base",
               "--mode_sampling", "i2v.candidate_score=coherence", "--mode_sampling",
               "i2v.base_steps=8")
    assert r.returncode == 0, r.stderr[-3000:]
    assert pretrained.read_manifest(out)["mode_stages"] == {"inpaint": "base"}
    assert pretrained.read_manifest(out)["mode_sampling"] == {
        "i2v": {"candidate_score": "coherence", "base_steps": 8}}
    assert pretrained.sampling_defaults(out, "i2v")["candidate_score"] == "coherence"
    assert pretrained.sampling_defaults(out, "t2v")["candidate_score"] == "critic"
    r = export(out, "--stage", f"ssr={sources['ssr']}", "--mode_sampling",
               "inpaint.candidate_score=coherence", "--mode_sampling",
               "i2v.base_steps=6")  # a later export keeps what it does not name
    assert r.returncode == 0, r.stderr[-3000:]
    assert pretrained.read_manifest(out)["mode_sampling"] == {
        "i2v": {"candidate_score": "coherence", "base_steps": 6},
        "inpaint": {"candidate_score": "coherence"}}
    assert pretrained.base_stage_for(out, "inpaint") == "base"
    assert pretrained.base_stage_for(out, "i2v") == "conditional"  # no choice: shipped one
