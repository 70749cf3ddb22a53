"""Test-wide setup, before JAX is imported anywhere.

- 8 fake CPU devices, so sharded code runs in-process.
- LLVM optimisation level 0: tests run tiny shapes where XLA-CPU compile time, not run
  time, dominates; level 0 roughly halves compile time. Benchmarks run at the default.
- XLA-CPU's older (non-MLIR) fusion emitters where this jaxlib still has them
  (`--xla_cpu_use_fusion_emitters=false`): a tiny train step's thousands of small
  elementwise fusions compile ~27% faster (`tests/models/test_unet.py` 129 s -> 104 s).
  A jaxlib without the flag would abort on it, so one child process tries it first.
- One persistent XLA compilation cache per pytest run, shared by its xdist workers (and
  the train.py / sample.py children that inherit the environment), removed at the end:
  modules that compile the same program (a tiny UNet's init or step, built from another
  lambda in another file or on the other worker) read it instead of compiling it again.
  Programs that compile in under a second are not cached (JAX's default).
- glibc's malloc tuned as train.py tunes it (`lumiere_jax.host_memory`), set in the
  environment so the xdist workers start with it and the train.py children need no
  re-execution (the re-execution itself is tested in tests/test_host_memory.py).
"""

import os
import shutil
import subprocess
import sys
import tempfile

from lumiere_jax import host_memory  # the standard library only: JAX is not imported

FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _xla_accepts(flag: str) -> bool:
    """Whether this jaxlib starts with `flag` in XLA_FLAGS (an unknown flag aborts it)."""
    env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu")
    code = "import jax; jax.numpy.zeros(1).block_until_ready()"
    probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           timeout=120)
    return probe.returncode == 0


_flags = os.environ.get("XLA_FLAGS", "")
_wanted = ["--xla_force_host_platform_device_count=8", "--xla_backend_optimization_level=0"]
if FAST_COMPILE_FLAG.split("=")[0] not in _flags and _xla_accepts(FAST_COMPILE_FLAG):
    _wanted.append(FAST_COMPILE_FLAG)  # xdist workers inherit the controller's XLA_FLAGS
for _flag in _wanted:
    if _flag.split("=")[0] not in _flags:
        _flags = f"{_flags} {_flag}".strip()
os.environ["XLA_FLAGS"] = _flags
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_tuned = host_memory.tuned_environ(os.environ)
if _tuned is not None:
    os.environ["GLIBC_TUNABLES"] = _tuned["GLIBC_TUNABLES"]
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # xdist workers inherit the controller's
    _OWN_CACHE = tempfile.mkdtemp(prefix="lumiere_jax_test_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE


def pytest_sessionfinish(session, exitstatus):
    """The process that made the cache removes it (workers end before the controller)."""
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
