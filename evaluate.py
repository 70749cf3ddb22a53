r"""Evaluate a text-to-video cascade on moving_shapes: does it follow the prompt, and how
close are its clips to real ones.

Generate from N prompts of the moving_shapes **test** split (never train) with two
train.py runs (`--*_config` / `--*_ckpt`, as sample.py; `--random` for random weights):
    python evaluate.py --base_config configs/demo_stunet.py \
        --base_ckpt runs/demo_stunet/checkpoints --ssr_config configs/demo_ssr.py \
        --ssr_ckpt runs/demo_ssr/checkpoints --num_clips 64 --out_dir eval/demo
or a pretrained folder, optionally with a train.py run as its base stage (judged beside
the folder's SSR; `--base_only` skips the SSR):
    python evaluate.py --pretrained pretrained/moving_shapes --base_run runs/demo_stunet \
        --base_only --short_prompts --fvd=false --num_clips 64 --batch_size 16
or score a folder of videos (MP4 / GIF / WebM ...) with a prompts file:
    python evaluate.py --videos_dir samples --prompts_file samples/prompts.json
The prompts file is JSON: {"clip.mp4": "a red circle moving right", "b.gif": {"prompt":
"...", "labels": {...moving_shapes labels...}}, ...} (file names relative to
--videos_dir); a clip is judged on its labels when given, else on its prompt. Files that
cannot be read are skipped and counted, not fatal.

The paper's applications (`--mode`), measured on held-out single-object test clips with a
pretrained folder (its 'conditional' stage for i2v / cinemagraph / inpaint when it ships
one), judged at the base stage's size (`lumiere_jax.eval.applications` defines each task
and figure):
    python evaluate.py --pretrained pretrained/moving_shapes --mode i2v --num_clips 64
    python evaluate.py --pretrained pretrained/moving_shapes --mode edit --strengths 0.3,0.9
    python evaluate.py --pretrained pretrained/moving_shapes --mode style --alphas 0,0.5,1
writes one row per swept value (SDEdit strength, style alpha) to <out_dir>/metrics.json
and a contact sheet per value.

Each clip is read back by `lumiere_jax.eval.analyze_clip`. Printed and written to
<out_dir>/metrics.json: accuracy per attribute (colour, shape, direction, speed, size,
count, background; an attribute the prompt does not name is not judged) and of colour +
shape + direction together, object presence, FVD against real test clips at the same size
and length (needs >= 9 frames and >= 2 clips), seconds per generated clip, and for the
whole cascade (without `--base_only`) whether the SSR kept the base video: the PSNR of its
output box-averaged back to the base size against the base video, and the seam ratio
(frame-to-frame change across MultiDiffusion window boundaries over the change inside
windows; `lumiere_jax.eval.cascade`, beside the base videos' own ratio); per clip the
prompt, the reading and the verdicts. <out_dir>/contact_sheet.png shows each clip's frames
with its prompt and reading. `--short_prompts`: prompts name only colour, shape and
direction of the largest object ("a red circle moving right"), as users type them.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from lumiere_jax import cli, pretrained, runs
from lumiere_jax.applications import interpolate_spatial_weights
from lumiere_jax.data import load_source
from lumiere_jax.data.video_io import center_crop_resize, read_video, write_video
from lumiere_jax.eval import I3DFeatures, analyze_clip, frechet_distance, short_caption
from lumiere_jax.eval import applications as apps
from lumiere_jax.eval.applications import MODES as APP_MODES
from lumiere_jax.eval.captions import normalize_labels
from lumiere_jax.eval.cascade import ssr_consistency
from lumiere_jax.eval.contact_sheet import contact_sheet
from lumiere_jax.eval.fvd import MIN_SIZE as FVD_MIN_SIZE
from lumiere_jax.eval.i3d import MIN_FRAMES as FVD_MIN_FRAMES
from lumiere_jax.eval.scoring import format_table, score_clip, summarize
from lumiere_jax.pipeline import LumierePipeline, SamplingConfig

ROOT = os.path.dirname(os.path.abspath(__file__))

flags.DEFINE_string("dataset", "moving_shapes/f16_s32", "TFDS name or built dataset folder "
                    "whose test split gives the prompts, labels and real clips")
flags.DEFINE_string("data_dir", "", "TFDS data_dir ('' : the TFDS default)")
flags.DEFINE_integer("num_clips", 32, "test prompts to generate from (generation mode)")
flags.DEFINE_integer("seed", 0, "which test records are drawn, and the sampling seed")
flags.DEFINE_bool("short_prompts", False, "prompts name only colour, shape and direction of "
                  "the largest object, and clips are judged on just those")
config_flags.DEFINE_config_file("base_config", os.path.join(ROOT, "configs/stunet.py:tiny"),
                                "the base run's config (a stunet or conditional run)")
config_flags.DEFINE_config_file("ssr_config", os.path.join(ROOT, "configs/ssr.py:tiny"),
                                "the SSR run's config")
flags.DEFINE_string("pretrained", "", "a pretrained folder (e.g. pretrained/moving_shapes) "
                    "to evaluate instead of --base_ckpt / --ssr_ckpt")
flags.DEFINE_string("base_ckpt", "", "checkpoint folder of the base run")
flags.DEFINE_string("base_run", "", "a train.py workdir (its config.json + checkpoints/) as the "
                    "base stage; with --pretrained it replaces that folder's base (its SSR "
                    "stays), so a run in training is judged beside the shipped SSR")
flags.DEFINE_string("ssr_ckpt", "", "checkpoint folder of the SSR run")
flags.DEFINE_bool("random", False, "random weights for stages without a checkpoint (smoke test)")
flags.DEFINE_bool("ema", True, "use the EMA weights of the checkpoints")
flags.DEFINE_integer("num_frames", 0, "frames to generate (0: the base model's num_frames)")
cli.define_base_stage_flags()
flags.adopt_module_key_flags(cli)  # so --help lists them with this script's own
flags.DEFINE_float("critic_scale", None, "critic guidance of the base stage (None: the "
                   "pretrained default; 0: off)")
flags.DEFINE_string("critic_run", "", "a train.py 'critic' workdir to guide with instead of "
                    "the pretrained folder's critic")
flags.DEFINE_string("layout_run", "", "a train.py 'layout' workdir to draw the first base "
                    "steps instead of the pretrained folder's layout expert")
flags.DEFINE_float("layout_until", None, "the base steps at t >= this are the layout "
                   "expert's (None: the pretrained default; 0: off)")
flags.DEFINE_integer("batch_size", 8, "prompts per cascade call (the last batch is padded)")
flags.DEFINE_bool("progress", True, "progress bars")
flags.DEFINE_string("videos_dir", "", "score the videos in this folder instead of generating")
flags.DEFINE_string("prompts_file", "", "folder mode: JSON file -> prompt / {prompt, labels} "
                    "(default: <videos_dir>/prompts.json)")
flags.DEFINE_string("out_dir", "eval", "where metrics.json and contact_sheet.png go")
flags.DEFINE_bool("fvd", True, "compute FVD against real test clips")
flags.DEFINE_integer("fvd_batch_size", 8, "clips per I3D forward")
flags.DEFINE_integer("sheet_rows", 16, "clips shown on the contact sheet")
flags.DEFINE_bool("base_only", False, "generation mode: judge the base stage's videos (its "
                  "size, no SSR); FVD against real clips at that size")
flags.DEFINE_enum("mode", "t2v", ("t2v",) + APP_MODES, "t2v: text-to-video (above); or an "
                  "application, measured on held-out clips (see the docstring)")
flags.DEFINE_list("strengths", ["0.3", "0.5", "0.7", "0.9"], "--mode=edit: SDEdit strengths")
flags.DEFINE_list("alphas", ["0", "0.25", "0.5", "0.75", "1"], "--mode=style: style alphas")
flags.DEFINE_string("style", "style_outline", "--mode=style: the pretrained folder's style stage")
flags.DEFINE_bool("save_videos", False, "generation mode: also write the clips as GIFs + "
                  "prompts.json into <out_dir>/videos (re-scorable with --videos_dir)")


# ---------------------------------------------------------------------------- the cascade


def load_stage(config, ckpt: str, name: str, key: jax.Array, f) -> dict:
    """`{'unet', 'text'}` weights of a run: its checkpoint, or random with --random."""
    if ckpt:
        return runs.load_run_params(ckpt, config.stage, f.ema, field=f"--{name}_ckpt")
    if not f.random:
        raise ValueError(f"--{name}_ckpt is not set: give the checkpoint folder of a "
                         f"{config.stage} run, --random for random weights, or --videos_dir "
                         "to score existing videos")
    logging.warning("%s: no checkpoint given: RANDOM weights, the output is noise.", name)
    return runs.random_params(config, key)


def build_cascade(f, key: jax.Array) -> LumierePipeline:
    """The cascade to evaluate: a pretrained folder, or two train.py runs (--base_ckpt /
    --ssr_ckpt, or --random)."""
    run = (runs.load_run(f.base_run, ("stunet", "conditional"), f.ema, field="--base_run")
           if f.base_run else None)
    critic = (runs.load_run(f.critic_run, "critic", f.ema, field="--critic_run")
              if f.critic_run else None)
    layout = (runs.load_run(f.layout_run, "layout", f.ema, field="--layout_run")
              if f.layout_run else None)
    if f.pretrained:
        return LumierePipeline.from_pretrained(f.pretrained, progress=f.progress, base=run,
                                               critic=critic, layout=layout,
                                               **cli.sampling_overrides(f))
    if critic is not None or layout is not None:
        raise ValueError("--critic_run / --layout_run join a --pretrained cascade; give "
                         "--pretrained too")
    if run is not None and f.base_ckpt:
        raise ValueError("--base_run and --base_ckpt both name the base stage: give one")
    base_cfg, ssr_cfg = (run[0] if run else f.base_config), f.ssr_config
    k_base, k_ssr = jax.random.split(key)
    base = run[1] if run else load_stage(base_cfg, f.base_ckpt, "base", k_base, f)
    ssr = load_stage(ssr_cfg, f.ssr_ckpt, "ssr", k_ssr, f)
    defaults = dict(base_steps=32, ssr_steps=16, base_guidance=3.0,
                    prediction=base_cfg.diffusion.prediction)
    return LumierePipeline.from_runs((base_cfg, base), (ssr_cfg, ssr),
                                     SamplingConfig(**{**defaults,
                                                       **cli.sampling_overrides(f)}),
                                     progress=f.progress)


def generate_clips(pipe: LumierePipeline, prompts: list[str], key: jax.Array, batch_size: int,
                   num_frames: int | None, base_only: bool = False
                   ) -> tuple[np.ndarray, np.ndarray | None, list[float]]:
    """uint8 (N, T, H, W, 3) for the prompts, in batches of `batch_size` (the last one
    padded with its last prompt, so every call has one shape); the base stage's videos
    (None with `base_only`: they are the output); seconds per batch."""
    videos, lows, seconds = [], [], []
    for i, start in enumerate(range(0, len(prompts), batch_size)):
        batch = prompts[start:start + batch_size]
        padded = batch + [batch[-1]] * (batch_size - len(batch))
        t0 = time.perf_counter()
        out = pipe(padded, jax.random.fold_in(key, i), num_frames=num_frames,
                   base_only=base_only, return_low_res=not base_only)
        low, out = (None, out) if base_only else out
        seconds.append(time.perf_counter() - t0)
        videos.append(np.asarray(out)[:len(batch)])
        lows.append(None if low is None else np.asarray(low)[:len(batch)])
        logging.info("generated %d / %d clips", start + len(batch), len(prompts))
    return np.concatenate(videos), None if base_only else np.concatenate(lows), seconds


# ---------------------------------------------------------------------------- inputs


def draw_records(source, n: int, seed: int) -> list[int]:
    """n distinct test-record indices drawn with `seed`."""
    if n < 1 or n > len(source):
        raise ValueError(f"--num_clips={n} must be in [1, {len(source)}] (the test split's size)")
    return sorted(np.random.default_rng(seed).choice(len(source), n, replace=False).tolist())


def caption_of(record: dict) -> str:
    cap = record["caption"]
    return cap.decode("utf-8") if isinstance(cap, bytes) else str(cap)


def read_prompts_file(path: str) -> dict[str, dict]:
    """{file name: {'prompt': str, 'labels'?: dict}} from the JSON prompts file."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--prompts_file={path!r}: cannot read it as JSON ({e})") from e
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"--prompts_file={path!r} must be a non-empty JSON object mapping "
                         "file names to prompts")
    out = {}
    for name, entry in raw.items():
        entry = {"prompt": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str):
            raise ValueError(f"--prompts_file={path!r}: entry {name!r} must be a prompt string "
                             "or {\"prompt\": ..., \"labels\": ...}")
        if "labels" in entry:
            entry = dict(entry, labels=normalize_labels(entry["labels"]))
        out[name] = entry
    return out


