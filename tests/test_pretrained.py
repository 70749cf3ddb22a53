"""Pretrained folders: save -> load round trip, a sampled cascade with progress callbacks,
and one-line errors naming the file for damaged, missing or mismatched weights."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from flax import traverse_util

from lumiere_jax import pretrained, runs
from lumiere_jax.pipeline import LumierePipeline, SamplingConfig
from configs.common import tiny_config


def random_weights(config, seed):
    """NumPy draws of every weight of a run config (no XLA compile)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32),
                        runs.param_shapes(config))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    base_cfg, ssr_cfg = tiny_config("stunet"), tiny_config("ssr")
    base_cfg.text.update(tokenizer="words", vocab=("a", "red", "circle", "moving", "left"))
    stages = dict(base=(base_cfg, random_weights(base_cfg, 0)),
                  ssr=(ssr_cfg, random_weights(ssr_cfg, 1)))
    pipe = LumierePipeline.from_runs(stages["base"], stages["ssr"],
                                     SamplingConfig(base_steps=3, ssr_steps=2, stride=2))
    out = str(tmp_path_factory.mktemp("pretrained") / "tiny")
    pipe.save_pretrained(out, training={"base": {"steps": 8}}, note="test")
    return out, stages


def test_round_trip_keeps_configs_weights_and_sampling(folder):
    out, stages = folder
    manifest = pretrained.read_manifest(out)
    assert manifest["note"] == "test" and manifest["sampling"]["base_steps"] == 3
    assert manifest["stages"]["base"]["training"] == {"steps": 8}
    for name, (config, params) in stages.items():
        loaded_cfg, loaded = pretrained.load_stage(out, name)
        assert loaded_cfg.to_dict() == json.loads(config.to_json())
        a, b = traverse_util.flatten_dict(params), traverse_util.flatten_dict(loaded)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_from_pretrained_samples_with_a_progress_bar_per_stage(folder):
    out, _ = folder
    pipe = LumierePipeline.from_pretrained(out, progress=True, ssr_steps=3)
    assert pipe.sampling.base_steps == 3 and pipe.sampling.ssr_steps == 3  # manifest + override
    calls = []
    pipe.progress.update = lambda stage, total, step: calls.append((stage, total, step))
    video = pipe(["a red circle moving left"], jax.random.key(0))
    assert video.shape == (1, 4, 16, 16, 3) and video.dtype == np.uint8
    assert calls == [("base", 3, i) for i in range(3)] + [("ssr", 3, i) for i in range(3)]


def _copy(folder, tmp_path):
    import shutil
    dst = tmp_path / "copy"
    shutil.copytree(folder, dst)
    return str(dst)


