"""Where the test suite's time goes: per module and per xdist worker, from a pytest log.

    python -m pytest -v -n 2 --dist loadscope --durations=0 tests > suite.log 2>&1
    python scripts/suite_times.py suite.log [--top 25]

Reads the `--durations=0` table (setup, call and teardown of every test) and the `-v`
lines that say which worker ran each module (`[gw0] [ 10%] PASSED tests/...`), and prints
the summed time per module (largest first, with its worker and its longest test) and per
worker. With `--dist loadscope` a module never splits across workers, so the wall time is
about the larger worker's sum; the suite's target (12 minutes on 2 cores) needs both sums
under it.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)")
WORKER = re.compile(r"^\[(gw\d+)\] \[\s*\d+%\] \w+ (\S+?)::")
SUMMARY = re.compile(r"(\d+ (?:passed|failed).*?) in ([\d.]+)s")


def parse(lines: list[str]) -> tuple[dict, dict, dict, float | None]:
    """({module: seconds}, {module: worker}, {module: (seconds, test)}, wall seconds)."""
    per_module, worker, longest, wall = collections.Counter(), {}, {}, None
    for line in lines:
        if m := WORKER.match(line):
            worker[m.group(2)] = m.group(1)
        elif m := DURATION.match(line):
            seconds, test = float(m.group(1)), m.group(3)
            module = test.split("::")[0]
            per_module[module] += seconds
            if seconds > longest.get(module, (0.0, ""))[0]:
                longest[module] = (seconds, test.split("::", 1)[-1])
        elif m := SUMMARY.search(line):
            wall = float(m.group(2))
    return per_module, worker, longest, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", help="output of pytest -v --durations=0 (with -n: xdist)")
    p.add_argument("--top", type=int, default=25, help="modules listed")
    a = p.parse_args()
    with open(a.log, errors="replace") as f:
        per_module, worker, longest, wall = parse(f.read().splitlines())
    if not per_module:
        sys.exit(f"{a.log}: no durations table; run pytest with --durations=0")
    print(f"{'seconds':>8} {'worker':>6}  module (longest test)")
    for module, seconds in per_module.most_common(a.top):
        top_s, top_test = longest[module]
        print(f"{seconds:8.1f} {worker.get(module, '-'):>6}  {module} "
              f"({top_s:.1f} s {top_test[:60]})")
    by_worker = collections.Counter()
    for module, seconds in per_module.items():
        by_worker[worker.get(module, "-")] += seconds
    total = sum(per_module.values())
    print(f"\ntests' total {total:.1f} s; per worker: "
          + ", ".join(f"{w} {s:.1f} s" for w, s in sorted(by_worker.items()))
          + (f"; wall {wall:.1f} s" if wall is not None else ""))


if __name__ == "__main__":
    main()
