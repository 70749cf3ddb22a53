"""lumiere_jax.eval stands alone: it imports neither lumiere_jax.training nor a top-level
script (train.py, sample.py, evaluate.py)."""

import subprocess
import sys


def test_eval_imports_no_training_and_no_scripts():
    code = ("import sys, lumiere_jax.eval, lumiere_jax.eval.contact_sheet, "
            "lumiere_jax.eval.scoring; "
            "bad = sorted(m for m in sys.modules if m.startswith('lumiere_jax.training') "
            "or m in ('train', 'sample', 'evaluate')); print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"
