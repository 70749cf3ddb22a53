"""Text -> video with the Lumiere cascade: base STUNet (all frames at once) -> SSR
(MultiDiffusion over temporal windows) -> MP4 / GIF.

    python sample.py --prompt "a small red circle moving slowly left on a black background" \
        --base_config configs/stunet.py --base_ckpt runs/stunet/checkpoints \
        --ssr_config configs/ssr.py --ssr_ckpt runs/ssr/checkpoints --out out.mp4

`--*_config` are the train.py config files of the two runs (`--base_config.model.x=...`
overrides work as in train.py); `--*_ckpt` their checkpoint folders (EMA weights by
default). The text encoder of the base run feeds both stages. Without a checkpoint a
stage runs with random weights (noise video; a smoke test of the whole path) and says so.
"""

from __future__ import annotations

import time

import flax.linen as nn
import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lumiere_jax.models import UNet
from lumiere_jax.pipeline import LumierePipeline, SamplingConfig
from lumiere_jax.text import TextEncoder
from lumiere_jax.training import setup

config_flags.DEFINE_config_file("base_config", "configs/tiny_stunet.py", "base STUNet run config")
config_flags.DEFINE_config_file("ssr_config", "configs/tiny_ssr.py", "SSR run config")
flags.DEFINE_string("base_ckpt", "", "checkpoint folder of the base (stunet) run")
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


def load_stage(config, ckpt: str, use_ema: bool, name: str, key: jax.Array) -> dict:
    """`{'unet', 'text'}` weights of a run: from its checkpoint, or random with a warning."""
    model, encoder = UNet(setup.unet_config(config)), TextEncoder(setup.text_config(config))
    if not ckpt:
        logging.warning("%s: no checkpoint given: RANDOM weights, the output is noise.", name)
        return nn.meta.unbox(jax.jit(setup.make_init_fn(model, encoder, config))(key))
    return setup.load_run_params(ckpt, config.stage, use_ema, field=f"--{name}_ckpt")


def main(argv) -> None:
    del argv
    f = flags.FLAGS
    base_cfg, ssr_cfg = f.base_config, f.ssr_config
    for name, cfg, stage in (("base_config", base_cfg, "stunet"), ("ssr_config", ssr_cfg, "ssr")):
        if cfg.stage != stage:
            raise ValueError(f"--{name} is a {cfg.stage!r} config; expected a {stage!r} one")
    k_base, k_ssr, k_sample = jax.random.split(jax.random.key(f.seed), 3)
    base = load_stage(base_cfg, f.base_ckpt, f.ema, "base", k_base)
    ssr = load_stage(ssr_cfg, f.ssr_ckpt, f.ema, "ssr", k_ssr)

    tok = setup.tokenizer(base_cfg)
    encoder = TextEncoder(setup.text_config(base_cfg))
    encode = jax.jit(lambda p, ids, mask: encoder.apply({"params": p}, ids, mask))
    text_encoder = lambda prompts: encode(base["text"], *tok.encode(prompts))

    sampling = SamplingConfig(base_steps=f.base_steps, ssr_steps=f.ssr_steps, sampler=f.sampler,
                              prediction=base_cfg.diffusion.prediction,
                              base_guidance=f.guidance, window=f.window or None,
                              stride=f.stride or None, chunk_size=f.chunk_size or None)
    pipe = LumierePipeline(setup.unet_config(base_cfg), base["unet"], setup.unet_config(ssr_cfg),
                           ssr["unet"], text_encoder, sampling)
    start = time.perf_counter()
    videos = np.asarray(pipe(list(f.prompt), k_sample, num_frames=f.num_frames or None))
    logging.info("sampled %s in %.1f s (compile included)", videos.shape,
                 time.perf_counter() - start)
    stem, dot, ext = f.out.rpartition(".")
    for i, video in enumerate(videos):
        path = f.out if len(videos) == 1 else f"{stem}_{i}{dot}{ext}"
        LumierePipeline.save_mp4(video, path, fps=f.fps) if ext == "mp4" else (
            LumierePipeline.save_gif(video, path, fps=f.fps))
        print(f"wrote {path}: {video.shape[0]} frames of {video.shape[1]}x{video.shape[2]}")


if __name__ == "__main__":
    app.run(main)
