"""XLA options the heavy programs compile with: on CPU, XLA's own kernels, not YNNPACK's.

On CPU, jaxlib 0.10's XLA hands convolutions, elementwise fusions and reductions to
YNNPACK (`ynn_fusion` kernels in the compiled HLO), which runs them on one thread: on the
2-core machine a 3x3 convolution over `(64, 32, 32, 64)` took 49.6 ms with both cores and
49.5 ms pinned to one. With `xla_cpu_experimental_ynn_fusion_type` empty, XLA's own
kernels run them (Eigen's convolutions on every core): 28 ms, and the matched STUNet train
step of `benchmarks/vs_lumiere_pytorch.py` 1.02-1.07 s instead of 1.22-1.43 s (README,
"Benchmarks"). The values agree to float rounding (another summation order).

`kernel_options()` is that option on CPU, if this jaxlib knows it (checked once, by
compiling a one-element program with it), else `{}`; also `{}` when `XLA_FLAGS` already
sets it (the user's choice wins). The train step (`training.setup.compiler_options`), the
cascade and keyframe samplers (`SamplingConfig.xla_options` are merged over it), the FVD's
I3D and `parallel.compile_abstract` compile with it. In your own code:
`jax.jit(f, compiler_options=kernel_options())`, or
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=` for every program of a process.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Iterable, Mapping

import jax
import jax.numpy as jnp

YNN_FUSIONS_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _jaxlib_accepts(options: tuple[tuple[str, str], ...]) -> bool:
    """Whether this jaxlib compiles a program with `options` (unknown names are refused)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(jnp.zeros(1)).compile()
    except jax.errors.JaxRuntimeError:
        return False
    return True


def kernel_options(backend: str | None = None) -> dict[str, str]:
    """`{'xla_cpu_experimental_ynn_fusion_type': ''}` on CPU (see the module doc), else `{}`."""
    backend = backend or jax.default_backend()
    named_by_user = any(name in os.environ.get("XLA_FLAGS", "") for name in YNN_FUSIONS_OFF)
    if backend != "cpu" or named_by_user or not _jaxlib_accepts(tuple(YNN_FUSIONS_OFF.items())):
        return {}
    return dict(YNN_FUSIONS_OFF)


def with_kernel_options(options: Mapping[str, Any] | Iterable[tuple[str, Any]] | None
                        ) -> dict[str, Any] | None:
    """`kernel_options()` with `options` (a dict or (name, value) pairs) over it; None if
    empty (`jax.jit`'s `compiler_options` default)."""
    merged = {**kernel_options(), **dict(options or {})}
    return merged or None
