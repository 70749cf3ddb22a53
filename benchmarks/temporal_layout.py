"""Layouts for the temporal layers and formulations of GroupNorm, fwd + bwd on XLA:CPU.

    python benchmarks/temporal_layout.py

Why the STUNet's temporal layers rearrange `(B*T, H, W, C)` to one sequence per pixel,
`(B*H*W, T, C)`, and back, instead of working on the frames as they lie: at the demo
STUNet's shapes, the `k=3` temporal convolution (gradient of `sum(sin(conv(x)))` w.r.t.
input and kernel) as
  sequences      1D conv on `(B*H*W, T, C)`, with the two transposes in and out
  sequences_only the same conv alone (input already in sequence layout)
  frames         a `(3, 1)` 2D conv on `(B, T, H*W, C)` (a free reshape, no transpose)
  pixel_major    a `(1, 3)` 2D conv on `(B, H*W, T, C)`
  shifted_matmul three shifted `(C, C)` matmuls on `(B, T, H*W, C)`
and GroupNorm (+ SiLU, fwd + bwd) at the 32 px ResBlock shape as flax's `nn.GroupNorm`
(one reduction over pixels and group channels) against per-channel sums first (a
reduction that keeps C, the minor axis, then one over each group's channels), and the
model's fused op (per-channel sums, SiLU inside, a hand-written gradient); then the
ResBlock's second norm (a per-item scale / shift before the SiLU) as flax + jnp against
the fused op. Last, the temporal upsampler (2x frames, fwd + bwd w.r.t. input, kernel and
bias) at the matched step's top level as first written (each frame repeated, edge
padding, a 3-tap convolution) against the model's polyphase form (two 2-tap convolutions
on the sequence as it is, `nn.resample.upsample_sequences`).
One JSON object per figure: median time, FLOPs from `cost_analysis()`, FLOP/s against a
2048^2 fp32 matmul peak measured in the same run.
"""

from __future__ import annotations

import json
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange

from timing import matmul_peak, median_time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lumiere_jax.nn.norm import GroupNorm  # noqa: E402  (the repository's package)
from lumiere_jax.nn.resample import upsample_sequences  # noqa: E402

CONV_SHAPES = [(4, 16, 1024, 32), (4, 8, 256, 64), (4, 16, 1024, 64)]  # (B, T, H*W, C)
NORM_SHAPE, NORM_GROUPS = (64, 32, 32, 32), 8  # (B*T, H, W, C) of the 32 px level
UPSAMPLE_SHAPE = (4 * 32 * 32, 8, 32)  # (B*H*W, T, C) into the top level: 8 -> 16 frames


def conv_variants(batch: int, frames: int):
    """{name: (fn(x, kernel), input layout from (B, T, P, C))}."""
    dims = ("NHWC", "HWIO", "NHWC")

    def seq_conv(s, k):
        return jax.lax.conv_general_dilated(s, k, (1,), ((1, 1),),
                                            dimension_numbers=("NWC", "WIO", "NWC"))

    def sequences(x, k):
        y = seq_conv(rearrange(x, "b t p c -> (b p) t c"), k)
        return rearrange(y, "(b p) t c -> b t p c", b=batch)

    def frames_conv(x, k):
        return jax.lax.conv_general_dilated(x, k[:, None], (1, 1), ((1, 1), (0, 0)),
                                            dimension_numbers=dims)

    def pixel_major(x, k):
        return jax.lax.conv_general_dilated(x, k[None], (1, 1), ((0, 0), (1, 1)),
                                            dimension_numbers=dims)

    def shifted_matmul(x, k):
        padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)))
        return sum(jnp.einsum("btpc,cd->btpd", padded[:, i:i + frames], k[i]) for i in range(3))

    same = lambda x: x  # noqa: E731
    return {"sequences": (sequences, same),
            "sequences_only": (seq_conv, lambda x: rearrange(x, "b t p c -> (b p) t c")),
            "frames": (frames_conv, same),
            "pixel_major": (pixel_major, lambda x: rearrange(x, "b t p c -> b p t c")),
            "shifted_matmul": (shifted_matmul, same)}


def flax_group_norm(x, scale, bias, groups=NORM_GROUPS):
    module = nn.GroupNorm(num_groups=groups, epsilon=1e-5)
    return module.apply({"params": {"scale": scale, "bias": bias}}, x)