def test_damaged_truncated_missing_or_mismatched_files_name_the_file(folder, tmp_path):
    out, stages = folder
    path = _copy(out, tmp_path)
    weights = os.path.join(path, "base.safetensors")
    data = bytearray(open(weights, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(weights, "wb").write(bytes(data))
    with pytest.raises(ValueError, match=r"base\.safetensors.*SHA-256"):
        pretrained.load_stage(path, "base")
    open(weights, "wb").write(bytes(data[: len(data) // 3]))  # truncated, hash not checked
    with pytest.raises(ValueError, match=r"base\.safetensors.*not a readable safetensors"):
        pretrained.load_stage(path, "base", verify=False)
    os.remove(weights)
    with pytest.raises(ValueError, match=r"base\.safetensors.*missing"):
        LumierePipeline.from_pretrained(path)
    # weights that do not fit the config: the SSR file under the base entry
    manifest = pretrained.read_manifest(path)
    manifest["stages"]["base"].update(weights="ssr.safetensors",
                                      sha256=manifest["stages"]["ssr"]["sha256"])
    json.dump(manifest, open(os.path.join(path, "manifest.json"), "w"))
    with pytest.raises(ValueError, match=r"ssr\.safetensors.*does not fit.*base\.config\.json"):
        pretrained.load_stage(path, "base")
    with pytest.raises(ValueError, match="not a pretrained folder"):
        LumierePipeline.from_pretrained(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="no stage 'style'"):
        pretrained.load_stage(path, "style")


def test_a_stunet_run_can_start_from_a_pretrained_t2i_stage(tmp_path):
    """config.train.init_from may name a pretrained folder: its one 't2i' stage is loaded
    (and inflates into the STUNet tree); beside a style t2i the one named 't2i' is; two
    others or none of that kind are refused."""
    from lumiere_jax.models import inflate_params
    from lumiere_jax.training import setup
    t2i_cfg, stunet_cfg = tiny_config("t2i"), tiny_config("stunet")
    weights = random_weights(t2i_cfg, 3)
    entry = pretrained.write_stage(tmp_path, "t2i", t2i_cfg, weights)
    pretrained.write_manifest(tmp_path, {"t2i": entry})
    stunet_cfg.train.init_from = str(tmp_path)
    source = setup.load_init_source(stunet_cfg)
    np.testing.assert_array_equal(source["unet"]["input_conv"]["kernel"],
                                  weights["unet"]["input_conv"]["kernel"])
    inflated = inflate_params(source["unet"], random_weights(stunet_cfg, 4)["unet"])
    np.testing.assert_array_equal(inflated["out_conv"]["kernel"],
                                  weights["unet"]["out_conv"]["kernel"])
    t2i_cfg.train.init_from = str(tmp_path)  # a t2i run fine-tuning the shipped t2i stage
    again = setup.load_init_source(t2i_cfg)
    np.testing.assert_array_equal(again["text"]["token_embedding"]["embedding"],
                                  weights["text"]["token_embedding"]["embedding"])
    style = pretrained.write_stage(tmp_path, "style_x", t2i_cfg, random_weights(t2i_cfg, 5))
    pretrained.write_manifest(tmp_path, {"t2i": entry, "style_x": style})
    beside_style = setup.load_init_source(stunet_cfg)  # the stage named 't2i' wins
    np.testing.assert_array_equal(beside_style["unet"]["input_conv"]["kernel"],
                                  weights["unet"]["input_conv"]["kernel"])
    pretrained.write_manifest(tmp_path, {"a": entry, "style_x": style})
    with pytest.raises(ValueError, match="2 stages of kind 't2i'"):
        setup.load_init_source(stunet_cfg)


def test_a_stunet_run_can_fine_tune_a_pretrained_stunet_stage(tmp_path):
    """`config.train.init_from_kind='stunet'`: a stunet run starts from a folder's STUNet
    stage (its temporal weights too, not only the T2I ones); a kind that is neither the
    stage's source nor its own is refused by the config check, naming the field."""
    from lumiere_jax.training import setup
    t2i_cfg, stunet_cfg = tiny_config("t2i"), tiny_config("stunet")
    t2i, stunet = random_weights(t2i_cfg, 3), random_weights(stunet_cfg, 4)
    pretrained.write_manifest(tmp_path, {
        "t2i": pretrained.write_stage(tmp_path, "t2i", t2i_cfg, t2i),
        "base": pretrained.write_stage(tmp_path, "base", stunet_cfg, stunet)})
    stunet_cfg.train.init_from = str(tmp_path)
    temporal = [k for k in stunet["unet"] if k.startswith("temporal_")]
    assert temporal and not any(k.startswith("temporal_") for k in t2i["unet"])
    assert setup.init_source_kind(stunet_cfg) == "t2i"
    stunet_cfg.train.init_from_kind = "stunet"
    source = setup.load_init_source(stunet_cfg)
    for k in temporal + ["input_conv"]:  # tree.map also fails on a differing structure
        jax.tree.map(np.testing.assert_array_equal, source["unet"][k], stunet["unet"][k])
    stunet_cfg.train.init_from_kind = "ssr"
    with pytest.raises(ValueError, match="init_from_kind='ssr'.*'t2i'.*'stunet'"):
        setup.check_config(stunet_cfg)


def test_each_stage_samples_on_the_schedule_its_run_trained_with(folder):
    """The SSR stage of a train.py run learnt the noise level of each time t on its own
    schedule (shift 2 log(schedule_base_size / image_size)); sampling it on another one
    (e.g. shifted to the base size) gives a miscalibrated denoiser."""
    from lumiere_jax.diffusion.schedules import cosine_schedule
    from lumiere_jax.training.setup import step_config

    out, stages = folder
    pipe = LumierePipeline.from_pretrained(out)
    for name, schedule in (("base", pipe.base_schedule), ("ssr", pipe.ssr_schedule)):
        config = stages[name][0]
        trained = step_config(config, runs.unet_config(config)).schedule
        assert schedule == trained, name
    ssr_cfg = stages["ssr"][0]
    assert pipe.ssr_schedule == cosine_schedule(ssr_cfg.model.image_size,
                                                ssr_cfg.diffusion.schedule_base_size)
    assert pipe.ssr_schedule != cosine_schedule(ssr_cfg.model.image_size,
                                                stages["base"][0].model.image_size)


def test_each_conditioned_mode_samples_the_stage_the_manifest_or_the_caller_chooses(tmp_path):
    """Text-to-video and edit: always 'base'. i2v / cinemagraph / inpaint: the caller's
    stage, else the manifest's `mode_stages`, else 'conditional' when shipped."""
    entry = dict(stage="stunet", weights="w.safetensors", config="c.json", sha256="")

    def folder(name, stages, **extra):
        path = tmp_path / name
        path.mkdir()
        pretrained.write_manifest(path, {s: entry for s in stages}, **extra)
        return str(path)

    plain = folder("plain", ["base"])
    both = folder("both", ["base", "conditional"])
    chosen = folder("chosen", ["base", "conditional"], mode_stages={"inpaint": "base"})
    assert [pretrained.base_stage_for(plain, m) for m in ("t2v", "i2v", "inpaint")] == \
        ["base"] * 3
    assert [pretrained.base_stage_for(both, m) for m in ("t2v", "edit", "i2v", "inpaint")] == \
        ["base", "base", "conditional", "conditional"]
    assert [pretrained.base_stage_for(chosen, m) for m in ("i2v", "cinemagraph", "inpaint")] \
        == ["conditional", "conditional", "base"]
    assert pretrained.base_stage_for(chosen, "inpaint", "conditional") == "conditional"
    assert pretrained.base_stage_for(both, "i2v", "base") == "base"
    with pytest.raises(ValueError, match=r"'conditional' for --mode=i2v \(given\).*ships"):
        pretrained.base_stage_for(plain, "i2v", "conditional")
    with pytest.raises(ValueError, match="--mode=edit samples the 'base' stage"):
        pretrained.base_stage_for(both, "edit", "conditional")
    broken = folder("broken", ["base"], mode_stages={"i2v": "conditional"})
    with pytest.raises(ValueError, match=r"for --mode=i2v \(in .*manifest.json\)"):
        pretrained.base_stage_for(broken, "i2v")


def test_mode_sampling_sets_a_modes_own_defaults_under_the_callers(folder, tmp_path):
    """The manifest's 'mode_sampling'[mode] replaces its 'sampling' for that mode only; the
    caller's overrides replace both; a mode or field it does not know is a one-line error
    naming the manifest."""
    out, _ = folder
    path = tmp_path / "per_mode"
    shutil.copytree(out, path)

    def with_mode_sampling(value):
        manifest = pretrained.read_manifest(path)
        manifest["mode_sampling"] = value
        with open(path / pretrained.MANIFEST, "w") as f:
            json.dump(manifest, f)

    with_mode_sampling({"i2v": {"base_steps": 5, "candidate_score": "coherence"}})
    steps = {m: LumierePipeline.from_pretrained(path, mode=m).sampling.base_steps
             for m in ("t2v", "edit", "i2v", "inpaint")}
    assert steps == {"t2v": 3, "edit": 3, "i2v": 5, "inpaint": 3}
    i2v = LumierePipeline.from_pretrained(path, mode="i2v", base_steps=7)
    assert (i2v.sampling.base_steps, i2v.sampling.candidate_score) == (7, "coherence")
    assert pretrained.sampling_defaults(path, "i2v")["base_steps"] == 5
    with pytest.raises(ValueError, match=r"mode='style'; valid: \('t2v'"):
        LumierePipeline.from_pretrained(path, mode="style")
    for bad, message in [({"i2v": {"steps": 5}}, r"\['steps'\], which are not SamplingConfig"),
                         ({"video": {"base_steps": 5}}, r"names the modes \['video'\]"),
                         ({"i2v": 5}, "must map a mode to sampling fields")]:
        with_mode_sampling(bad)
        with pytest.raises(ValueError, match=f"manifest.json'.*{message}"):
            LumierePipeline.from_pretrained(path, mode="i2v")
