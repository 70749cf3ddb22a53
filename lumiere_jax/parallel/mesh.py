"""Device mesh, logical axis rules, parameter / batch shardings.

The mesh has three named axes:
  `data`   pure data parallelism (params replicated),
  `fsdp`   data parallelism with params (and optimizer state) sharded over it,
  `tensor` model parallelism inside layers (the `mlp` dim of kernels).
Parameters carry flax logical axis names (`nn.with_logical_partitioning`); one table,
`DEFAULT_RULES`, maps those names to mesh axes (maxtext style). Changing the parallelism
is a change of mesh shape or rules, never of the model.

Models should pin activations with `nn.with_logical_constraint(h, ('batch', ...))`
(features unsharded) before each conv: with jax 0.10.2 on CPU, a dense kernel sharded
('fsdp', 'tensor') feeding a conv kernel sharded (None, None, 'fsdp', 'tensor') on a
(2, 2, 2) mesh, with the activation sharding left to propagation, gives wrong gradients
(the forward is right); the constraint fixes it (tests/parallel/tiny_model.py).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES: tuple[str, str, str] = ("data", "fsdp", "tensor")
BATCH_AXES: tuple[str, str] = ("data", "fsdp")

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]

# Logical name -> mesh axis (or axes, or None = replicated). Earlier rules win; a mesh
# axis is used at most once per array (flax semantics), so an activation
# ('batch', ..., 'embed') gets batch -> (data, fsdp) and leaves 'embed' unsharded.
# Every name here is used by a layer (nn/layers.py, text/); a run's config may give its
# own table (`config.mesh.rules`, checked by `check_rules`).
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", BATCH_AXES),   # activations / inputs: batch over every data-parallel axis
    ("embed", "fsdp"),       # kernel input features: ZeRO-3 style param sharding
    ("mlp", "tensor"),       # kernel output features / biases: tensor parallel
    ("heads", "tensor"),     # attention heads (T5 relative-position table)
    ("vocab", "tensor"),     # token embeddings
    ("norm", None),          # norm scales / biases: tiny, replicated
)


def check_rules(rules: Any, field: str = "config.mesh.rules") -> Rules:
    """`rules` (pairs `(logical name, mesh axis | tuple of axes | None)`, e.g. from a config
    or its JSON, where tuples arrive as lists) as a tuple of tuples; anything else, a name
    given twice or a mesh axis outside `MESH_AXES`, is a `ValueError` naming `field`."""
    out, seen = [], set()
    for i, pair in enumerate(rules):
        if isinstance(pair, str) or len(pair) != 2 or not isinstance(pair[0], str):
            raise ValueError(f"{field}[{i}]={pair!r}: expected a (logical name, mesh axes) pair")
        name, axes = pair
        if name in seen:
            raise ValueError(f"{field}: logical name {name!r} is given twice")
        seen.add(name)
        axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
        for axis in (axes if isinstance(axes, tuple) else (axes,)):
            if axis is not None and axis not in MESH_AXES:
                raise ValueError(f"{field}[{i}] ({name!r}): mesh axis {axis!r} is not one of "
                                 f"{MESH_AXES} (or None: replicated)")
        out.append((name, axes))
    return tuple(out)


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A `Mesh` with axes ('data', 'fsdp', 'tensor') and Auto (GSPMD) axis types.

    shape: mapping (dict or ConfigDict) with keys among 'data', 'fsdp', 'tensor' (missing
      keys default to 1); at most one value may be -1, meaning "all remaining devices".
    devices: defaults to `jax.devices()` (all processes' devices).
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    keys = set(shape.keys())
    unknown = keys - set(MESH_AXES)
    if unknown:
        raise ValueError(
            f"mesh shape has unknown axes {sorted(unknown)}; valid axes are {MESH_AXES}")
    sizes = [int(shape.get(a, 1)) for a in MESH_AXES]
    if sum(s == -1 for s in sizes) > 1:
        raise ValueError(f"mesh shape {dict(zip(MESH_AXES, sizes))}: at most one axis may be -1")
    for a, s in zip(MESH_AXES, sizes):
        if s == 0 or s < -1:
            raise ValueError(f"mesh axis '{a}' = {s}; must be a positive int or -1 (the rest)")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if n % known:
            raise ValueError(
                f"mesh shape {dict(zip(MESH_AXES, sizes))}: the fixed axes multiply to {known},"
                f" which does not divide the {n} devices")
        sizes[sizes.index(-1)] = n // known
    if math.prod(sizes) != n:
        raise ValueError(
            f"mesh shape {dict(zip(MESH_AXES, sizes))} has {math.prod(sizes)} devices but"
            f" {n} are available; make data*fsdp*tensor == {n} or set one axis to -1")
    return jax.make_mesh(tuple(sizes), MESH_AXES,
                         axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices)


def _axis_size(mesh: Mesh, axes: str | tuple[str, ...] | None) -> int:
    if axes is None:
        return 1
    if isinstance(axes, str):
        axes = (axes,)
    return math.prod(mesh.shape[a] for a in axes)


def _divisible_spec(shape: Sequence[int], spec: P, mesh: Mesh) -> P:
    """Drops mesh axes (last first) from each dim until the dim size is divisible."""
    out = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        if axes is not None and not isinstance(axes, str):
            axes = tuple(axes)
            while axes and dim % _axis_size(mesh, axes):
                axes = axes[:-1]
            axes = (axes if len(axes) > 1 else axes[0]) if axes else None
        elif axes is not None and dim % _axis_size(mesh, axes):
            axes = None
        out.append(axes)
    while out and out[-1] is None:
        out.pop()
    return P(*out)


def logical_sharding(shape: Sequence[int], names: Sequence[str | None] | None, mesh: Mesh,
                     rules: Rules = DEFAULT_RULES) -> NamedSharding:
    """`NamedSharding` for an array of `shape` with logical dim `names` (None: replicated).

    A dim whose size is not divisible by its mesh axes is replicated (so tiny models run
    on any mesh).
    """
    if names is None or len(names) == 0:
        return NamedSharding(mesh, P())
    if len(names) != len(shape):
        raise ValueError(f"logical names {tuple(names)} do not match array rank {len(shape)}")
    spec = nn.logical_to_mesh_axes(tuple(names), rules)
    return NamedSharding(mesh, _divisible_spec(shape, spec, mesh))


def param_shardings(abstract_params: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Any:
    """Pytree of `NamedSharding` from flax logical metadata.

    abstract_params: a (possibly abstract, from `jax.eval_shape`) variables tree whose
      leaves are `nn.LogicallyPartitioned` boxes (logical names, mapped by `rules`),
      `nn.Partitioned` boxes (mesh axis names, used as is) or plain arrays /
      `ShapeDtypeStruct`s (replicated).
    Returns a tree with the *unboxed* structure (one `NamedSharding` per array); it is
    also a valid `out_shardings` prefix for the boxed tree.
    """
    def one(x: Any) -> NamedSharding:
        if isinstance(x, nn.LogicallyPartitioned):
            return logical_sharding(x.value.shape, tuple(x.names), mesh, rules)
        if isinstance(x, nn.Partitioned):  # `nn.with_partitioning`: names are mesh axes
            return NamedSharding(mesh, _divisible_spec(x.value.shape, P(*x.names), mesh))
        return NamedSharding(mesh, P())

    return jax.tree.map(one, abstract_params, is_leaf=lambda x: isinstance(x, nn.Partitioned))


@contextlib.contextmanager
def mesh_rules(mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Iterator[None]:
    """Context in which `nn.with_logical_constraint` resolves names against `mesh`."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield


