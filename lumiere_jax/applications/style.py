"""Stylized generation by interpolating the spatial (T2I) weights of a STUNet.

As in Lumiere, a STUNet's frozen T2I weights `W_orig` are blended with those of a
style-fine-tuned T2I model `W_style`, `W = alpha W_style + (1 - alpha) W_orig`
(the paper uses alpha in [0.5, 1]); the temporal weights, trained against `W_orig`,
stay untouched, so the motion prior carries over to the new style.
"""

from __future__ import annotations

import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from lumiere_jax.models.inflate import TRAINABLE_PREFIXES, is_trainable_path

PyTree = Any

__all__ = ["interpolate_spatial_weights", "check_alpha"]


def check_alpha(alpha: float | jax.Array) -> None:
    """ValueError unless a concrete `alpha` is a finite scalar in [0, 1] (tracers pass)."""
    if isinstance(alpha, jax.core.Tracer):
        return
    if isinstance(alpha, bool) or not isinstance(alpha, (numbers.Real, np.ndarray, jax.Array)):
        raise ValueError(f"alpha={alpha!r} must be a real scalar in [0, 1] (paper: 0.5 to 1).")
    value = np.asarray(alpha)
    if value.ndim != 0 or not np.isfinite(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"alpha={alpha!r} must be a finite scalar in [0, 1] (0: original "
                         "weights, 1: style weights; the paper uses 0.5 to 1).")


@jax.jit
def _lerp(orig: dict, style: dict, alpha: jax.Array) -> dict:
    """Per leaf `alpha * style + (1 - alpha) * orig` in float32, cast to orig's dtype."""
    alpha = jnp.asarray(alpha, jnp.float32)

    def mix(o, s):
        return (alpha * s.astype(jnp.float32) + (1.0 - alpha) * o.astype(jnp.float32)
                ).astype(o.dtype)

    return jax.tree.map(mix, orig, style)


def interpolate_spatial_weights(stunet_params: PyTree, style_t2i_params: PyTree,
                                alpha: float | jax.Array, *,
                                prefixes: tuple[str, ...] = TRAINABLE_PREFIXES) -> PyTree:
    """`W = alpha W_style + (1 - alpha) W_orig` on the spatial weights of a STUNet.

    stunet_params: the STUNet (or conditional STUNet) params, boxed or plain.
    style_t2i_params: a T2I tree (the style model), boxed or plain. It must hold every
      spatial (non-trainable, see `is_trainable_path`) STUNet weight with the same shape;
      weights of it under trainable paths (`temporal_*`, `cond_*`) are ignored.
    alpha: scalar in [0, 1] (a Python float, or a traced scalar under `jit`).
    Returns a plain (unboxed) tree with `stunet_params`' structure and dtypes: spatial
    leaves interpolated (computed in float32, so alpha = 0 / 1 give W_orig / W_style
    exactly), trainable leaves the very same arrays as in `stunet_params`.
    """
    check_alpha(alpha)
    orig = traverse_util.flatten_dict(nn.meta.unbox(stunet_params))
    style = traverse_util.flatten_dict(nn.meta.unbox(style_t2i_params))
    spatial = [p for p in orig if not is_trainable_path(p, prefixes)]
    missing = [p for p in spatial if p not in style]
    unknown = [p for p in style if p not in orig]
    misshaped = [p for p in spatial if p in style
                 and tuple(np.shape(style[p])) != tuple(np.shape(orig[p]))]
    if missing or unknown or misshaped:
        lines = [f"  spatial STUNet weight missing from style_t2i_params: {'/'.join(p)}"
                 for p in missing]
        lines += [f"  style_t2i_params path not in stunet_params: {'/'.join(p)}" for p in unknown]
        lines += [f"  shape {tuple(np.shape(style[p]))} (style) vs {tuple(np.shape(orig[p]))} "
                  f"(STUNet): {'/'.join(p)}" for p in misshaped]
        raise ValueError("style_t2i_params do not fit stunet_params (a style T2I model must "
                         "share the STUNet's T2I config) -- "
                         f"{len(lines)} mismatched paths:\n" + "\n".join(lines[:50]))
    mixed = _lerp({p: orig[p] for p in spatial}, {p: style[p] for p in spatial}, alpha)
    return traverse_util.unflatten_dict({p: mixed.get(p, v) for p, v in orig.items()})
