"""One process of a real 2-process JAX job (run by test_multiprocess.py, not by pytest).

usage: python mp_worker.py PORT PROCESS_ID OUTDIR
Each process has 4 local fake CPU devices (XLA_FLAGS set by the parent); together they
form an 8-device ('data': 4, 'fsdp': 2) mesh, train tiny_model for NUM_STEPS SGD steps on
a global batch fed per process with shard_batch, save a checkpoint from both processes,
and process 0 writes the losses and gathered final params to OUTDIR/result.npz.
"""

from __future__ import annotations

import os
import sys

import jax

from lumiere_jax.parallel import initialize_distributed

port, pid, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
initialize_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=pid)

import flax.linen as nn  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import tiny_model  # noqa: E402  (this script's folder is on sys.path)
from lumiere_jax.checkpoint import Checkpointer  # noqa: E402
from lumiere_jax.parallel import (DEFAULT_RULES, batch_sharding, init_sharded,  # noqa: E402
                                  make_mesh, mesh_rules, shard_batch)

NUM_STEPS, BATCH = 2, 8
assert jax.process_count() == 2 and jax.device_count() == 8 and jax.local_device_count() == 4

mesh = make_mesh({"data": 4, "fsdp": 2, "tensor": 1})
params = init_sharded(tiny_model.init_fn, mesh, DEFAULT_RULES, jax.random.key(0))["params"]
pshard = jax.tree.map(lambda a: a.sharding, params)
step = jax.jit(tiny_model.sgd_step, in_shardings=(pshard, batch_sharding(mesh)),
               out_shardings=(pshard, NamedSharding(mesh, P()), pshard))
half = BATCH // 2
losses = []
with mesh_rules(mesh, DEFAULT_RULES):
    for i in range(NUM_STEPS):
        glob = tiny_model.make_batch(BATCH, seed=i)
        local = {k: v[pid * half:(pid + 1) * half] for k, v in glob.items()}
        params, loss, _ = step(params, shard_batch(local, mesh))
        losses.append(float(loss))

with Checkpointer(os.path.join(outdir, "ckpt"), config_fingerprint="mp-test") as ckpt:
    ckpt.save(NUM_STEPS, {"params": params, "step": np.int32(NUM_STEPS)},
              data_state={"next_batch": NUM_STEPS})

gathered = multihost_utils.process_allgather(params, tiled=True)
if pid == 0:
    flat = {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(gathered)}
    np.savez(os.path.join(outdir, "result.npz"), losses=np.array(losses), **flat)
multihost_utils.sync_global_devices("done")
print(f"process {pid} done", flush=True)
