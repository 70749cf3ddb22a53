"""glibc malloc tuning (`lumiere_jax.host_memory`): the environment it builds, and a real
process run as train.py runs (`cli.run(..., tune_malloc=True)`), re-executed once, whose
large buffers fault far fewer pages."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from lumiere_jax import host_memory
from lumiere_jax.host_memory import OPT_OUT, TUNABLES, tuned_environ

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLIBC = (2, 36)


def tunables_of(env):
    return dict(item.split("=", 1) for item in env["GLIBC_TUNABLES"].split(":"))


def test_adds_every_tunable_and_keeps_the_rest_of_the_environment():
    env = tuned_environ({"PATH": "/bin"}, libc=GLIBC)
    assert env["PATH"] == "/bin"
    assert tunables_of(env) == TUNABLES


def test_settings_the_user_gave_win_and_a_tuned_environment_is_left_alone():
    given = "glibc.malloc.hugetlb=0:glibc.malloc.arena_max=2"
    env = tuned_environ({"GLIBC_TUNABLES": given}, libc=GLIBC)
    tunables = tunables_of(env)
    assert tunables["glibc.malloc.hugetlb"] == "0" and tunables["glibc.malloc.arena_max"] == "2"
    assert env["GLIBC_TUNABLES"].startswith(given + ":")
    assert set(tunables) == set(TUNABLES) | {"glibc.malloc.arena_max"}
    assert tuned_environ(env, libc=GLIBC) is None  # nothing left to add: no second relaunch


@pytest.mark.parametrize("libc", [None, (2, 31)])
def test_nothing_to_do_without_a_glibc_that_has_the_tunables(libc, monkeypatch):
    monkeypatch.setattr(host_memory, "glibc_version", lambda: None)
    assert tuned_environ({}, libc=libc) is None


def test_opt_out():
    assert tuned_environ({OPT_OUT: "0"}, libc=GLIBC) is None


CHILD = textwrap.dedent("""
    import ctypes, json, os, resource, sys
    with open(sys.argv[1], "a") as f:
        f.write("started\\n")
    from lumiere_jax import cli

    def main(argv):
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(8):  # 64 MiB, over any mmap threshold: a fresh mapping each time
            buffer = libc.malloc(64 << 20)
            ctypes.memset(buffer, 1, 64 << 20)  # as XLA:CPU writes its temporary buffers
            libc.free(buffer)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        print(json.dumps(dict(argv=argv[1:], faults=faults,
                              tunables=os.environ.get("GLIBC_TUNABLES", ""))))

    cli.run(main, None, "child.py", tune_malloc=True)  # as train.py runs
""")


def run_child(tmp_path, name, **env):
    script, starts = tmp_path / "child.py", tmp_path / f"{name}.starts"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", OPT_OUT)} | env
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, str(script), str(starts), "extra"], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), starts.read_text().count("started")


def test_a_relaunched_process_has_the_tunables_and_faults_fewer_pages(tmp_path):
    tuned, tuned_starts = run_child(tmp_path, "tuned")
    plain, plain_starts = run_child(tmp_path, "plain", **{OPT_OUT: "0"})
    assert tuned["argv"] == [str(tmp_path / "tuned.starts"), "extra"]
    assert plain["argv"] == [str(tmp_path / "plain.starts"), "extra"]
    assert (plain_starts, plain["tunables"]) == (1, "")
    libc = host_memory.glibc_version()
    if libc is None or libc < (2, 35):  # no such tunables here: the process just goes on
        assert (tuned_starts, tuned["tunables"]) == (1, "")
        return
    assert tuned_starts == 2  # one re-execution
    assert tunables_of({"GLIBC_TUNABLES": tuned["tunables"]}) == TUNABLES
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        thp = f.read().split("[")[1].split("]")[0]
    if thp == "madvise":  # glibc's advice is what turns huge pages on: 512x fewer faults
        assert tuned["faults"] * 20 < plain["faults"], (tuned, plain)
    else:  # 'always' gives both huge pages, 'never' neither
        assert tuned["faults"] <= 1.5 * plain["faults"] + 100, (tuned, plain)
