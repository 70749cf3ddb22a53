"""Test-wide setup, before JAX is imported anywhere.

- 8 fake CPU devices, so sharded code runs in-process.
- LLVM optimisation level 0: tests run tiny shapes where XLA-CPU compile time, not run
  time, dominates; level 0 roughly halves compile time. Benchmarks run at the default.
- One persistent XLA compilation cache per pytest run, shared by its xdist workers (and
  the train.py / sample.py children that inherit the environment), removed at the end:
  modules that compile the same program (a tiny UNet's init or step, built from another
  lambda in another file or on the other worker) read it instead of compiling it again.
  Programs that compile in under a second are not cached (JAX's default).
"""

import os
import shutil
import tempfile

_flags = os.environ.get("XLA_FLAGS", "")
for _flag in ("--xla_force_host_platform_device_count=8", "--xla_backend_optimization_level=0"):
    if _flag.split("=")[0] not in _flags:
        _flags = f"{_flags} {_flag}".strip()
os.environ["XLA_FLAGS"] = _flags
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # xdist workers inherit the controller's
    _OWN_CACHE = tempfile.mkdtemp(prefix="lumiere_jax_test_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE


def pytest_sessionfinish(session, exitstatus):
    """The process that made the cache removes it (workers end before the controller)."""
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
