"""Does an SSR stage super-resolve real clips? Real 64 px test clips are downsampled to the
SSR's low-res size, upsampled by the SSR over overlapping windows merged with
MultiDiffusion (as the pipeline runs it), and compared with the originals.

    python benchmarks/ssr_fidelity.py pretrained/moving_shapes ssr 8

Prints JSON: PSNR of SSR output vs the real clip and of plain bicubic upsampling vs the
real clip; PSNR of the SSR output resized back to low-res vs the low-res input; the mean
frame-to-frame change across window boundaries over that inside windows (seams: ~1).
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax import pretrained, runs
from lumiere_jax.sampling import unet_model_fn
from lumiere_jax.data import load_source
from lumiere_jax.eval import cascade
from lumiere_jax.diffusion.guidance import noise_augment
from lumiere_jax.diffusion.multidiffusion import multidiffusion_denoiser
from lumiere_jax.diffusion.samplers import sample

if len(sys.argv) != 4:
    sys.exit(__doc__)
folder, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
config, params = pretrained.load_stage(folder, name)
mcfg = runs.unet_config(config)
high, low = mcfg.image_size, config.diffusion.ssr_low_res
src = load_source(f"moving_shapes/f16_s{high}", "test")
real = np.stack([src[i]["video"] for i in range(n)]).astype(np.float32) / 127.5 - 1.0
frames, window = real.shape[1], mcfg.num_frames
stride = window // 2
prompts = [src[i]["caption"].decode() for i in range(n)]
enc = runs.text_encode_fn(config, params["text"])
text, mask = (jnp.asarray(a) for a in enc(prompts))
schedule = runs.noise_schedule(config)  # what the SSR run trained with


@jax.jit
def run(real, key):
    b = real.shape[0]
    small = jax.image.resize(real, (b, frames, low, low, 3), "linear")
    up = jax.image.resize(small, real.shape, "cubic")
    cond, level = noise_augment(up, key, schedule, t=0.1)
    window_fn = lambda x, t, c: unet_model_fn(mcfg, params["unet"], text, mask,
                                              cond_level=level)(x, t, c)
    denoise = multidiffusion_denoiser(window_fn, frames, window, stride)
    out = sample(lambda x, t: denoise(x, t, cond), jax.random.normal(key, real.shape),
                 jax.random.key(1), schedule=schedule, num_steps=16, prediction="v",
                 clip="static")
    back = jax.image.resize(out, small.shape, "linear")
    return jnp.clip(out, -1, 1), up, small, back


psnr = lambda a, b: cascade.psnr(a, b, peak=2.0)  # pixels in [-1, 1]
out, up, small, back = (np.asarray(a) for a in run(jnp.asarray(real), jax.random.key(0)))
print(json.dumps(dict(
    figure="ssr_fidelity", clips=n, frames=frames, window=window, stride=stride, low=low,
    high=high, psnr_ssr_vs_real=psnr(out, real), psnr_bicubic_vs_real=psnr(up, real),
    psnr_ssr_downsampled_vs_low_res_input=psnr(back, small),
    boundary_over_inside_change=cascade.seam_ratio(out, window, stride))))
