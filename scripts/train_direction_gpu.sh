#!/usr/bin/env bash
# Next try at #12's direction target on one accelerator: the shipped STUNet's temporal
# weights fine-tuned on time-reversal pairs, mostly at high noise, from clips held in the
# accelerator's memory (train_resident.py). Each pair is a clip and itself played
# backwards with its caption's directions reversed, sharing t and the noise (played
# backwards), so within a pair only the direction word can lower the loss; t_power 2 puts
# more steps at high noise, where the caption is the only hint of the motion.
#   bash scripts/train_direction_gpu.sh       # writes $OUT (or runs/gpu)/base_pairs
# Budget: about 40 s render + 70 s compile + BASE_SECONDS (default 380) of training, under
# a 600 s device call. On the GPU machine the image has jax and flax but not
# ml_collections: carry a wheel of it and `pip install --target /tmp/site`, then
# PYTHONPATH=/tmp/site (see scripts/train_demo_gpu.sh's notes in the pretrained README).
# Judge the result on a CPU afterwards (these need the moving_shapes test split):
#   python benchmarks/direction_sensitivity.py runs/gpu/base_pairs - 64   # needs |diff| > 2 s.e.
#   python evaluate.py --pretrained pretrained/moving_shapes --base_run runs/gpu/base_pairs \
#       --base_only --short_prompts --fvd=false --num_clips 64 --batch_size 16
# and ship with export_pretrained.py --stage base=runs/gpu/base_pairs only if direction
# improves without losing colour and shape.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu}
python=${PYTHON:-python3}
"$python" train_resident.py --config configs/demo_stunet.py --workdir "$out/base_pairs" \
  --seconds "${BASE_SECONDS:-380}" --num_clips "${NUM_CLIPS:-100000}" \
  --warm_start pretrained/moving_shapes --config.train.init_from=pretrained/moving_shapes \
  --config.data.time_reversal_pairs=True --config.diffusion.t_power=2.0 \
  --config.data.batch_size="${BASE_BATCH:-64}" --config.optim.lr=4e-4 \
  --config.optim.warmup_steps=100 --config.optim.decay_steps=4000 \
  --config.optim.ema_decay=0.999 ${EXTRA_FLAGS:-}
