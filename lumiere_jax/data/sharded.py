"""`ShardedBatches`: this process's part of the global training batch, ready to shard.

    it = ShardedBatches(source, global_batch_size=32, num_shards=2, tokenizer=tok,
                        num_frames=16, size=32)
    batch = next(it)   # {'pixels': uint8 (B_p, [T,] H, W, 3), 'ids': int32 (B_p, L),
                       #  'mask': bool (B_p, L)[, 'velocity': float32 (B_p, 2),
                       #  'tracks': float32 (B_p, 2, 5)]}
                       # B_p = this process's rows (velocity, tracks: motion_labels=True)

The global batch is a function of the arguments alone, not of the process count: with
`num_shards=2`, one process reading shards 0 and 1 sees exactly the batches that two
processes see together (one shard each), so a run can move between host counts.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from lumiere_jax.data.pipeline import make_dataset


class ShardedBatches:
    """`num_shards / process_count` grain iterators (`make_dataset`, tokenised), their
    batches concatenated. `get_state()` / `set_state()`: JSON-able, one entry per shard."""

    def __init__(self, source: Sequence[Any], *, global_batch_size: int, num_shards: int,
                 tokenizer: Any, **dataset_kwargs):
        processes = jax.process_count()
        if num_shards % processes or global_batch_size % num_shards:
            raise ValueError(f"num_shards={num_shards} must be a multiple of the {processes} "
                             f"processes and divide the global batch size {global_batch_size}")
        per_process = num_shards // processes
        first = jax.process_index() * per_process
        self._its = [iter(make_dataset(source, batch_size=global_batch_size // num_shards,
                                       tokenizer=tokenizer, shard_index=i,
                                       shard_count=num_shards, **dataset_kwargs))
                     for i in range(first, first + per_process)]

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        parts = [next(it) for it in self._its]
        cat = lambda key: np.concatenate([np.asarray(p[key]) for p in parts])
        pixels = "image" if "image" in parts[0] else "video"
        extra = {k: cat(k).astype(np.float32) for k in ("velocity", "tracks") if k in parts[0]}
        return dict(pixels=cat(pixels).astype(np.uint8), ids=cat("ids").astype(np.int32),
                    mask=cat("mask").astype(bool), **extra)

    def get_state(self) -> list:
        return [it.get_state() for it in self._its]

    def set_state(self, state: list) -> None:
        if len(state) != len(self._its):
            raise ValueError(f"data state holds {len(state)} shard states but this process "
                             f"reads {len(self._its)} shards")
        for it, s in zip(self._its, state):
            it.set_state(s)