def read_folder(videos_dir: str, prompts: dict[str, dict]
                ) -> tuple[list[np.ndarray], list[dict], list[dict]]:
    """The readable videos of the prompts file -> (videos, their entries + 'file',
    skipped [{'file', 'reason'}])."""
    videos, entries, skipped = [], [], []
    for name in sorted(prompts):
        try:
            video = read_video(os.path.join(videos_dir, name))
            if video.shape[0] < 4 or min(video.shape[1:3]) < 16:
                raise ValueError(f"{video.shape[0]} frames of {video.shape[1]}x{video.shape[2]};"
                                 " the analyzer needs >= 4 frames of >= 16x16")
        except ValueError as e:  # VideoReadError is one
            logging.warning("skipping %s: %s", name, e)
            skipped.append({"file": name, "reason": str(e)})
            continue
        videos.append(video)
        entries.append(dict(prompts[name], file=name))
    return videos, entries, skipped


# ---------------------------------------------------------------------------- FVD


def fvd_against_real(videos: list[np.ndarray], real: list[np.ndarray], batch_size: int,
                     progress: bool) -> tuple[float | None, str]:
    """FVD of the clips against real ones brought to the clips' (H, W) and common length;
    (None, why) when it cannot be computed."""
    if len(videos) < 2 or len(real) < 2:
        return None, "FVD needs at least 2 clips on each side"
    h, w = videos[0].shape[1:3]
    frames = min(min(len(v) for v in videos), min(len(r) for r in real))
    if frames < FVD_MIN_FRAMES:
        return None, f"FVD needs >= {FVD_MIN_FRAMES} frames per clip (I3D); these have {frames}"
    if min(h, w) < FVD_MIN_SIZE:
        return None, f"FVD needs frames >= {FVD_MIN_SIZE} px; these are {h}x{w}"
    fit = lambda v: center_crop_resize(v[:frames], (h, w)) if v.shape[1:3] != (h, w) else v[:frames]
    fake = np.stack([fit(v) for v in videos])
    ref = np.stack([fit(r) for r in real])
    features = I3DFeatures(batch_size=batch_size, progress=progress)
    value = frechet_distance(features(fake, "generated"), features(ref, "real"))
    return value, f"{len(fake)} clips vs {len(ref)} real test clips, {frames} frames at {h}x{w}"


