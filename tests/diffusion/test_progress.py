"""Per-step progress from a jitted sampler: every step reported once, in order, with the
output unchanged, and (on CPU) in a program that a second process loads from the
persistent compilation cache, where its reports still arrive. A `jax.debug.callback`
program in the same two runs is the control: JAX never caches it."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.diffusion import progress as progress_lib
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.diffusion.schedules import cosine_schedule

SCHEDULE = cosine_schedule()


def run(x, progress, num_steps=5):
    return jax.jit(lambda x: sample(lambda y, t: 0.5 * y, x, jax.random.key(0),
                                    schedule=SCHEDULE, sampler="ddpm", num_steps=num_steps,
                                    progress=progress))(x)


def test_every_step_is_reported_once_in_order_and_the_output_is_unchanged():
    assert progress_lib.uses_ffi()  # CPU: the cacheable path is the one under test
    seen = []
    x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    with_bar = run(x, seen.append).block_until_ready()
    assert seen == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(np.asarray(with_bar), np.asarray(run(x, None)))


def test_vmapped_sampler_reports_each_step_once_and_two_bars_stay_apart():
    first, second = [], []
    x = jnp.ones((2, 3, 4))
    jax.vmap(lambda v: run(v, first.append, num_steps=3))(x).block_until_ready()
    run(x[0], second.append, num_steps=4).block_until_ready()
    assert first == [0, 1, 2] and second == [0, 1, 2, 3]


def test_a_failing_progress_function_does_not_stop_sampling(capfd):
    def broken(step):
        raise RuntimeError("bar is broken")
    x = jnp.ones((2, 3))
    np.testing.assert_array_equal(np.asarray(run(x, broken)), np.asarray(run(x, None)))
    assert "bar is broken" in capfd.readouterr().err


SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from jax._src import monitoring
    from lumiere_jax.diffusion.samplers import sample
    from lumiere_jax.diffusion.schedules import cosine_schedule

    events = []
    monitoring.register_event_listener(lambda name, **kw: events.append(name))

    def run(x, progress):  # a fresh function each time: a jit-cache miss, so a compile
        return jax.jit(lambda x: sample(lambda y, t: 0.5 * y, x, jax.random.key(0),
                                        schedule=cosine_schedule(), num_steps=4,
                                        progress=progress))(x)

    def cache_events(fn):
        events.clear()
        fn()
        count = lambda name: events.count("/jax/compilation_cache/" + name)
        return dict(requests=count("compile_requests_use_cache"), hits=count("cache_hits"),
                    misses=count("cache_misses"))

    report = {}
    steps = []
    report["ffi"] = cache_events(lambda: run(jnp.ones((2, 3)), steps.append))
    report["ffi_steps"] = steps
    def debug_progress(step):
        pass
    report["debug"] = cache_events(lambda: jax.jit(lambda x: (jax.debug.callback(
        debug_progress, x[0, 0]), x * 3.0)[1])(jnp.ones((2, 3))).block_until_ready())
    print(json.dumps(report))
""")


def test_a_second_process_loads_the_sampler_from_the_persistent_cache(tmp_path):
    cache = str(tmp_path / "cache")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", SCRIPT, cache], env=env, text=True,
                             capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    # every program the sampler compiled is read back, none compiled again
    n = first["ffi"]["requests"]
    assert n >= 1 and first["ffi"] == dict(requests=n, hits=0, misses=n)
    assert second["ffi"] == dict(requests=n, hits=n, misses=0)
    assert first["ffi_steps"] == second["ffi_steps"] == [0, 1, 2, 3]
    # the control: a program calling back through jax.debug.callback is never read back
    assert first["debug"]["requests"] == second["debug"]["requests"] == 1
    assert first["debug"]["hits"] == second["debug"]["hits"] == 0
