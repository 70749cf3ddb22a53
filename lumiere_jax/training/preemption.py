"""SIGTERM handling: a preempted run checkpoints at the next step and exits with 143.

Cluster schedulers (Slurm, Kubernetes, TPU maintenance events) send SIGTERM some time
before they kill a job. `PreemptionWatch` turns that signal into a flag the training loop
polls at step boundaries.
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a SIGTERM'd process


class PreemptionWatch:
    """Context manager: while active, SIGTERM sets a flag instead of killing the process.

    `requested(sync)` is True once SIGTERM arrived. With several processes the flags are
    combined (an all-gather, any process counts) only when `sync` is True, so that every
    process stops at the same step; pass sync=True where the host waits for the step
    anyway (e.g. logging steps). The previous handler is restored on exit.
    """

    def __init__(self):
        self._flag = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        del signum, frame
        self._flag = True

    def __enter__(self) -> "PreemptionWatch":
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def requested(self, sync: bool) -> bool:
        if jax.process_count() == 1:
            return self._flag
        if not sync:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(self._flag))
        return bool(np.any(flags))
