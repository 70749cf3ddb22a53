"""`metrics.jsonl` (one JSON line per step), optional TensorBoard, a tqdm progress bar."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All lines of a metrics.jsonl file as dicts (a torn last line is ignored)."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


class MetricWriter:
    """Writes per-step metric rows on the writing process (process 0); others no-op.

    workdir: run folder; rows go to `<workdir>/metrics.jsonl`. resume_step: rows with
    step > resume_step (written by a run that was killed after its last checkpoint) are
    dropped, so the file reads as one uninterrupted run. tensorboard: also write scalars
    with tensorboardX to `<workdir>/tb`. total_steps: length of the tqdm bar.
    """

    def __init__(self, workdir: str, *, enabled: bool = True, resume_step: int = 0,
                 tensorboard: bool = False, total_steps: int | None = None,
                 progress: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = self._bar = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step] if (
            os.path.exists(self.path)) else []
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        if tensorboard:
            from tensorboardX import SummaryWriter  # optional dependency
            self._tb = SummaryWriter(os.path.join(workdir, "tb"))
        if progress:
            from tqdm import tqdm
            self._bar = tqdm(total=total_steps, initial=resume_step, unit="step",
                             dynamic_ncols=True)

    def write(self, rows: list[Mapping[str, Any]]) -> None:
        """Appends rows (each with an int 'step'); values become Python floats / ints."""
        if not self.enabled or not rows:
            return
        plain = [{k: (v.item() if isinstance(v, np.generic) else
                      np.asarray(v).item() if hasattr(v, "shape") else v)
                  for k, v in r.items()} for r in rows]
        with open(self.path, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in plain)
            f.flush()
        for r in plain:
            if self._tb is not None:
                for k, v in r.items():
                    if k != "step" and isinstance(v, (int, float)):
                        self._tb.add_scalar(k, v, r["step"])
        if self._bar is not None:
            last = plain[-1]
            self._bar.update(last["step"] - self._bar.n)
            self._bar.set_postfix(loss=f"{last.get('loss', float('nan')):.4f}",
                                  lr=f"{last.get('lr', 0.0):.2e}")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()
