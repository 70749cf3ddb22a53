"""How the top-level scripts run: `--help` prints the script's docstring and every flag and
exits 0 (absl's own --help exits 1); a `ValueError` (a bad flag, input or file) becomes one
line `<script>: error: ...` and exit status 1, never a traceback.

    if __name__ == "__main__":
        cli.run(main, __doc__, "sample.py")
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags

HELP_FLAGS = ("--help", "-h", "-help", "--helpshort")


def run(main: Callable[[list[str]], None], doc: str | None, script: str) -> None:
    if any(a in HELP_FLAGS for a in sys.argv[1:]):
        print(doc or "")
        print(flags.FLAGS.main_module_help())
        sys.exit(0)

    def checked_main(argv: list[str]) -> None:
        try:
            main(argv)
        except ValueError as e:
            sys.exit(f"{script}: error: {e}")

    app.run(checked_main)
