"""scripts/suite_times.py: per-module and per-worker sums from a pytest -v --durations=0 log."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG = """\
[gw0] [ 10%] PASSED tests/a/test_one.py::test_x
[gw1] [ 20%] PASSED tests/test_two.py::test_y[0]
============================== slowest durations ===============================
12.50s call     tests/a/test_one.py::test_x
3.25s setup    tests/a/test_one.py::test_x
7.00s call     tests/test_two.py::test_y[0]
0.25s teardown tests/test_two.py::test_y[0]
================ 2 passed, 1 warning in 30.10s (0:00:30) =================
"""


def run(tmp_path, text):
    log = tmp_path / "suite.log"
    log.write_text(text)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "suite_times.py"),
                           str(log)], capture_output=True, text=True, timeout=60)


def test_sums_per_module_and_worker(tmp_path):
    out = run(tmp_path, LOG)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split()[:3] == ["15.8", "gw0", "tests/a/test_one.py"]  # 12.5 + 3.25
    assert "(12.5 s test_x)" in lines[1]
    assert lines[2].split()[:3] == ["7.2", "gw1", "tests/test_two.py"]
    assert "total 23.0 s; per worker: gw0 15.8 s, gw1 7.2 s; wall 30.1 s" in out.stdout


def test_a_log_without_durations_is_refused(tmp_path):
    out = run(tmp_path, "[gw0] [ 10%] PASSED tests/test_one.py::test_x\n")
    assert out.returncode != 0 and "no durations table" in out.stderr
