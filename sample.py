"""Text -> video with the Lumiere cascade: base STUNet (all frames at once) -> SSR
(MultiDiffusion over temporal windows) -> MP4 / GIF.

    python sample.py --prompt "a small red circle moving slowly left on a black background" \
        --base_config configs/stunet.py --base_ckpt runs/stunet/checkpoints \
        --ssr_config configs/ssr.py --ssr_ckpt runs/ssr/checkpoints --out out.mp4

`--*_config` are the train.py config files of the two runs (`--base_config.model.x=...`
overrides work as in train.py); `--*_ckpt` their checkpoint folders (EMA weights by
default); each stage reads prompts with its own run's text encoder. Without a checkpoint a
stage runs with random weights (noise video; a smoke test of the whole path) and says so.

Applications (`--mode`; inputs are resized to each stage, masks are images, white = 1):
    --mode i2v --image first.png                     image-to-video
    --mode cinemagraph --image still.png --mask still_region.png
    --mode inpaint --video clip.mp4 --mask known_region.png
    --mode edit --video clip.mp4 --strength 0.6      SDEdit video-to-video
Stylized generation: `--style_ckpt runs/style_t2i/checkpoints --style_alpha 0.8` blends a
style-fine-tuned T2I run (same T2I config as the base) into the base STUNet's spatial weights.
"""

from __future__ import annotations

import sys
import time

import flax.linen as nn
import imageio.v3 as iio
import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lumiere_jax.applications import interpolate_spatial_weights
from lumiere_jax.data.video_io import center_crop_resize, read_video
from lumiere_jax.models import UNet
from lumiere_jax.pipeline import LumierePipeline, SamplingConfig
from lumiere_jax.text import TextEncoder
from lumiere_jax.text.cache import make_encode_fn
from lumiere_jax.training import setup

config_flags.DEFINE_config_file("base_config", "configs/tiny_stunet.py",
                                "base run config: a stunet or conditional (7-channel) run")
config_flags.DEFINE_config_file("ssr_config", "configs/tiny_ssr.py", "SSR run config")
flags.DEFINE_string("base_ckpt", "", "checkpoint folder of the base (stunet / conditional) run")
flags.DEFINE_string("ssr_ckpt", "", "checkpoint folder of the SSR run")
flags.DEFINE_multi_string("prompt", ["a small red circle moving slowly left on a black background"],
                          "prompt(s); repeat the flag for a batch")
flags.DEFINE_string("out", "sample.mp4", "output path (.mp4 or .gif); batch items get _i suffixes")
flags.DEFINE_integer("num_frames", 0, "frames (0: the base config's num_frames)")
flags.DEFINE_integer("seed", 0, "sampling seed")
flags.DEFINE_integer("base_steps", 32, "base sampler steps")
flags.DEFINE_integer("ssr_steps", 16, "SSR sampler steps")
flags.DEFINE_enum("sampler", "ddim", ["ddim", "ddpm", "dpmpp_2m"], "sampler")
flags.DEFINE_float("guidance", 3.0, "classifier-free guidance scale of the base stage")
flags.DEFINE_integer("window", 0, "SSR window in frames (0: the SSR config's num_frames)")
flags.DEFINE_integer("stride", 0, "SSR window stride (0: window // 2)")
flags.DEFINE_integer("chunk_size", 0, "SSR windows per model call (0: all at once)")
flags.DEFINE_float("fps", 8.0, "output frame rate")
flags.DEFINE_bool("ema", True, "use the EMA weights of the checkpoints")
MODES = {"t2v": (), "i2v": ("image",), "cinemagraph": ("image", "mask"),
         "inpaint": ("video", "mask"), "edit": ("video",)}
flags.DEFINE_enum("mode", "t2v", list(MODES), "what to generate (see the module docstring)")
flags.DEFINE_string("image", "", "i2v / cinemagraph: the first frame (PNG, JPEG, ...)")
flags.DEFINE_string("video", "", "inpaint / edit: the input video (MP4, GIF, ...)")
flags.DEFINE_string("mask", "", "cinemagraph: still region; inpaint: known region (image, white = 1)")
flags.DEFINE_float("strength", 0.6, "edit: SDEdit noise level in (0, 1]")
flags.DEFINE_string("style_ckpt", "", "checkpoint folder of the style t2i run")
flags.DEFINE_float("style_alpha", 0.0, "style weight interpolation in [0, 1] (0: off)")