def init_sharded(init_fn: Callable[..., Any], mesh: Mesh, rules: Rules = DEFAULT_RULES,
                 *args: Any) -> Any:
    """Runs `init_fn(*args)` under `jax.jit` so every array is born sharded.

    init_fn: e.g. `lambda key, x: model.init(key, x)`, returning a variables tree with
      logical metadata. Shapes come from `jax.eval_shape`; no array is ever materialized
      on a single device. Returns the *unboxed* tree (plain `jax.Array`s, each with its
      `NamedSharding`; read them back with `jax.tree.map(lambda a: a.sharding, tree)`).
    """
    with mesh_rules(mesh, rules):
        abstract = jax.eval_shape(init_fn, *args)
        shardings = param_shardings(abstract, mesh, rules)
        boxed = jax.jit(init_fn, out_shardings=shardings)(*args)
    return nn.meta.unbox(boxed)


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """Sharding of a batch-leading array: dim 0 over ('data', 'fsdp'), the rest replicated."""
    del ndim  # trailing dims are replicated whatever the rank
    return NamedSharding(mesh, P(BATCH_AXES))


def shard_batch(local_batch: Any, mesh: Mesh) -> Any:
    """Global `jax.Array`s from this process's slice of the batch.

    local_batch: pytree of numeric arrays, each `(B_local, ...)`, the rows held by this
      process's devices; on meshes from `make_mesh` process p holds rows
      `[p * B_local, (p + 1) * B_local)` of the global `(B_local * num_processes, ...)`.
    Uses `jax.make_array_from_process_local_data`, so it is correct on multi-host meshes.
    """
    sharding = batch_sharding(mesh)
    n_batch_shards = _axis_size(mesh, BATCH_AXES)
    nproc = jax.process_count()

    def one(path: Any, x: Any) -> jax.Array:
        name = jax.tree_util.keystr(path) or "batch"
        x = np.asarray(x)
        if x.dtype.kind not in "biuf" and x.dtype != np.bool_:
            raise ValueError(
                f"batch field {name} has dtype {x.dtype}; only numeric / bool arrays can be"
                " sharded (tokenize strings before shard_batch)")
        if x.ndim == 0:
            raise ValueError(f"batch field {name} is a scalar; expected (B_local, ...)")
        global_b = x.shape[0] * nproc
        if global_b % n_batch_shards:
            raise ValueError(
                f"batch field {name}: global batch {global_b} (= {x.shape[0]} per process x"
                f" {nproc} processes) is not divisible by data*fsdp = {n_batch_shards}")
        return jax.make_array_from_process_local_data(sharding, x, (global_b,) + x.shape[1:])

    return jax.tree_util.tree_map_with_path(one, local_batch)
