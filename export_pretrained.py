r"""Write a pretrained folder (what `LumierePipeline.from_pretrained` and `sample.py` load)
from train.py runs: EMA weights as safetensors, each run's exact config, a manifest with
SHA-256s, the training figures read from each run's metrics.jsonl, and a copy of the
config files that made them.

    python export_pretrained.py --out pretrained/moving_shapes \
        --stage base=runs/demo_stunet --stage ssr=runs/demo_ssr \
        --stage t2i=runs/demo_t2i --steps 32 --ssr_steps 16 --guidance 3

`--stage NAME=WORKDIR[:CONFIG.py]`: the run's config is `WORKDIR/config.json` (written by
train.py) or, for runs without one, the config file given after the colon. A WORKDIR that
is a pretrained folder of one stage (train_resident.py's output) is shipped as it is. 'base' and
'ssr' make the cascade; any other name (t2i, conditional, style_*, critic, layout) is shipped
beside it (a 'critic' stage steers the base stage when `--critic_scale` > 0).
Stages already in the folder's manifest and not named again are kept, so stages can be
exported one at a time as they finish training.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil

import ml_collections
from absl import flags

from lumiere_jax import cli, pretrained, runs
from lumiere_jax.pipeline import SamplingConfig

flags.DEFINE_string("out", None, "pretrained folder to write")
flags.DEFINE_multi_string("stage", [], "NAME=WORKDIR[:CONFIG.py], repeatable")
flags.DEFINE_integer("steps", 32, "default base sampler steps")
flags.DEFINE_integer("ssr_steps", 16, "default SSR sampler steps")
flags.DEFINE_float("guidance", 3.0, "default base guidance scale")
flags.DEFINE_string("sampler", "ddim", "default sampler")
flags.DEFINE_float("time_shift", 0.0, "default log-SNR shift of the base stage's step times")
flags.DEFINE_float("critic_scale", 0.0, "default critic guidance of the base stage (needs a "
                   "'critic' stage in the folder; 0: off)")
flags.DEFINE_integer("candidates", 1, "default base clips per prompt, the one "
                     "--candidate_score picks kept (1: off)")
flags.DEFINE_float("layout_until", 0.0, "default: the base steps at t >= this are the layout "
                   "expert's (needs a 'layout' stage in the folder; 0: off)")
flags.DEFINE_float("layout_guidance", 3.0, "default guidance scale of the layout expert")
flags.DEFINE_float("motion_noise", 0.0, "default correlation of the base stage's translating "
                   "starting noise (needs the folder's motion planner, "
                   "scripts/fit_motion_planner.py; 0: off)")
flags.DEFINE_enum("candidate_score", "critic", ["critic", "motion", "coherence", "reader"],
                  "default: how best of --candidates picks (the critic's score, the measured "
                  "motion against the planner's, how much of the clip's change one translation "
                  "explains, or the object reader's reading of the prompt)")
flags.DEFINE_float("image_start", 0.0, "default: the noise level i2v and cinemagraphs start at "
                   "from the given image carried along the planned motion (needs "
                   "--motion_noise; 0: from pure noise)")
flags.DEFINE_enum("motion_layout", "field", ["field", "objects"], "default: what of that "
                  "noise moves, the whole field or one disc per object phrase")
flags.DEFINE_bool("layer_objects", False, "default: a text-to-video prompt that names several "
                  "objects is drawn one object phrase at a time and the clips layered")
flags.DEFINE_multi_string("mode_stage", [], "MODE=STAGE, repeatable: the stage i2v / "
                          "cinemagraph / inpaint sample from (base or conditional; kept from the "
                          "folder's manifest when not given, else conditional when shipped)")
flags.DEFINE_multi_string("mode_sampling", [], "MODE.FIELD=VALUE, repeatable: a sampling "
                          "default for one mode only, e.g. i2v.image_start=0.6 or "
                          "inpaint.candidate_score=motion (FIELD: a SamplingConfig field; kept "
                          "from the folder's manifest when not given)")
flags.DEFINE_integer("window", 0, "default SSR window (0: the SSR config's num_frames)")
flags.DEFINE_integer("stride", 0, "default SSR stride (0: window // 2)")


# The flag that sets each sampling default, by its `SamplingConfig` field.
SAMPLING_FLAGS = dict(base_steps="steps", ssr_steps="ssr_steps", base_guidance="guidance",
                      sampler="sampler", base_time_shift="time_shift",
                      critic_scale="critic_scale", base_candidates="candidates",
                      layout_until="layout_until", layout_guidance="layout_guidance",
                      motion_noise="motion_noise", motion_layout="motion_layout",
                      candidate_score="candidate_score", image_start="image_start",
                      layer_objects="layer_objects", window="window", stride="stride")


def mode_stage_choices(settings: list[str], stage_names: set[str]) -> dict[str, str]:
    """--mode_stage MODE=STAGE settings -> {mode: stage}, checked against the folder's stages."""
    choices = {}
    for setting in settings:
        mode, _, stage = setting.partition("=")
        if mode not in pretrained.CONDITIONED_MODES or stage not in pretrained.BASE_STAGES:
            raise ValueError(f"--mode_stage={setting!r}: expected MODE=STAGE with MODE one of "
                             f"{pretrained.CONDITIONED_MODES} and STAGE one of "
                             f"{pretrained.BASE_STAGES}")
        if stage not in stage_names:
            raise ValueError(f"--mode_stage={setting!r}: the folder has no {stage!r} stage "
                             f"(it will have {sorted(stage_names)})")
        choices[mode] = stage
    return choices


