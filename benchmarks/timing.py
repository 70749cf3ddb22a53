"""Shared measuring helpers for the benchmark scripts (run them as `python benchmarks/X.py`)."""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp


def median_time(fn, *args, repeats: int) -> float:
    """Median wall time of fn(*args) over `repeats` runs after one warm-up."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 5, dtype=jnp.float32) -> float:
    """FLOP/s of a jitted n x n matmul (float32 unless `dtype`): the peak used for
    utilization."""
    a = jnp.ones((n, n), dtype)
    return 2 * n ** 3 / median_time(jax.jit(lambda a: a @ a), a, repeats=repeats)
