"""Does temporal training help? The shipped base STUNet against its own starting point.

    python benchmarks/fvd_baselines.py pretrained/moving_shapes 64 [NAME=VALUE ...]

Generates base-size clips (no SSR) for the first N `moving_shapes` test prompts (full
captions) four ways. The first three with the same prompts, noise and plain sampler (the
folder's manifest: DDIM steps, guidance, dynamic clipping):
  base           the shipped STUNet ('base' stage), all frames at once, from plain noise;
  inflated_init  the 't2i' stage inflated into the STUNet config with freshly initialised
                 temporal layers (identity at init: its frames are T2I frames);
  t2i_per_frame  the 't2i' stage run on every frame separately, fresh noise per frame;
and
  shipped        `LumierePipeline.from_pretrained(folder)` with the manifest's text-to-video
                 defaults (moving noise, best of K, keyframes, layering: what sample.py
                 does), `NAME=VALUE` settings replacing them (e.g. keyframes=0).
Each set is read back by the analyzer (colour / shape / direction accuracy, presence) and
scored by FVD against the N real test clips. Prints one JSON line per set; writes
/tmp/fvd_baselines.json.
"""

from __future__ import annotations

import json
import sys
import time

import einops
import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax import pretrained, runs
from lumiere_jax.sampling import unet_model_fn
from lumiere_jax.data import load_source
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import cosine_schedule
from lumiere_jax.eval import I3DFeatures, analyze_clip, frechet_distance
from lumiere_jax.eval.captions import normalize_labels
from lumiere_jax.eval.scoring import score_clip, summarize
from lumiere_jax.models import inflate_params


def make_sampler(unet_cfg, unet_params, steps: int, guidance: float, clip: str | None):
    """jitted (text, mask, null_text, null_mask, noise (B, [T,] H, W, 3), key) -> uint8."""
    schedule = cosine_schedule(unet_cfg.image_size, unet_cfg.image_size)

    @jax.jit
    def draw(text, mask, null_text, null_mask, noise, key):
        fn = unet_model_fn(unet_cfg, unet_params, text, mask, guidance_scale=guidance,
                           null_text=null_text, null_mask=null_mask)
        out = sample(lambda x, t: fn(x, t, None), noise, key, schedule=schedule,
                     num_steps=steps, prediction="v", clip=clip)
        return jnp.clip(jnp.round((out + 1.0) * 127.5), 0, 255).astype(jnp.uint8)

    return draw


def generate(draw, encode, prompts, noise, key, batch: int, per_frame: bool) -> np.ndarray:
    """uint8 (N, T, H, W, 3) in batches of `batch` clips; `per_frame`: `draw` is an image
    model, run on the batch's B * T frames with each frame's prompt."""
    null_text, null_mask = encode([""])
    out = []
    for start in range(0, len(prompts), batch):
        text, mask = encode(prompts[start:start + batch])
        x = noise[start:start + batch]
        frames = x.shape[1]
        if per_frame:
            text, mask = (np.repeat(a, frames, axis=0) for a in (text, mask))
            x = einops.rearrange(x, "b t h w c -> (b t) h w c")
        video = np.asarray(draw(text, mask, null_text, null_mask, x,
                                jax.random.fold_in(key, start)))
        if per_frame:
            video = einops.rearrange(video, "(b t) h w c -> b t h w c", t=frames)
        out.append(video)
        print(f"  {start + len(x) // (frames if per_frame else 1)} / {len(prompts)} clips",
              file=sys.stderr, flush=True)
    return np.concatenate(out)


def shipped_sampler(folder: str, overrides: dict):
    """A `generate`-style draw for the pipeline with the folder's defaults (base stage only);
    it draws its own noise from the key."""
    from lumiere_jax.pipeline import LumierePipeline

    pipe = LumierePipeline.from_pretrained(folder, **overrides)

    def run(prompts, key, batch):
        return np.concatenate([pipe(prompts[i:i + batch], jax.random.fold_in(key, i),
                                    base_only=True) for i in range(0, len(prompts), batch)])

    return run


