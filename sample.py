r"""Text -> video with the Lumiere cascade: base STUNet (all frames at once) -> SSR
(MultiDiffusion over temporal windows) -> MP4 + GIF.

    python sample.py --prompt "a red circle moving right"      # the shipped model
    # -> samples/a-red-circle-moving-right.mp4 and .gif (--out to choose)

By default the cascade is the shipped one, `pretrained/moving_shapes` (`--pretrained` for
another folder in that layout). Its text-to-video goes through a keyframe (the manifest's
`keyframes`): its T2I draws 8 images of the prompt, its object reader keeps the one that
best shows the prompt's objects, and its image-to-video stage animates it along the
motion the planner reads from the prompt; `--keyframes 0 --candidates 4` samples every
frame from the text instead (the base STUNet, best of 4). Your own train.py runs instead:
    python sample.py --prompt "..." --base_config configs/demo_stunet.py \
        --base_ckpt runs/demo_stunet/checkpoints --ssr_config configs/demo_ssr.py \
        --ssr_ckpt runs/demo_ssr/checkpoints
(`--base_config.model.x=...` overrides work as in train.py; EMA weights by default; each
stage reads prompts with its own run's text encoder). `--random` samples the tiny configs
with random weights: a smoke test of the whole path (the video is noise).
Compiled programs are kept in a persistent cache (`--cache_dir`), so a second run with the
same shapes skips most of the compile time, progress bars included (on one CPU device
they are driven through an XLA FFI target, `lumiere_jax.diffusion.progress`; 2 cores,
2026-12-07: about 50 s the first time, 36-45 s after).

Applications (`--mode`; inputs are resized to each stage, masks are images, white = 1):
    --mode i2v --image first.png                     image-to-video
    --mode cinemagraph --image still.png --mask still_region.png
    --mode inpaint --video clip.mp4 --mask known_region.png
    --mode edit --video clip.mp4 --strength 0.6      SDEdit video-to-video
With the shipped folder, i2v / cinemagraph / inpaint sample its conditional STUNet (stage
'conditional', the 7-channel `<C, M>` input); without one the base is steered by
replacement. Inputs of another size are center-cropped and resized (with a notice); grey
mask levels are thresholded at half (with a warning).
Stylized generation: `--style outline --style_alpha 0.8` blends a shipped style (a T2I
fine-tuned on outlined shapes) into the base STUNet's spatial weights (and the keyframe
T2I's); for your own runs,
`--style_ckpt runs/style_t2i/checkpoints` (same T2I config as the base).
"""

from __future__ import annotations

import os
import re
import time

import imageio.v3 as iio
import jax
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from lumiere_jax import cli, pretrained, runs
from lumiere_jax.applications import interpolate_spatial_weights
from lumiere_jax.data.video_io import center_crop_resize, read_video
from lumiere_jax.pipeline import LumierePipeline, SamplingConfig

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PRETRAINED = os.path.join(ROOT, "pretrained", "moving_shapes")

flags.DEFINE_multi_string("prompt", ["a red circle moving right"],
                          "prompt(s); repeat the flag for a batch")
flags.DEFINE_string("out", "", "output .mp4 or .gif (batch items get _i suffixes); default: "
                    "samples/<prompt-slug>.mp4 and .gif")
flags.DEFINE_string("pretrained", DEFAULT_PRETRAINED, "pretrained folder (manifest.json + "
                    "one .safetensors per stage); ignored with --base_ckpt / --random")
config_flags.DEFINE_config_file("base_config", os.path.join(ROOT, "configs/stunet.py:tiny"),
                                "with --base_ckpt / --random: the base run's config "
                                "(a stunet or conditional run)")
config_flags.DEFINE_config_file("ssr_config", os.path.join(ROOT, "configs/ssr.py:tiny"),
                                "with --ssr_ckpt / --random: the SSR run's config")
flags.DEFINE_string("base_ckpt", "", "checkpoint folder of a base (stunet / conditional) run")
flags.DEFINE_string("ssr_ckpt", "", "checkpoint folder of an SSR run")
flags.DEFINE_bool("random", False, "random weights for stages without a checkpoint (smoke test)")
flags.DEFINE_integer("num_frames", 0, "frames (0: the base model's num_frames)")
flags.DEFINE_integer("seed", 0, "sampling seed")
cli.define_base_stage_flags()
flags.adopt_module_key_flags(cli)  # so --help lists them with this script's own
flags.DEFINE_float("critic_scale", None, "text-to-video: how hard the base stage follows "
                   "the shipped critic's score (None: the pretrained default; 0: off)")
