#!/usr/bin/env bash
# Retrain the demo cascade's T2I and STUNet on one accelerator, from clips held in its
# memory (train_resident.py), starting from the shipped weights:
#   bash scripts/train_demo_gpu.sh            # writes $OUT (or runs/gpu)/{t2i,base}
# Stage 1 fine-tunes the shipped T2I (batch 256); stage 2 inflates it and fine-tunes the
# shipped STUNet's temporal weights on top (batch 64). Each writes a pretrained folder;
# ship them with export_pretrained.py --stage t2i=<out>/t2i --stage base=<out>/base.
# The shipped weights of 2026-12-04 came from this script on one H200 (figures in
# pretrained/moving_shapes/README.md): stage 1 took 245 s (render 40 s, compile 82 s,
# 4000 steps at 32.5 ms); the 560 s device call ended during stage 2 (render 37 s, compile
# 69 s, 36.2 ms/step), whose step-1650 export was shipped. Budget about 10 minutes. Sizes and times can be changed through the
# environment (T2I_SECONDS, BASE_SECONDS, NUM_CLIPS, T2I_BATCH, BASE_BATCH).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu}
python=${PYTHON:-python3}
clips=${NUM_CLIPS:-100000}
"$python" train_resident.py --config configs/demo_t2i.py --workdir "$out/t2i" \
  --seconds "${T2I_SECONDS:-120}" --num_clips "$clips" --warm_start pretrained/moving_shapes \
  --config.data.batch_size="${T2I_BATCH:-256}" --config.optim.lr=5e-4 \
  --config.optim.warmup_steps=100 --config.optim.decay_steps=3000 \
  --config.optim.ema_decay=0.999
"$python" train_resident.py --config configs/demo_stunet.py --workdir "$out/base" \
  --seconds "${BASE_SECONDS:-200}" --num_clips "$clips" --warm_start pretrained/moving_shapes \
  --config.train.init_from="$out/t2i" \
  --config.data.batch_size="${BASE_BATCH:-64}" --config.optim.lr=8e-4 \
  --config.optim.warmup_steps=100 --config.optim.decay_steps=2000 \
  --config.optim.ema_decay=0.999
