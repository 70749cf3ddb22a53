"""Per-step progress from a jitted sampler: every step reported once, in order, with the
output unchanged. On a one-device CPU host (run in child processes: the suite has 8
fake devices) through the FFI target, in a program that a second process loads from the
persistent compilation cache, where its reports still arrive; a `jax.debug.callback`
program in the same two runs is the control: JAX never caches it. With several devices
(here, in-process) through `jax.debug.callback`, sharded sampling included."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from lumiere_jax.diffusion import progress as progress_lib
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import cosine_schedule


def run(x, progress, num_steps=5):
    return jax.jit(lambda x: sample(lambda y, t: 0.5 * y, x, jax.random.key(0),
                                    schedule=cosine_schedule(), sampler="ddpm",
                                    num_steps=num_steps, progress=progress))(x)


def test_several_devices_report_each_step_once_sharded_or_not():
    assert jax.device_count() == 8 and not progress_lib.uses_ffi()
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    x = jnp.linspace(-1.0, 1.0, 32).reshape(8, 4)
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    seen, seen_sharded = [], []
    out = run(x, seen.append).block_until_ready()
    out_sharded = run(sharded, seen_sharded.append).block_until_ready()
    assert seen == seen_sharded == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(np.asarray(out), np.asarray(run(x, None)))
    np.testing.assert_allclose(np.asarray(out_sharded), np.asarray(out), rtol=1e-6)


SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from jax._src import monitoring
    from lumiere_jax.diffusion import progress
    from lumiere_jax.diffusion.samplers import sample
    from lumiere_jax.diffusion.schedules import cosine_schedule

    events = []
    monitoring.register_event_listener(lambda name, **kw: events.append(name))

    def run(x, report, steps=4):  # a fresh function each time: a jit-cache miss
        return jax.jit(lambda x: sample(lambda y, t: 0.5 * y, x, jax.random.key(0),
                                        schedule=cosine_schedule(), sampler="ddpm",
                                        num_steps=steps, progress=report))(x)

    def cache_events(fn):
        events.clear()
        fn()
        count = lambda name: events.count("/jax/compilation_cache/" + name)
        return dict(requests=count("compile_requests_use_cache"), hits=count("cache_hits"),
                    misses=count("cache_misses"))

    x = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)
    report = dict(devices=jax.device_count(), ffi=progress.uses_ffi())
    steps, vmapped, out = [], [], {}
    report["cache"] = cache_events(
        lambda: out.update(bar=run(x, steps.append).block_until_ready()))
    report["steps"] = steps
    report["same_output"] = bool(np.array_equal(out["bar"], run(x, None)))
    jax.vmap(lambda v: run(v, vmapped.append, 3))(jnp.ones((2, 2, 3))).block_until_ready()
    report["vmapped"] = vmapped
    def broken(step):
        raise RuntimeError("bar is broken")
    report["broken_same_output"] = bool(np.array_equal(run(x, broken), out["bar"]))
    def debug_progress(step):
        pass
    report["debug"] = cache_events(lambda: jax.jit(lambda x: (jax.debug.callback(
        debug_progress, x[0, 0]), x * 3.0)[1])(x).block_until_ready())
    print(json.dumps(report))
""")


def test_one_device_reports_through_ffi_in_programs_a_second_process_reads_back(tmp_path):
    cache = str(tmp_path / "cache")
    flags = os.environ.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count=8", "")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flags)
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", SCRIPT, cache], env=env, text=True,
                             capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        assert "bar is broken" in out.stderr  # reported, and sampling went on
    first, second = runs
    for r in runs:
        assert r["devices"] == 1 and r["ffi"]
        assert r["steps"] == [0, 1, 2, 3] and r["same_output"] and r["broken_same_output"]
        assert r["vmapped"] == [0, 1, 2]  # once per step, not once per batch element
    # every program the sampler compiled is read back, none compiled again
    n = first["cache"]["requests"]
    assert n >= 1 and first["cache"] == dict(requests=n, hits=0, misses=n)
    assert second["cache"] == dict(requests=n, hits=n, misses=0)
    # the control: a program calling back through jax.debug.callback is never read back
    assert first["debug"]["requests"] == second["debug"]["requests"] == 1
    assert first["debug"]["hits"] == second["debug"]["hits"] == 0
