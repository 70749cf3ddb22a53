#!/usr/bin/env bash
# Accelerator figures (benchmarks/accelerator.py) in under 8 minutes, from the repository
# alone: STUNet train-step bf16 MFU against the device's dense bf16 peak, the paper-scale
# STUNet step's compiled memory on this device, the shipped cascade's sampling time.
#   bash benchmarks/accelerator.sh [--smoke]     # JSON lines on stdout, also in $OUT if set
# Needs a Python whose jax sees the accelerator (e.g. jax[cuda12]) and requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" -c "import jax, flax, optax, orbax.checkpoint" 2>/dev/null; then
  echo "accelerator.sh: $python lacks jax / flax / optax / orbax; install requirements.txt" \
       "and a jax build for this accelerator first" >&2
  exit 1
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # memory figures come from memory_analysis()
log=${OUT:-$(mktemp -d)}/accelerator.jsonl
timeout 470 "$python" benchmarks/accelerator.py "$@" | tee "$log"
echo "accelerator.sh: figures in $log" >&2
