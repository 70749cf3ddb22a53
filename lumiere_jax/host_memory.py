"""glibc malloc settings for runs on the CPU: XLA's buffers on huge pages, kept between steps.

XLA:CPU allocates an executable's temporary buffers afresh on every call (1.3 GB for the
matched STUNet train step of `benchmarks/vs_lumiere_pytorch.py`). glibc hands any block
over 32 MiB to a fresh `mmap`, so each step touches 1.3 GB of new 4 KiB pages: 320,000
page faults, and half of the step's CPU time was kernel time. With the tunables below
glibc advises transparent huge pages for its mappings (`hugetlb=1`, glibc >= 2.35, used
when `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` or `always`), serves
blocks up to 32 MiB from its heap and keeps freed heap memory instead of returning it.
Measured on the 2-core machine, `train.py --config configs/demo_stunet.py`: 1.15 / 1.25 s
-> 0.76 / 0.83 s a step (two rounds), 22.7 M -> 0.2 M page faults in 60 steps (README
"Benchmarks"). lumiere-pytorch's step can gain too, so the side-by-side benchmark gives
both sides the same environment.

glibc reads its tunables once, at process start, so train.py (`cli.run(...,
tune_malloc=True)`) and the train-step benchmarks call `relaunch_with_tuned_malloc()`
before their first JAX computation: it re-executes the same command line with
GLIBC_TUNABLES extended (settings the user already gave win). `LUMIERE_MALLOC_TUNING=0`
turns it off. Importing the library never does this; in your own program set
`GLIBC_TUNABLES` yourself (`tuned_environ(os.environ)["GLIBC_TUNABLES"]` is the value).
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Mapping

TUNABLES = {
    "glibc.malloc.hugetlb": "1",
    "glibc.malloc.mmap_threshold": str(32 << 20),
    "glibc.malloc.trim_threshold": str(4 << 30),
    "glibc.malloc.top_pad": str(256 << 20),
}
OPT_OUT = "LUMIERE_MALLOC_TUNING"


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the C library this Python runs on, or None if it is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    name, version = platform.libc_ver()
    if name != "glibc":
        return None
    try:
        major, minor = (int(v) for v in version.split(".")[:2])
    except ValueError:
        return None
    return major, minor


def tuned_environ(environ: Mapping[str, str],
                  libc: tuple[int, int] | None = None) -> dict[str, str] | None:
    """`environ` with TUNABLES merged into GLIBC_TUNABLES, or None when there is nothing
    to add (not glibc >= 2.35, opted out, or every key already set)."""
    libc = glibc_version() if libc is None else libc
    if libc is None or libc < (2, 35) or environ.get(OPT_OUT, "1") == "0":
        return None
    given = [item for item in environ.get("GLIBC_TUNABLES", "").split(":") if item]
    keys = {item.split("=", 1)[0] for item in given}
    added = [f"{k}={v}" for k, v in TUNABLES.items() if k not in keys]
    if not added:
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join(given + added)}


def relaunch_with_tuned_malloc() -> None:
    """Re-execute this process's command line with `tuned_environ`, if it adds anything.

    Call it before the first JAX computation (imports may have happened; the new process
    starts from scratch and pays them again); it finds the tunables set and goes on.
    """
    env = tuned_environ(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
