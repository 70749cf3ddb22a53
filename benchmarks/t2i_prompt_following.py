"""Does a T2I stage follow its prompts? Sample N moving_shapes test prompts (full captions
and short prompts), read each image back with the analyzer (as a static 4-frame clip),
print colour / shape / background accuracy as JSON.

    python benchmarks/t2i_prompt_following.py pretrained/moving_shapes t2i 64

32 DDIM steps, guidance 3, dynamic clipping, seed 0; writes /tmp/t2i_eval_{full,short}.png
(the first 32 images).
"""
import sys, json
import jax, jax.numpy as jnp, numpy as np
import imageio.v3 as iio
from lumiere_jax import pretrained, runs
from lumiere_jax.sampling import unet_model_fn
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import cosine_schedule
from lumiere_jax.data import load_source
from lumiere_jax.eval import analyze_clip, short_caption
from lumiere_jax.eval.captions import normalize_labels

if len(sys.argv) != 4:
    sys.exit(__doc__)
folder, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
config, params = pretrained.load_stage(folder, name)
mcfg = runs.unet_config(config)
src = load_source("moving_shapes/f16_s32", "test")
recs = [src[i] for i in range(n)]
enc = runs.text_encode_fn(config, params["text"])
sched = cosine_schedule(32, 32)
nt, nm = enc([""])
@jax.jit
def draw(t, mk, key):
    fn = unet_model_fn(mcfg, params["unet"], t, mk, guidance_scale=3.0, null_text=jnp.asarray(nt),
                       null_mask=jnp.asarray(nm))
    x = jax.random.normal(key, (t.shape[0], 32, 32, 3))
    out = sample(lambda x, tt: fn(x, tt, None), x, jax.random.key(1), schedule=sched, num_steps=32,
                 prediction="v", clip="dynamic")
    return jnp.clip(jnp.round((out + 1) * 127.5), 0, 255).astype(jnp.uint8)
for mode in ("full", "short"):
    prompts = [r["caption"].decode() if mode == "full" else short_caption(normalize_labels(r))
               for r in recs]
    t, mk = enc(prompts)
    imgs = np.asarray(draw(jnp.asarray(t), jnp.asarray(mk), jax.random.key(0)))
    tally = {}
    for p, img in zip(prompts, imgs):
        a = analyze_clip(np.repeat(img[None], 4, 0))
        m = a.matches(p)
        for k in ("color", "shape", "background"):
            if m.get(k) is not None:
                tally.setdefault(k, []).append(bool(m[k]))
    print(json.dumps({"mode": mode, "n": n,
                      **{k: round(float(np.mean(v)), 3) for k, v in tally.items()}}), flush=True)
    iio.imwrite(f"/tmp/t2i_eval_{mode}.png",
                np.kron(np.concatenate([np.concatenate(list(imgs[i:i+8]), 1)
                                        for i in range(0, 32, 8)], 0),
                        np.ones((3,3,1), np.uint8)))