# ---------------------------------------------------------------------------- main


def collect(f):
    """-> videos, per-clip entries ({'prompt', 'target', ...}), real clips, info dict."""
    source = load_source(f.dataset, "test", data_dir=f.data_dir or None)
    info: dict = {"dataset": f.dataset, "split": "test"}
    if f.videos_dir:
        prompts = read_prompts_file(f.prompts_file or os.path.join(f.videos_dir, "prompts.json"))
        videos, entries, skipped = read_folder(f.videos_dir, prompts)
        for e in entries:
            e["target"] = e.get("labels") or e["prompt"]
        idx = draw_records(source, min(max(len(videos), 2), len(source)), f.seed)
        info.update(mode="folder", videos_dir=f.videos_dir, skipped=len(skipped),
                    skipped_files=skipped, seconds_per_clip=None)
        return videos, entries, [source[i]["video"] for i in idx], info

    idx = draw_records(source, f.num_clips, f.seed)
    records = [source[i] for i in idx]
    entries = []
    for i, rec in zip(idx, records):
        labels = normalize_labels(rec)
        prompt = short_caption(labels) if f.short_prompts else caption_of(rec)
        entries.append({"index": i, "prompt": prompt, "labels": labels,
                        "target": prompt if f.short_prompts else labels})
    k_weights, k_sample = jax.random.split(jax.random.key(f.seed))
    pipe = build_cascade(f, k_weights)
    videos, lows, seconds = generate_clips(pipe, [e["prompt"] for e in entries], k_sample,
                                           f.batch_size, f.num_frames or None, f.base_only)
    if lows is not None:  # the SSR kept the base video, without seams?
        info["ssr_consistency"] = ssr_consistency(lows, videos, pipe.window, pipe.stride)
    info.update(mode="generate", stage="base" if f.base_only else "cascade", skipped=0,
                skipped_files=[],
                seconds_per_clip=sum(seconds) / len(videos),
                seconds_per_clip_after_compile=(sum(seconds[1:]) / (len(videos) - min(
                    f.batch_size, len(videos))) if len(seconds) > 1 else None))
    return list(videos), entries, [r["video"] for r in records], info