def main(folder: str, n: int, batch: int = 8, overrides: dict | None = None) -> None:
    sampling = pretrained.read_manifest(folder).get("sampling", {})
    steps, guidance = sampling.get("base_steps", 32), sampling.get("base_guidance", 3.0)
    clip = sampling.get("base_clip", "dynamic")
    base_config, base = pretrained.load_stage(folder, "base")
    t2i_config, t2i = pretrained.load_stage(folder, "t2i")
    base_cfg, t2i_cfg = runs.unet_config(base_config), runs.unet_config(t2i_config)
    inflated = inflate_params(t2i["unet"],
                              runs.random_params(base_config, jax.random.key(1))["unet"])

    source = load_source(base_config.data.name, "test")
    records = [source[i] for i in range(n)]
    prompts = [r["caption"].decode() if isinstance(r["caption"], bytes) else str(r["caption"])
               for r in records]
    real = np.stack([r["video"] for r in records])
    noise = np.asarray(jax.random.normal(jax.random.key(0), real.shape, jnp.float32))
    key = jax.random.key(2)

    encode_base = runs.text_encode_fn(base_config, base["text"])
    encode_t2i = runs.text_encode_fn(t2i_config, t2i["text"])

    def encode_inflated(prompts):  # the T2I's text, zeros for the fresh temporal text width
        states, mask = encode_t2i(prompts)
        extra = base_cfg.text_input_dim - states.shape[-1]
        return np.pad(np.asarray(states), ((0, 0), (0, 0), (0, extra))), mask
    def plain(draw, encode, per_frame):  # a set drawn by `generate`
        return lambda: generate(draw, encode, prompts, noise, key, batch, per_frame)

    sets = {
        "base": plain(make_sampler(base_cfg, base["unet"], steps, guidance, clip), encode_base,
                      False),
        "inflated_init": plain(make_sampler(base_cfg, inflated, steps, guidance, clip),
                               encode_inflated, False),
        "t2i_per_frame": plain(make_sampler(t2i_cfg, t2i["unet"], steps, guidance, clip),
                               encode_t2i, True),
        "shipped": lambda: shipped_sampler(folder, overrides or {})(prompts, key, 16),
    }
    features = I3DFeatures(batch_size=8, progress=False)
    real_features = features(real, "real")
    results, videos = [], {}
    for name, draw_set in sets.items():
        t0 = time.perf_counter()
        videos[name] = draw_set()
        seconds = time.perf_counter() - t0
        rows = [score_clip(analyze_clip(v), normalize_labels(r))
                for v, r in zip(videos[name], records)]
        summary = summarize(rows)
        value = frechet_distance(features(videos[name], name), real_features)
        settings = dict(settings=overrides or {}) if name == "shipped" else {}
        results.append(dict(set=name, **settings, n=n, fvd=round(float(value), 2),
                            accuracy={k: (None if v is None else round(v, 3))
                                      for k, v in summary["accuracy"].items()},
                            presence=round(summary["presence"], 3),
                            generate_seconds=round(seconds, 1)))
        print(json.dumps(results[-1]), flush=True)
    gap = np.abs(videos["inflated_init"].astype(int) - videos["t2i_per_frame"].astype(int))
    extra = dict(inflated_init_vs_t2i_per_frame_max_abs_uint8=int(gap.max()),
                 steps=steps, guidance=guidance, clip=clip, folder=folder)
    print(json.dumps(extra), flush=True)
    with open("/tmp/fvd_baselines.json", "w") as fh:
        json.dump(dict(results=results, **extra), fh, indent=1)


if __name__ == "__main__":
    if len(sys.argv) < 3 or not all("=" in a for a in sys.argv[3:]):
        sys.exit(__doc__)
    from lumiere_jax.cli import setting_value

    main(sys.argv[1], int(sys.argv[2]), overrides={
        k: setting_value(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])})