flags.DEFINE_float("layout_until", None, "text-to-video: the base steps at t >= this are the "
                   "shipped layout expert's (None: the pretrained default; 0: off)")
flags.DEFINE_integer("window", 0, "SSR window in frames (0: the SSR model's num_frames)")
flags.DEFINE_integer("stride", 0, "SSR window stride (0: window // 2)")
flags.DEFINE_integer("chunk_size", 0, "SSR windows per model call (0: all at once)")
flags.DEFINE_float("fps", 8.0, "output frame rate")
flags.DEFINE_bool("ema", True, "use the EMA weights of the checkpoints")
flags.DEFINE_bool("progress", True, "progress bar per stage while sampling")
flags.DEFINE_string("cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "lumiere_jax",
                                              "xla"),
                    "persistent compilation cache ('' disables)")
MODES = {"t2v": (), "i2v": ("image",), "cinemagraph": ("image", "mask"),
         "inpaint": ("video", "mask"), "edit": ("video",)}
flags.DEFINE_enum("mode", "t2v", list(MODES), "what to generate (see the module docstring)")
flags.DEFINE_string("image", "", "i2v / cinemagraph: the first frame (PNG, JPEG, ...)")
flags.DEFINE_string("video", "", "inpaint / edit: the input video (MP4, GIF, ...)")
flags.DEFINE_string("mask", "",
                    "cinemagraph: still region; inpaint: known region (image, white = 1)")
flags.DEFINE_float("strength", 0.6, "edit: SDEdit noise level in (0, 1]")
flags.DEFINE_string("style", "", "a style the pretrained folder ships (e.g. 'outline': its "
                    "stage 'style_outline'), blended in by --style_alpha")
flags.DEFINE_string("style_ckpt", "", "checkpoint folder of a style t2i run (with --base_ckpt)")
flags.DEFINE_float("style_alpha", 0.8, "style weight interpolation in [0, 1] (with --style / "
                   "--style_ckpt; 0: the base's own weights)")


def load_stage(config, ckpt: str, use_ema: bool, name: str, key: jax.Array) -> dict:
    """`{'unet', 'text'}` weights of a run: from its checkpoint, or random (--random)."""
    if not ckpt:
        if not flags.FLAGS.random:
            raise ValueError(f"--{name}_ckpt is not set: give the checkpoint folder of a "
                             f"{config.stage} run, or --random for random weights")
        logging.warning("%s: no checkpoint given: RANDOM weights, the output is noise.", name)
        return runs.random_params(config, key)
    return runs.load_run_params(ckpt, config.stage, use_ema, field=f"--{name}_ckpt")


def slug(prompt: str) -> str:
    """'A red circle, moving right!' -> 'a-red-circle-moving-right' (at most 80 chars)."""
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:80] or "sample"


def output_paths(f, prompts: list[str]) -> list[list[str]]:
    """Per prompt, the files to write: --out (with _i suffixes for a batch), else
    samples/<slug>.mp4 and .gif."""
    if f.out:
        stem, dot, ext = f.out.rpartition(".")
        if ext.lower() not in ("mp4", "gif") or not dot:
            raise ValueError(f"--out={f.out!r} must end in .mp4 or .gif")
        return [[f.out]] if len(prompts) == 1 else [[f"{stem}_{i}.{ext}"]
                                                      for i in range(len(prompts))]
    names = [slug(p) if prompts.count(p) == 1 else f"{slug(p)}_{i}" for i, p in enumerate(prompts)]
    return [[os.path.join("samples", f"{n}.{ext}") for ext in ("mp4", "gif")] for n in names]