def mode_sampling_choices(settings: list[str], values: dict) -> dict[str, dict]:
    """--mode_sampling MODE.FIELD=VALUE settings -> {mode: {field: value}}, each mode's
    defaults checked as a `SamplingConfig` over the others (`values`). VALUE is read as
    JSON (0.6, 1, true), else kept as a string (motion)."""
    fields = {f.name for f in dataclasses.fields(SamplingConfig)}
    choices: dict[str, dict] = {}
    for setting in settings:
        target, _, text = setting.partition("=")
        mode, _, field = target.partition(".")
        if mode not in pretrained.SAMPLE_MODES or field not in fields or not text:
            raise ValueError(f"--mode_sampling={setting!r}: expected MODE.FIELD=VALUE with "
                             f"MODE one of {pretrained.SAMPLE_MODES} and FIELD a SamplingConfig "
                             "field (e.g. i2v.image_start=0.6)")
        choices.setdefault(mode, {})[field] = cli.setting_value(text)
    for mode, chosen in choices.items():
        if mode != "t2v" and chosen.get("candidate_score") in ("critic", "reader"):
            raise ValueError(f"--mode_sampling={mode}.candidate_score="
                             f"{chosen['candidate_score']}: the {chosen['candidate_score']} "
                             "reads text-to-video clips only (motion or coherence)")
        try:
            SamplingConfig(**{**values, **chosen})
        except ValueError as e:
            given = ", ".join(f"{mode}.{k}={v!r}" for k, v in chosen.items())
            raise ValueError(f"--mode_sampling {given}: {e}") from None
    return choices


def flag_setting(f, field: str) -> str:
    """'--candidates=4': the flag that sets `SamplingConfig` field `field`, as given."""
    flag = SAMPLING_FLAGS[field]
    return f"--{flag}={getattr(f, flag)!r}"


def sampling_defaults(f) -> tuple[dict, SamplingConfig]:
    """(the manifest's sampling defaults from the flags, their `SamplingConfig`), checked
    before anything is read or written; a bad value is a `ValueError` naming its flag."""
    values = dict(base_steps=f.steps, ssr_steps=f.ssr_steps, base_guidance=f.guidance,
                  sampler=f.sampler, base_time_shift=f.time_shift, critic_scale=f.critic_scale,
                  base_candidates=f.candidates, layout_until=f.layout_until,
                  layout_guidance=f.layout_guidance, motion_noise=f.motion_noise,
                  motion_layout=f.motion_layout, candidate_score=f.candidate_score,
                  image_start=f.image_start, layer_objects=f.layer_objects,
                  window=f.window or None,
                  stride=f.stride or None)
    try:
        return values, SamplingConfig(**values)
    except ValueError as e:
        named = [field for field in SAMPLING_FLAGS if f"SamplingConfig.{field}" in str(e)]
        if not named:
            raise
        raise ValueError(f"{flag_setting(f, named[0])}: {e}") from None


