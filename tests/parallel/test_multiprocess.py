"""A real 2-process JAX job (gloo CPU collectives) matches the one-process run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest
from jax.sharding import SingleDeviceSharding

sys.path.insert(0, os.path.dirname(__file__))
import tiny_model  # noqa: E402

from lumiere_jax.checkpoint import Checkpointer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NUM_STEPS, BATCH = 2, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    outdir = str(tmp_path_factory.mktemp("mp"))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
                   [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(var, None)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "mp_worker.py"), str(port),
                               str(i), outdir], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=240)
            logs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i} failed:\n{logs[i][-4000:]}"
    return outdir


@pytest.fixture(scope="module")
def one_process_reference():
    dev = jax.devices()[0]
    params = jax.device_put(
        nn.meta.unbox(jax.jit(tiny_model.init_fn)(jax.random.key(0)))["params"], dev)
    step = jax.jit(tiny_model.sgd_step)
    losses = []
    for i in range(NUM_STEPS):
        params, loss, _ = step(params, jax.device_put(tiny_model.make_batch(BATCH, seed=i), dev))
        losses.append(float(loss))
    return np.array(losses), jax.device_get(params)


def test_two_processes_match_one_process(two_process_run, one_process_reference):
    losses, params = one_process_reference
    result = np.load(os.path.join(two_process_run, "result.npz"))
    np.testing.assert_allclose(result["losses"], losses, rtol=1e-5)
    for path, ref in jax.tree_util.tree_leaves_with_path(params):
        np.testing.assert_allclose(result[jax.tree_util.keystr(path)], ref, rtol=1e-5, atol=1e-6)


def test_two_process_checkpoint_restores_on_one_device(two_process_run, one_process_reference):
    _, params = one_process_reference
    one = SingleDeviceSharding(jax.devices()[0])
    target = {"params": jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=one),
                                     params),
              "step": jax.ShapeDtypeStruct((), np.int32, sharding=one)}
    ckpt = Checkpointer(os.path.join(two_process_run, "ckpt"), config_fingerprint="mp-test")
    assert ckpt.latest_step() == NUM_STEPS
    state, meta = ckpt.restore(target=target)
    ckpt.close()
    assert meta["data_state"] == {"next_batch": NUM_STEPS}
    assert int(state["step"]) == NUM_STEPS
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6),
                 state["params"], params)
    assert state["params"]["mlp_in"]["kernel"].sharding == one
