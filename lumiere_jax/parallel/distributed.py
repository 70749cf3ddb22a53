"""Multi-process (multi-host) start-up: `jax.distributed.initialize` from args or env."""

from __future__ import annotations

import os

import jax

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from None


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Joins a multi-process JAX job; call once, before any other JAX call touches devices.

    coordinator: 'host:port' of process 0 (else env `JAX_COORDINATOR_ADDRESS`).
    num_processes / process_id: else env `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID`.
    A single-process run (nothing given, or num_processes == 1) is a no-op. CPU
    collectives use gloo, so CPU-only multi-process runs work. On managed clusters
    (TPU pods, SLURM) where JAX auto-detects everything, pass nothing and set
    `JAX_COORDINATOR_ADDRESS` (or call `jax.distributed.initialize()` directly).
    Returns True if this call initialized (or found initialized) a multi-process job.
    """
    if coordinator is None:
        coordinator = os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if jax.distributed.is_initialized():
        return True
    if coordinator is None and num_processes is None and process_id is None:
        return False
    if num_processes == 1:
        return False
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes={num_processes}; must be >= 1")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id}; must be in [0, {num_processes})")
    if coordinator is None and (num_processes is not None or process_id is not None):
        raise ValueError(
            "num_processes / process_id given without a coordinator address; pass"
            f" coordinator='host:port' or set {ENV_COORDINATOR}")
    # Cross-process collectives between CPU devices need gloo; harmless on GPU / TPU.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    return True