def load_stage(config, ckpt: str, use_ema: bool, name: str, key: jax.Array) -> dict:
    """`{'unet', 'text'}` weights of a run: from its checkpoint, or random with a warning."""
    model, encoder = UNet(setup.unet_config(config)), TextEncoder(setup.text_config(config))
    if not ckpt:
        logging.warning("%s: no checkpoint given: RANDOM weights, the output is noise.", name)
        return nn.meta.unbox(jax.jit(setup.make_init_fn(model, encoder, config))(key))
    return setup.load_run_params(ckpt, config.stage, use_ema, field=f"--{name}_ckpt")


def read_image(path: str, flag: str, size: int) -> np.ndarray:
    """An image file -> uint8 (size, size, 3), center-cropped to a square and resized."""
    try:
        img = np.asarray(iio.imread(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"--{flag}={path!r}: cannot read an image ({e}).") from e
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
        raise ValueError(f"--{flag}={path!r}: expected an 8-bit grey, RGB or RGBA image, got "
                         f"{img.dtype} {img.shape}.")
    return center_crop_resize(img[None, ..., :3], size)[0]


def read_mask(path: str, flag: str, size: int) -> np.ndarray:
    """A mask image -> float (size, size) in [0, 1], white = 1."""
    return read_image(path, flag, size).mean(axis=-1) / 255.0


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
    if f.style_alpha and not f.style_ckpt:
        raise ValueError("--style_alpha needs --style_ckpt (the checkpoints of a style t2i run "
                         "with the base run's T2I config).")


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


def main(argv) -> None:
    del argv
    f = flags.FLAGS
    base_cfg, ssr_cfg = f.base_config, f.ssr_config
    for name, cfg, stages in (("base_config", base_cfg, ("stunet", "conditional")),
                              ("ssr_config", ssr_cfg, ("ssr",))):
        if cfg.stage not in stages:
            raise ValueError(f"--{name} is a {cfg.stage!r} config; expected one of {stages}")
    check_mode_inputs(f)
    if base_cfg.diffusion.prediction != ssr_cfg.diffusion.prediction:
        raise ValueError(f"the base run predicts {base_cfg.diffusion.prediction!r} but the SSR "
                         f"run {ssr_cfg.diffusion.prediction!r}; the sampler needs one kind")
    k_base, k_ssr, k_sample = jax.random.split(jax.random.key(f.seed), 3)
    base = load_stage(base_cfg, f.base_ckpt, f.ema, "base", k_base)
    ssr = load_stage(ssr_cfg, f.ssr_ckpt, f.ema, "ssr", k_ssr)
    if f.style_alpha:
        style = setup.load_run_params(f.style_ckpt, "t2i", f.ema, field="--style_ckpt")
        base["unet"] = interpolate_spatial_weights(base["unet"], style["unet"], f.style_alpha)
        logging.info("style: spatial weights = %.2f style + %.2f base", f.style_alpha,
                     1 - f.style_alpha)

    base_text, ssr_text = (
        make_encode_fn(TextEncoder(setup.text_config(cfg)), run["text"], setup.tokenizer(cfg))
        for cfg, run in ((base_cfg, base), (ssr_cfg, ssr)))
    sampling = SamplingConfig(base_steps=f.base_steps, ssr_steps=f.ssr_steps, sampler=f.sampler,
                              prediction=base_cfg.diffusion.prediction,
                              base_guidance=f.guidance, window=f.window or None,
                              stride=f.stride or None, chunk_size=f.chunk_size or None)
    pipe = LumierePipeline(setup.unet_config(base_cfg), base["unet"], setup.unet_config(ssr_cfg),
                           ssr["unet"], base_text, sampling, ssr_text_encoder=ssr_text)
    start = time.perf_counter()
    videos = np.asarray(generate(pipe, f, list(f.prompt), k_sample))
    logging.info("sampled %s in %.1f s (compile included)", videos.shape,
                 time.perf_counter() - start)
    stem, dot, ext = f.out.rpartition(".")
    for i, video in enumerate(videos):
        path = f.out if len(videos) == 1 else f"{stem}_{i}{dot}{ext}"
        LumierePipeline.save_mp4(video, path, fps=f.fps) if ext == "mp4" else (
            LumierePipeline.save_gif(video, path, fps=f.fps))
        print(f"wrote {path}: {video.shape[0]} frames of {video.shape[1]}x{video.shape[2]}")


def cli_main(argv) -> None:
    """`main`, with bad flags / inputs reported as one line and exit status 1."""
    try:
        main(argv)
    except ValueError as e:
        sys.exit(f"sample.py: error: {e}")


if __name__ == "__main__":
    app.run(cli_main)
