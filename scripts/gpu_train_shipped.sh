#!/usr/bin/env bash
# Train the shipped default models on one CUDA GPU, all at once, each for a wall-clock budget.
#
#   scripts/gpu_train_shipped.sh DATA OUT SECONDS
#
# DATA holds photos/, digits/ and textures/ as `scripts/photo_data.py --out DATA` writes them; OUT
# gets one run folder per model plus their logs; SECONDS is each run's --time-limit (the cosine
# schedule is fitted to it). The three runs share the GPU (small models leave it mostly idle, and
# their batches are built by worker processes on the CPU cores). A 40-step fp16 run of the tiny
# preset first checks the fp16 autocast + GradScaler path on CUDA (bf16 is what the runs use).
# Afterwards: `scripts/ship_model.py` copies a run's best/ into resources/models/ with its provenance.
set -u
DATA=${1:?data folder}
OUT=${2:?output folder}
SECONDS_EACH=${3:?seconds per run}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
$PY -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__,
'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
  >>"$OUT/gpu.txt" 2>&1

train() {  # name, then `diffedit train` arguments
  local name=$1; shift
  $PY -m diffedit train --seed 0 --out "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1
  echo "$name exit $?" >>"$OUT/status.txt"
}

train fp16-check --data "$DATA/digits" --task generate --conditioning class --preset tiny --size 32 \
  --steps 40 --batch 64 --precision fp16 --checkpoint-every 20 --sample-steps 2 --workers 1 &
train repair --data "$DATA/photos" --task repair --preset conv --size 64 --batch 128 --lr 6e-4 \
  --steps 1000000 --time-limit "$SECONDS_EACH" --checkpoint-every 1000 --keep 1 --sample-steps 1 --workers 9 &
train digits --data "$DATA/digits" --task generate --conditioning class --prediction-type v_prediction \
  --preset tiny --size 32 --batch 128 --lr 6e-4 --steps 1000000 --time-limit "$SECONDS_EACH" \
  --checkpoint-every 1000 --keep 1 --workers 2 &
train textures --data "$DATA/textures" --task generate --prediction-type v_prediction --preset tiny --size 48 \
  --crop patch --batch 128 --lr 6e-4 --steps 1000000 --time-limit "$SECONDS_EACH" --checkpoint-every 1000 \
  --keep 1 --workers 2 &
wait
nvidia-smi --query-gpu=memory.used --format=csv,noheader >>"$OUT/gpu.txt" 2>&1
cat "$OUT/status.txt"
