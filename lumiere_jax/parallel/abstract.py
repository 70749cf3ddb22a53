"""Compile steps from abstract shapes (no weights materialized) and read their memory.

Typical use for a paper-scale memory figure on a laptop:

    mesh = make_mesh({'fsdp': -1})                      # e.g. 8 fake CPU devices
    params = abstract_sharded(lambda k: model.init(k, ...), mesh, DEFAULT_RULES, key)
    batch = abstract_batch({'video': ((8, 80, 128, 128, 3), jnp.float32)}, mesh)
    compiled = compile_abstract(train_step, params, batch, donate_argnums=(0,))
    print(memory_report(compiled))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh

from lumiere_jax.parallel.mesh import (DEFAULT_RULES, Rules, batch_sharding, mesh_rules,
                                       param_shardings)
from lumiere_jax.xla_options import kernel_options


def with_shardings(tree: Any, shardings: Any) -> Any:
    """`ShapeDtypeStruct`s of `tree`'s leaves (arrays or structs) carrying `shardings`."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def abstract_sharded(init_fn: Callable[..., Any], mesh: Mesh, rules: Rules = DEFAULT_RULES,
                     *args: Any) -> Any:
    """Unboxed tree of sharded `ShapeDtypeStruct`s for `init_fn(*args)`; nothing is computed."""
    import flax.linen as nn

    with mesh_rules(mesh, rules):
        boxed = jax.eval_shape(init_fn, *args)
    shardings = param_shardings(boxed, mesh, rules)
    return with_shardings(nn.meta.unbox(boxed), shardings)


def abstract_batch(spec: Mapping[str, tuple[Sequence[int], Any]], mesh: Mesh) -> dict:
    """{'name': (global_shape, dtype)} -> sharded `ShapeDtypeStruct`s (batch dim over data/fsdp)."""
    return {k: jax.ShapeDtypeStruct(tuple(shape), dtype, sharding=batch_sharding(mesh))
            for k, (shape, dtype) in spec.items()}


def remat_compiler_options(backend: str | None = None) -> dict[str, str]:
    """XLA options that make `jax.checkpoint` (`UNetConfig.remat`) save memory on `backend`.

    `jax.checkpoint` guards the recomputed forward with optimization barriers so that CSE
    cannot merge it back into the original forward. XLA:GPU and XLA:TPU remove the barriers
    only after scheduling; XLA:CPU removes them (`cse_barrier_expander`) before a later CSE
    pass, which then merges the recomputation away and keeps every activation alive. Keeping
    the pass off on CPU gives the GPU/TPU behaviour (same numbers, less memory). `{}` elsewhere.
    """
    backend = backend or jax.default_backend()
    return {"xla_disable_hlo_passes": "cse_barrier_expander"} if backend == "cpu" else {}


def compile_abstract(fn: Callable[..., Any], *abstract_args: Any, mesh: Mesh | None = None,
                     rules: Rules = DEFAULT_RULES, out_shardings: Any = None,
                     donate_argnums: int | Sequence[int] = (),
                     static_argnums: int | Sequence[int] = ()) -> jax.stages.Compiled:
    """`jax.jit(fn).lower(*abstract_args).compile()` with input shardings from the structs.

    abstract_args: pytrees of `jax.ShapeDtypeStruct` (with `.sharding`) or static values.
    mesh: when given, tracing runs under `mesh_rules(mesh, rules)` so the model's
      `nn.with_logical_constraint` calls resolve.
    Compiled with `remat_compiler_options()`, so rematerialisation shows in the memory,
    and `xla_options.kernel_options()`, as train.py compiles.
    """
    kwargs: dict[str, Any] = dict(donate_argnums=donate_argnums, static_argnums=static_argnums)
    if out_shardings is not None:
        kwargs["out_shardings"] = out_shardings
    jitted = jax.jit(fn, **kwargs)
    options = {**kernel_options(), **remat_compiler_options()}
    if mesh is None:
        return jitted.lower(*abstract_args).compile(options)
    with mesh_rules(mesh, rules):
        return jitted.lower(*abstract_args).compile(options)


def tree_bytes_per_device(tree: Any) -> int:
    """Bytes one device holds for a tree of sharded arrays / `ShapeDtypeStruct`s (max over
    devices)."""
    per_device: dict[Any, int] = {}
    for x in jax.tree.leaves(tree):
        sharding = getattr(x, "sharding", None)
        itemsize = np.dtype(x.dtype).itemsize
        if sharding is None:
            per_device[None] = per_device.get(None, 0) + int(np.prod(x.shape)) * itemsize
            continue
        shard = sharding.shard_shape(x.shape)
        for d in sharding.device_set:
            per_device[d] = per_device.get(d, 0) + int(np.prod(shard)) * itemsize
    unplaced = per_device.pop(None, 0)
    return max(per_device.values(), default=0) + unplaced


def memory_report(compiled: jax.stages.Compiled) -> dict[str, float]:
    """Per-device memory of a compiled step from `compiled.memory_analysis()`.

    Returns bytes for arguments, outputs, aliased (donated) buffers, temporaries and code,
    plus `total_bytes` = argument + output - alias + temp + code (the live peak bound XLA
    reports) and the same in GiB.
    """
    m = compiled.memory_analysis()
    if m is None:
        raise ValueError("this backend gives no memory_analysis() for the compiled step")
    out = {
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
        "temp_bytes": int(m.temp_size_in_bytes),
        "generated_code_bytes": int(m.generated_code_size_in_bytes),
    }
    out["total_bytes"] = (out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"]
                          + out["temp_bytes"] + out["generated_code_bytes"])
    peak = getattr(m, "peak_memory_in_bytes", None)
    if peak:
        out["peak_bytes"] = int(peak)
    out["total_gib"] = out["total_bytes"] / 2**30
    return out
