"""Inflation (T2I weights into a STUNet tree) and the trainable/frozen split."""

from __future__ import annotations

from typing import Any, Iterable

import flax.linen as nn
import jax
from flax import traverse_util

PyTree = Any
TRAINABLE_PREFIXES = ("temporal_", "cond_")


def _flat(params: PyTree) -> dict[tuple[str, ...], Any]:
    return traverse_util.flatten_dict(nn.meta.unbox(params))


def _path_str(path: tuple[str, ...]) -> str:
    return "/".join(path)


def is_trainable_path(path: Iterable[str], prefixes: tuple[str, ...] = TRAINABLE_PREFIXES) -> bool:
    """A weight trains iff a component of its path starts with one of `prefixes`."""
    return any(part.startswith(prefixes) for part in path)


def trainable_mask(params: PyTree, prefixes: tuple[str, ...] = TRAINABLE_PREFIXES) -> PyTree:
    """Pytree of bool with `params`' structure: True exactly on new (temporal_/cond_) weights."""
    flat = _flat(params)
    return traverse_util.unflatten_dict({p: is_trainable_path(p, prefixes) for p in flat})


def check_inflatable(t2i_params: PyTree, stunet_params: PyTree) -> None:
    """`ValueError` listing the mismatched paths unless every T2I path exists in the
    STUNet tree with the same shape and every STUNet weight that is not trainable (see
    `trainable_mask`) has a T2I source. Leaves need only `.shape` (arrays, metadata)."""
    _check_fit(_flat(t2i_params), _flat(stunet_params))


def _check_fit(t2i: dict, stunet: dict) -> None:
    """`check_inflatable` on flattened trees."""
    missing = [p for p in t2i if p not in stunet]
    misshaped = [p for p in t2i if p in stunet and tuple(t2i[p].shape) != tuple(stunet[p].shape)]
    uncovered = [p for p in stunet if p not in t2i and not is_trainable_path(p)]
    if missing or misshaped or uncovered:
        lines = [f"  not in STUNet tree: {_path_str(p)}" for p in missing]
        lines += [f"  shape {tuple(t2i[p].shape)} (T2I) vs {tuple(stunet[p].shape)} (STUNet): "
                  f"{_path_str(p)}" for p in misshaped]
        lines += [f"  frozen STUNet weight with no T2I source: {_path_str(p)}" for p in uncovered]
        raise ValueError("T2I parameters do not fit the STUNet tree "
                         f"({len(lines)} mismatched paths):\n" + "\n".join(lines[:50]))


def inflate_params(t2i_params: PyTree, stunet_params: PyTree) -> PyTree:
    """Return `stunet_params` with every T2I weight copied in (plain, unboxed arrays; NumPy
    or device arrays alike: with device arrays the merge stays on their devices).
    `check_inflatable` first: a `ValueError` lists the paths that do not fit."""
    t2i, stunet = _flat(t2i_params), _flat(stunet_params)
    _check_fit(t2i, stunet)
    merged = {p: (t2i[p].astype(v.dtype) if p in t2i else v) for p, v in stunet.items()}
    return traverse_util.unflatten_dict(merged)


def count_params(params: PyTree) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(nn.meta.unbox(params))))
