"""`train.py` in a child process, optionally killed with SIGKILL at a chosen point.

usage: python run_train.py MODE N [train.py flags...]   (run by tests/test_train_cli.py)
  MODE none:            an ordinary run.
  MODE kill_after_step: SIGKILL right after metrics of step N are written (mid-training;
                        an async checkpoint save may be in flight).
  MODE kill_in_save:    SIGKILL while checkpoint N is being committed (files written, not
                        yet renamed into place).
  MODE term_after_step: SIGTERM (a preemption notice) once metrics of step N are written.
  MODE fsize_at_save:   before checkpoint N is saved (earlier saves finished), limit this
                        process's files to 16 KiB (RLIMIT_FSIZE, SIGXFSZ ignored): the
                        kernel refuses the checkpoint's writes with EFBIG, as a full disk
                        would refuse them; nothing in orbax or the writer is patched.
"""

from __future__ import annotations

import os
import signal
import sys

from absl import flags

mode, n = sys.argv[1], int(sys.argv[2])
argv = [sys.argv[0]] + sys.argv[3:]


def die() -> None:
    print(f"KILLING ({mode} {n})", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if mode in ("kill_after_step", "term_after_step"):
    from lumiere_jax.training import metrics

    original_write = metrics.MetricWriter.write
    sent = []

    def write(self, rows):
        original_write(self, rows)
        if any(r["step"] >= n for r in rows) and not sent:
            if mode == "kill_after_step":
                die()
            print(f"SENDING SIGTERM after step {n}", flush=True)
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    metrics.MetricWriter.write = write
elif mode == "kill_in_save":
    from orbax.checkpoint._src.path import atomicity

    original_finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self, *args, **kwargs):
        if self.get_final().name == str(n):
            die()
        return await original_finalize(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize
elif mode == "fsize_at_save":
    import resource

    from lumiere_jax.checkpoint import Checkpointer

    original_save = Checkpointer.save

    def save(self, step, *args, **kwargs):
        if step == n:
            self.wait_until_finished()
            print(f"LIMITING FILE SIZE before saving step {n}", flush=True)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG errors instead of a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, resource.RLIM_INFINITY))
        return original_save(self, step, *args, **kwargs)

    Checkpointer.save = save
elif mode != "none":
    raise SystemExit(f"unknown mode {mode!r}")

sys.path.insert(0, os.getcwd())
import train  # noqa: E402  (the repository root is the working directory)
from lumiere_jax import cli  # noqa: E402

flags.mark_flags_as_required(["config", "workdir"])
sys.argv = argv
cli.run(train.main, train.__doc__, "train.py")