def channel_sum_group_norm(x, scale, bias, eps=1e-5):
    groups, channels = NORM_GROUPS, x.shape[-1]
    count = x.shape[1] * x.shape[2] * (channels // groups)
    group_mean = lambda s: jnp.repeat(  # noqa: E731
        rearrange(s, "n (g k) -> n g k", g=groups).sum(-1) / count, channels // groups, -1)
    mean = group_mean(jnp.sum(x, axis=(1, 2)))
    variance = jnp.maximum(group_mean(jnp.sum(jnp.square(x), axis=(1, 2))) - mean ** 2, 0.0)
    multiplier = jax.lax.rsqrt(variance + eps) * scale
    return (x - mean[:, None, None]) * multiplier[:, None, None] + bias


def fused_group_norm_silu(x, scale, bias, groups=NORM_GROUPS, mod_scale=None, mod_shift=None):
    """The model's op (`lumiere_jax.nn.norm.GroupNorm`): channel sums, the modulation and
    SiLU fused, and a hand-written gradient."""
    module = GroupNorm(num_groups=groups, silu=True)
    return module.apply({"params": {"scale": scale, "bias": bias}}, x, mod_scale, mod_shift)


def repeat_pad_conv_upsample(seq, kernel, bias):
    """The upsampler as first written: (N, T, C) -> (N, 2T, C)."""
    u = jnp.pad(jnp.repeat(seq, 2, axis=1), ((0, 0), (1, 1), (0, 0)), mode="edge")
    return jax.lax.conv_general_dilated(u, kernel, (1,), "VALID",
                                        dimension_numbers=("NWC", "WIO", "NWC")) + bias


def figure(name: str, fn, args, peak: float, **extra) -> dict:
    compiled = jax.jit(fn).lower(*args).compile()
    flops = float(compiled.cost_analysis().get("flops", 0.0))
    seconds = median_time(compiled, *args, repeats=15)
    return dict(figure=name, **extra, time_s=seconds, flops=flops,
                flops_per_s=flops / seconds, ratio_to_peak=flops / seconds / peak)


def main() -> None:
    peak = matmul_peak()
    print(json.dumps(dict(figure="matmul_peak", flops_per_s=peak)), flush=True)
    rng = np.random.default_rng(0)
    for shape in CONV_SHAPES:
        x = jnp.asarray(rng.normal(size=shape), jnp.float32)
        kernel = jnp.asarray(0.1 * rng.normal(size=(3, shape[-1], shape[-1])), jnp.float32)
        for name, (fn, layout) in conv_variants(shape[0], shape[1]).items():
            grad = jax.grad(lambda x, k, fn=fn: jnp.sum(jnp.sin(fn(x, k))), argnums=(0, 1))
            print(json.dumps(figure("temporal_conv_fwd_bwd", grad, (layout(x), kernel), peak,
                                    layout=name, shape_btpc=shape)), flush=True)
    x = jnp.asarray(rng.normal(size=NORM_SHAPE), jnp.float32)
    scale, bias = jnp.ones(NORM_SHAPE[-1]), jnp.zeros(NORM_SHAPE[-1])
    formulations = {  # each: silu(group_norm(x))
        "flax": lambda x, s, b: nn.silu(flax_group_norm(x, s, b)),
        "channel_sums": lambda x, s, b: nn.silu(channel_sum_group_norm(x, s, b)),
        "fused": fused_group_norm_silu}
    for name, norm_silu in formulations.items():
        grad = jax.grad(lambda x, s, b, f=norm_silu: jnp.sum(f(x, s, b) * x), argnums=(0, 1, 2))
        print(json.dumps(figure("group_norm_silu_fwd_bwd", grad, (x, scale, bias), peak,
                                formulation=name, shape=NORM_SHAPE, groups=NORM_GROUPS)),
              flush=True)
    # the ResBlock's second norm: a per-item scale / shift from the time embedding between
    # the norm and the SiLU, at the 32 px level of the 64-wide up blocks
    shape, groups = (64, 32, 32, 64), 32
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    scale, bias = jnp.ones(shape[-1]), jnp.zeros(shape[-1])
    mods = jnp.asarray(0.3 * rng.normal(size=(2, shape[0], shape[-1])), jnp.float32)
    variants = {
        "flax": lambda x, s, b, m: nn.silu(flax_group_norm(x, s, b, groups)
                                           * (1 + m[0][:, None, None]) + m[1][:, None, None]),
        "fused": lambda x, s, b, m: fused_group_norm_silu(x, s, b, groups, m[0], m[1])}
    for name, fn in variants.items():
        grad = jax.grad(lambda x, s, b, m, f=fn: jnp.sum(f(x, s, b, m) * x),
                        argnums=(0, 1, 2, 3))
        print(json.dumps(figure("group_norm_modulated_silu_fwd_bwd", grad,
                                (x, scale, bias, mods), peak, formulation=name, shape=shape,
                                groups=groups)), flush=True)
    seq = jnp.asarray(rng.normal(size=UPSAMPLE_SHAPE), jnp.float32)
    kernel = jnp.asarray(0.2 * rng.normal(size=(3,) + UPSAMPLE_SHAPE[-1:] * 2), jnp.float32)
    bias = jnp.asarray(rng.normal(size=UPSAMPLE_SHAPE[-1:]), jnp.float32)
    for name, fn in {"repeat_pad_conv": repeat_pad_conv_upsample,
                     "polyphase": upsample_sequences}.items():
        grad = jax.grad(lambda s, k, b, f=fn: jnp.sum(jnp.sin(f(s, k, b))), argnums=(0, 1, 2))
        print(json.dumps(figure("temporal_upsample_fwd_bwd", grad, (seq, kernel, bias), peak,
                                formulation=name, shape_ntc=UPSAMPLE_SHAPE)), flush=True)


if __name__ == "__main__":
    main()