def _sweep(f) -> tuple[str | None, list[float | None]]:
    """The swept setting of the mode and its values (edit: strength, style: alpha)."""
    name = {"edit": "strength", "style": "alpha"}.get(f.mode)
    raw = {"strength": f.strengths, "alpha": f.alphas}.get(name, [None])
    try:
        values = [None if v is None else float(v) for v in raw]
    except ValueError as e:
        raise ValueError(f"--{name}s={','.join(raw)}: expected numbers ({e})") from e
    return name, values


def evaluate_application(f) -> None:
    """--mode i2v | cinemagraph | inpaint | edit | style on held-out single-object test
    clips (`lumiere_jax.eval.applications`), judged at the base stage's size."""
    if not f.pretrained:
        raise ValueError(f"--mode={f.mode} evaluates a pretrained folder: pass --pretrained "
                         "(e.g. pretrained/moving_shapes)")
    sweep_name, values = _sweep(f)
    source = load_source(f.dataset, "test", data_dir=f.data_dir or None)
    tasks = apps.make_tasks(f.mode, source, f.num_clips, f.seed)
    stage = pretrained.base_stage_for(f.pretrained, f.mode, f.base_stage)
    needs = ("conditional",) if stage == "conditional" else ("stunet",)
    run = runs.load_run(f.base_run, needs, f.ema, field="--base_run") if f.base_run else None
    mode = f.mode if f.mode in pretrained.SAMPLE_MODES else "t2v"  # style: text-to-video
    pipe = LumierePipeline.from_pretrained(f.pretrained, progress=f.progress, mode=mode,
                                           base_stage=stage, base=run,
                                           **cli.sampling_overrides(f))
    base_unet = pipe.base_params
    style_unet = pretrained.load_stage(f.pretrained, f.style)[1]["unet"] if (
        f.mode == "style") else None
    key = jax.random.key(f.seed)  # the same noise at every swept value: paired figures
    os.makedirs(f.out_dir, exist_ok=True)
    results, clips = [], []
    for value in values:
        if f.mode == "style":  # same shapes: the compiled sampler is reused
            pipe.base_params = interpolate_spatial_weights(base_unet, style_unet, value)
        t0 = time.perf_counter()
        videos = apps.run_tasks(pipe, tasks, key, batch_size=f.batch_size, base_only=True,
                                strength=value if f.mode == "edit" else 0.6)
        seconds = time.perf_counter() - t0
        rows = [apps.measure(t, v, value if f.mode == "edit" else None)
                for t, v in zip(tasks, videos)]
        summary = apps.summarize_tasks(rows)
        results.append({sweep_name or "setting": value, **summary,
                        "seconds_per_clip": seconds / len(tasks)})
        clips += [dict(r, **({sweep_name: value} if sweep_name else {})) for r in rows]
        suffix = "" if value is None else f"_{sweep_name}{value:g}"
        shown = list(range(min(f.sheet_rows, len(videos))))
        contact_sheet(
            [np.concatenate([tasks[i].video, videos[i]], axis=2) if tasks[i].video is not None
             else videos[i] for i in shown],
            [[f"prompt: {rows[i]['prompt']}", f"read:   {rows[i]['reading']}"]
             + ([f"{sweep_name} {value:g}"] if sweep_name else []) for i in shown],
            os.path.join(f.out_dir, f"contact_sheet{suffix}.png"))
        if f.save_videos:
            folder = os.path.join(f.out_dir, "videos")
            os.makedirs(folder, exist_ok=True)
            for k, v in enumerate(videos[:f.sheet_rows]):
                write_video(os.path.join(folder, f"{f.mode}{suffix}_{k:04d}.gif"), v, fps=8)
    metrics = {"mode": f.mode, "stage": stage, "pretrained": f.pretrained,
               "dataset": f.dataset, "split": "test", "judged_at": "base stage size",
               "results": results, "clips": clips}
    with open(os.path.join(f.out_dir, "metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=1)
    columns = [k for k in results[0] if k not in ("num_clips", "setting")]
    print(f"--mode={f.mode} on {len(tasks)} held-out clips, stage {stage!r}, judged at "
          f"{pipe.base_config.image_size} px")
    print("  ".join(f"{c:>16}" for c in columns))
    for r in results:
        print("  ".join(f"{'-' if r.get(c) is None else format(r[c], '.3f'):>16}"
                        for c in columns))
    print(f"wrote {os.path.join(f.out_dir, 'metrics.json')} and contact sheets")


def main(argv) -> None:
    del argv
    f = flags.FLAGS
    if f.batch_size < 1 or f.fvd_batch_size < 1:
        raise ValueError("--batch_size and --fvd_batch_size must be >= 1")
    if f.mode != "t2v":
        return evaluate_application(f)
    if f.base_stage not in (None, "base"):
        raise ValueError(f"--base_stage={f.base_stage}: text-to-video samples the 'base' stage")
    videos, entries, real, info = collect(f)
    if not videos:
        raise ValueError(f"no readable video to score ({info['skipped']} skipped)")
    t0 = time.perf_counter()
    rows = [score_clip(analyze_clip(v), e["target"]) for v, e in zip(videos, entries)]
    info["analysis_seconds_per_clip"] = (time.perf_counter() - t0) / len(videos)
    summary = summarize(rows)
    fvd_value, fvd_note = None, "off (--nofvd)"
    if f.fvd:
        t0 = time.perf_counter()
        fvd_value, fvd_note = fvd_against_real(videos, real, f.fvd_batch_size, f.progress)
        info["fvd_seconds"] = time.perf_counter() - t0
    os.makedirs(f.out_dir, exist_ok=True)
    clips = [{k: v for k, v in e.items() if k != "target"} | {
        "shape": list(v.shape), "reading": r["reading"], "presence": r["presence"],
        "matches": r["matches"]} for v, e, r in zip(videos, entries, rows)]
    metrics = {**summary, "fvd": fvd_value, "fvd_note": fvd_note,
               "short_prompts": f.short_prompts, **info, "clips": clips}
    with open(os.path.join(f.out_dir, "metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=1)
    shown = list(range(min(f.sheet_rows, len(videos))))
    contact_sheet([videos[i] for i in shown],
                  [[f"prompt: {entries[i]['prompt']}", f"read:   {rows[i]['reading']}",
                    "wrong:  " + (", ".join(k for k, ok in rows[i]["matches"].items()
                                            if ok is False) or "-")] for i in shown],
                  os.path.join(f.out_dir, "contact_sheet.png"))
    if f.save_videos and info["mode"] == "generate":
        folder = os.path.join(f.out_dir, "videos")
        os.makedirs(folder, exist_ok=True)
        prompts = {}
        for k, (v, e) in enumerate(zip(videos, entries)):
            write_video(os.path.join(folder, f"{k:04d}.gif"), v, fps=8)
            prompts[f"{k:04d}.gif"] = {"prompt": e["prompt"], "labels": e["labels"]}
        with open(os.path.join(folder, "prompts.json"), "w", encoding="utf-8") as fh:
            json.dump(prompts, fh, indent=1)
    spc = info.get("seconds_per_clip")
    ssr = info.get("ssr_consistency") or {}
    print(format_table(summary, {"FVD": fvd_value, "seconds / clip": spc,
                                 "skipped files": info["skipped"]} | ({
        "SSR vs base PSNR (dB)": ssr["psnr_downsampled_vs_base"],
        "SSR seam ratio": ssr["seam_ratio"],
        "base seam ratio": ssr["base_seam_ratio"]} if ssr else {})))
    print(f"FVD: {fvd_note}")
    print(f"wrote {os.path.join(f.out_dir, 'metrics.json')} and "
          f"{os.path.join(f.out_dir, 'contact_sheet.png')}")


if __name__ == "__main__":
    cli.run(main, __doc__, "evaluate.py")