def _read_pixels(path: str, flag: str) -> np.ndarray:
    """An image file -> uint8 (H, W, 3)."""
    try:
        img = np.asarray(iio.imread(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"--{flag}={path!r}: cannot read an image ({e}).") from e
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
        raise ValueError(f"--{flag}={path!r}: expected an 8-bit grey, RGB or RGBA image, got "
                         f"{img.dtype} {img.shape}.")
    return img[..., :3]


def _fit(img: np.ndarray, flag: str, size: int) -> np.ndarray:
    """uint8 (H, W, C) -> (size, size, C), center-cropped to a square and resized, with a
    notice when the size changes."""
    if img.shape[:2] != (size, size):
        logging.warning("--%s is %dx%d: center-cropped and resized to %dx%d", flag,
                        img.shape[1], img.shape[0], size, size)
        return center_crop_resize(img[None], size)[0]
    return img


def read_image(path: str, flag: str, size: int) -> np.ndarray:
    """An image file -> uint8 (size, size, 3), center-cropped to a square and resized."""
    return _fit(_read_pixels(path, flag), flag, size)


def read_mask(path: str, flag: str, size: int) -> np.ndarray:
    """A mask image -> float (size, size) of 0 / 1, white = 1: grey levels are thresholded
    at half (with a warning), after the resize."""
    grey = _read_pixels(path, flag).mean(axis=-1)
    if not np.isin(grey, (0.0, 255.0)).all():
        logging.warning("--%s=%s is not black and white only: thresholded at half grey",
                        flag, path)
    mask = _fit(np.repeat(grey[..., None], 3, -1).astype(np.uint8), flag, size)[..., 0]
    return (mask >= 128).astype(np.float32)


def check_mode_inputs(f) -> None:
    """Every file the mode needs is given, and nothing it would ignore."""
    needed = MODES[f.mode]
    for name in ("image", "video", "mask"):
        given = bool(getattr(f, name))
        if name in needed and not given:
            raise ValueError(f"--mode={f.mode} needs --{name}.")
        if given and name not in needed:
            raise ValueError(f"--{name} is not used by --mode={f.mode} (it uses "
                             f"{', '.join('--' + n for n in needed) or 'no input files'}).")
    if f.candidates > 1 and f.mode == "edit":
        raise ValueError(f"--candidates={f.candidates}: --mode=edit (SDEdit) samples one clip "
                         "per input video")
    if f.redraw_strength and f.mode != "t2v":
        raise ValueError(f"--redraw_strength={f.redraw_strength}: the redraw is text-to-video's "
                         f"(--mode=t2v); --mode={f.mode} keeps its base clip as sampled")
    if f.candidates > 1 and f.mode != "t2v" and f.candidate_score in ("critic", "reader"):
        raise ValueError(f"--candidates={f.candidates} with --candidate_score="
                         f"{f.candidate_score}: the {f.candidate_score} reads text-to-video "
                         f"clips only; --mode={f.mode} picks by --candidate_score=coherence "
                         "or motion")
    if f["style_alpha"].present and not (f.style or f.style_ckpt):
        raise ValueError("--style_alpha needs --style (a shipped style, e.g. outline) or "
                         "--style_ckpt (a style t2i run)")
    if f.style and f.style_ckpt:
        raise ValueError("give --style (a shipped style) or --style_ckpt (a t2i run), not both")
    if (f.style or f.style_ckpt) and not 0.0 <= f.style_alpha <= 1.0:
        raise ValueError(f"--style_alpha={f.style_alpha} must be in [0, 1] (0: the base's own "
                         "spatial weights, 1: the style's)")
    if f.mode == "edit" and not 0.0 < f.strength <= 1.0:
        raise ValueError(f"--strength={f.strength} must be in (0, 1] (the SDEdit noise level)")


def generate(pipe: LumierePipeline, f, prompts: list[str], key: jax.Array) -> np.ndarray:
    """Run `f.mode` on the pipeline: uint8 (B, T, H, W, 3)."""
    frames, size = f.num_frames or None, pipe.ssr_config.image_size
    if f.mode == "t2v":
        return pipe(prompts, key, num_frames=frames)
    if f.mode == "i2v":
        return pipe.image_to_video(prompts, read_image(f.image, "image", size), key,
                                   num_frames=frames)
    if f.mode == "cinemagraph":
        return pipe.cinemagraph(prompts, read_image(f.image, "image", size),
                                read_mask(f.mask, "mask", size), key, num_frames=frames)
    video = read_video(f.video, size=size, num_frames=frames or pipe.base_config.num_frames)
    if f.mode == "inpaint":
        return pipe.inpaint(prompts, video, read_mask(f.mask, "mask", size), key)
    return pipe.edit(prompts, video, key, strength=f.strength)


def build_pipeline(f, key: jax.Array) -> LumierePipeline:
    """The shipped / --pretrained cascade, or two train.py runs (--base_ckpt / --random)."""
    overrides = cli.sampling_overrides(f, window=f.window, stride=f.stride,
                                       chunk_size=f.chunk_size)
    if not (f.base_ckpt or f.ssr_ckpt or f.random):
        if not os.path.isdir(f.pretrained):
            raise ValueError(f"--pretrained={f.pretrained!r} is not a folder; pass a pretrained "
                             "folder, --base_ckpt/--ssr_ckpt of train.py runs, or --random")
        if f.style_ckpt:
            raise ValueError("--style_ckpt blends a t2i run into a base run: use it with "
                             "--base_ckpt (or --style for a shipped style)")
        stage = pretrained.base_stage_for(f.pretrained, f.mode, f.base_stage)
        style = None
        if f.style:
            style = f.style if f.style.startswith("style_") else f"style_{f.style}"
            shipped = [n[len("style_"):] for n in pretrained.read_manifest(f.pretrained)["stages"]
                       if n.startswith("style_")]
            if style[len("style_"):] not in shipped:
                raise ValueError(f"--style={f.style!r}: {f.pretrained} ships the styles "
                                 f"{shipped or 'none'}")
        pipe = LumierePipeline.from_pretrained(f.pretrained, progress=f.progress,
                                               mode=f.mode, base_stage=f.base_stage, style=style,
                                               style_alpha=f.style_alpha if style else 0.0,
                                               **overrides)
        if f.mode == "t2v" and pipe.sampling.keyframes:
            logging.info("text-to-video through a keyframe: the shipped 't2i' stage draws %d "
                         "image(s) per prompt, the image-to-video stage animates the one the "
                         "object reader keeps (--keyframes 0: every frame from the text)",
                         pipe.sampling.keyframes)
        elif stage != "base":
            logging.info("--mode=%s: sampling the shipped %r stage", f.mode, stage)
        return pipe
    if f.base_stage:
        raise ValueError(f"--base_stage={f.base_stage} picks a stage of --pretrained; with "
                         "--base_ckpt / --random the base run is the stage")
    base_cfg, ssr_cfg = f.base_config, f.ssr_config
    for name, cfg, stages in (("base_config", base_cfg, ("stunet", "conditional")),
                              ("ssr_config", ssr_cfg, ("ssr",))):
        if cfg.stage not in stages:
            raise ValueError(f"--{name} is a {cfg.stage!r} config; expected one of {stages}")
    k_base, k_ssr = jax.random.split(key)
    base = load_stage(base_cfg, f.base_ckpt, f.ema, "base", k_base)
    ssr = load_stage(ssr_cfg, f.ssr_ckpt, f.ema, "ssr", k_ssr)
    if f.style_ckpt:
        style = runs.load_run_params(f.style_ckpt, "t2i", f.ema, field="--style_ckpt")
        base["unet"] = interpolate_spatial_weights(base["unet"], style["unet"], f.style_alpha)
        logging.info("style: spatial weights = %.2f style + %.2f base", f.style_alpha,
                     1 - f.style_alpha)
    defaults = dict(base_steps=32, ssr_steps=16, base_guidance=3.0,
                    prediction=base_cfg.diffusion.prediction)
    return LumierePipeline.from_runs((base_cfg, base), (ssr_cfg, ssr),
                                     SamplingConfig(**{**defaults, **overrides}),
                                     progress=f.progress)


def main(argv) -> None:
    del argv
    f = flags.FLAGS
    check_mode_inputs(f)
    if f.cache_dir:
        jax.config.update("jax_compilation_cache_dir", f.cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    prompts = list(f.prompt)
    paths = output_paths(f, prompts)
    k_weights, k_sample = jax.random.split(jax.random.key(f.seed))
    start = time.perf_counter()
    pipe = build_pipeline(f, k_weights)
    videos = np.asarray(generate(pipe, f, prompts, k_sample))
    logging.info("sampled %s in %.1f s (compile included)", videos.shape,
                 time.perf_counter() - start)
    for video, files in zip(videos, paths):
        for path in files:
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            (LumierePipeline.save_mp4 if path.endswith(".mp4") else LumierePipeline.save_gif)(
                video, path, fps=f.fps)
            print(f"wrote {path}: {video.shape[0]} frames of {video.shape[1]}x{video.shape[2]}")
    print(f"{time.perf_counter() - start:.1f} s in all (weights, compile, sampling)")


if __name__ == "__main__":
    cli.run(main, __doc__, "sample.py")
