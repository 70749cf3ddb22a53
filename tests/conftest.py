"""Test-wide setup, before JAX is imported anywhere.

- 8 fake CPU devices, so sharded code runs in-process.
- LLVM optimisation level 0: tests run tiny shapes where XLA-CPU compile time, not run
  time, dominates; level 0 roughly halves compile time. Benchmarks run at the default.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
for _flag in ("--xla_force_host_platform_device_count=8", "--xla_backend_optimization_level=0"):
    if _flag.split("=")[0] not in _flags:
        _flags = f"{_flags} {_flag}".strip()
os.environ["XLA_FLAGS"] = _flags
os.environ.setdefault("JAX_PLATFORMS", "cpu")