def run_config(workdir: str, config_file: str) -> ml_collections.ConfigDict:
    saved = runs.saved_config(workdir)
    if saved is not None:
        return saved
    if not config_file:
        raise ValueError(f"{workdir!r} has no config.json: give its config file as "
                         f"--stage NAME={workdir}:configs/X.py")
    spec = importlib.util.spec_from_file_location("run_config", config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def training_figures(workdir: str) -> dict:
    """Steps, summed step time and the mean loss of the last 50 steps, from metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        return {}
    rows = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows[row["step"]] = row  # a resumed run rewrites steps: keep the last
    steps = sorted(rows)
    tail = [rows[s]["loss"] for s in steps[-50:]]
    return dict(steps=steps[-1], train_seconds=round(sum(rows[s]["step_time_s"] for s in steps), 1),
                final_loss_last50=round(sum(tail) / len(tail), 5),
                first_loss=round(rows[steps[0]]["loss"], 5))


def pretrained_stage(folder: str, name: str) -> tuple:
    """(config, weights, training figures) of the one stage a pretrained folder holds
    (`train_resident.py`'s output)."""
    entries = pretrained.read_manifest(folder)["stages"]
    if len(entries) != 1:
        raise ValueError(f"--stage {name}={folder}: a pretrained folder given as a stage "
                         f"source must hold one stage; it holds {sorted(entries)}")
    (source,) = entries
    config, params = pretrained.load_stage(folder, source)
    return config, params, dict(entries[source].get("training", {}))


def main(argv) -> None:
    del argv
    f = flags.FLAGS
    sampling, checked = sampling_defaults(f)
    chosen_sampling = mode_sampling_choices(f.mode_sampling, sampling)
    stages, training, sources = {}, {}, {}
    for spec in f.stage:
        name, _, rest = spec.partition("=")
        workdir, _, config_file = rest.partition(":")
        if not name or not workdir:
            raise ValueError(f"--stage={spec!r}: expected NAME=WORKDIR[:CONFIG.py]")
        if os.path.isfile(os.path.join(workdir, pretrained.MANIFEST)):  # train_resident.py
            config, params, figures = pretrained_stage(workdir, name)
        else:
            config = run_config(workdir, config_file)
            params = runs.load_run_params(os.path.join(workdir, "checkpoints"), config.stage,
                                          field=f"--stage {name}")
            figures = training_figures(workdir)
        stages[name], training[name] = (config, params), figures
        sources[name] = dict(workdir=workdir, config_file=config_file or None)
    if not stages:
        raise ValueError("give at least one --stage NAME=WORKDIR[:CONFIG.py]")
    old = (pretrained.read_manifest(f.out)
           if os.path.isfile(os.path.join(f.out, pretrained.MANIFEST)) else {})
    entries = dict(old.get("stages", {}))
    kinds = [e["stage"] for e in entries.values()] + [cfg.stage for cfg, _ in stages.values()]
    uses_critic = checked.critic_settings()
    if uses_critic and "critic" not in kinds:
        given = ", ".join(flag_setting(f, setting.partition("=")[0]) for setting in uses_critic)
        raise ValueError(f"{given} needs a 'critic' stage to rank or steer the base clips: add "
                         "--stage critic=WORKDIR (a train.py run of configs/demo_critic.py)")
    if checked.layout_until and "layout" not in kinds:
        raise ValueError(f"{flag_setting(f, 'layout_until')} needs a 'layout' stage to draw the "
                         "first steps: add --stage layout=WORKDIR (a train.py run of "
                         "configs/demo_layout.py)")
    if checked.motion_noise and "motion_planner" not in old:
        raise ValueError(f"{flag_setting(f, 'motion_noise')} needs the folder's motion planner: "
                         f"run python scripts/fit_motion_planner.py {f.out} first")
    for mode, chosen in chosen_sampling.items():
        if chosen.get("motion_noise") and "motion_planner" not in old:
            raise ValueError(f"--mode_sampling={mode}.motion_noise={chosen['motion_noise']} "
                             "needs the folder's motion planner: run python "
                             f"scripts/fit_motion_planner.py {f.out} first")
    if (checked.candidate_score == "reader" and checked.base_candidates > 1
            and "object_reader" not in old):
        raise ValueError(f"{flag_setting(f, 'candidate_score')} needs the folder's object "
                         f"reader: run python scripts/train_object_reader.py {f.out} first")
    chosen_stages = mode_stage_choices(f.mode_stage, set(entries) | set(stages))
    entries.update({name: pretrained.write_stage(f.out, name, cfg, params, training[name])
                    for name, (cfg, params) in stages.items()})
    sources = {**old.get("sources", {}), **sources}
    if not {"base", "ssr"} <= set(entries):
        print(f"note: {f.out} has stages {sorted(entries)}; the cascade needs 'base' and 'ssr'")
    prediction = next(iter(stages.values()))[0].diffusion.prediction
    sampling = dict(sampling, prediction=prediction)
    os.makedirs(os.path.join(f.out, "configs"), exist_ok=True)
    for name, src in sources.items():
        if src["config_file"]:
            shutil.copy(src["config_file"], os.path.join(f.out, "configs"))
    extra = {key: old[key] for key in ("motion_planner", "object_reader") if key in old}
    mode_stages = {**old.get("mode_stages", {}), **chosen_stages}
    if mode_stages:
        extra["mode_stages"] = mode_stages
    old_sampling = old.get("mode_sampling", {})
    mode_sampling = {m: {**old_sampling.get(m, {}), **chosen_sampling.get(m, {})}
                     for m in {**old_sampling, **chosen_sampling}}
    if mode_sampling:
        extra["mode_sampling"] = mode_sampling
    path = pretrained.write_manifest(f.out, entries, sampling=sampling, sources=sources,
                                     **extra)
    print(f"wrote {path}")
    for name, e in entries.items():
        print(f"  {name}: {e['weights']} ({e['stage']}) {e.get('training')}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["out"])
    cli.run(main, __doc__, "export_pretrained.py")
