"""`build_run`: the abstract description train.py compiles agrees with the real state."""

from __future__ import annotations

import jax
import numpy as np

from lumiere_jax.parallel import make_mesh
from configs.common import tiny_config
from lumiere_jax.training.run import build_run


def test_abstract_run_matches_the_fresh_state_and_steps():
    """The abstract state / frozen trees (restore targets) have the shapes, dtypes and
    shardings of the state `fresh_state` really builds; the compiled step runs on it."""
    config = tiny_config("t2i")
    config.data.batch_size = 2
    mesh = make_mesh({"data": 2}, devices=jax.devices()[:2])
    run = build_run(config, mesh)
    state, frozen = run.fresh_state()
    for abstract, real in ((run.state, state), (run.frozen, frozen)):
        assert jax.tree.structure(abstract) == jax.tree.structure(real)
        for a, r in zip(jax.tree.leaves(abstract), jax.tree.leaves(real)):
            assert (a.shape, a.dtype) == (r.shape, r.dtype)
            assert a.sharding.is_equivalent_to(r.sharding, len(a.shape))
    rng = np.random.default_rng(0)
    batch = {k: jax.device_put(rng.integers(0, 2 if k == "mask" else 200, v.shape).astype(v.dtype),
                               v.sharding) for k, v in run.batch.items()}
    new_state, metrics = run.compile()(state, frozen, batch)
    assert int(new_state["step"]) == 1 and np.isfinite(float(metrics["loss"]))
