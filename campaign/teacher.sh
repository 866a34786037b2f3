#!/bin/sh
# One slice of a per-layer EDM teacher of the issue-17 campaign; re-run to continue it exactly.
# Usage: campaign/teacher.sh TIME_BUDGET [RUN_FOLDER [CORE]]   (e.g. 1h30m campaign/teacher2 1)
# One thread, pinned to CORE (default 0) when taskset exists.
set -e
cd "$(dirname "$0")/.."
DATA=${CALOCLOUDS_DATA:-../shared/data}
OUT=${2:-campaign/teacher}
RESUME=""
[ -f "$OUT/checkpoint.pt" ] && RESUME=--resume
PIN=""
command -v taskset >/dev/null && PIN="taskset -c ${3:-0}"
exec $PIN .venv/bin/caloclouds train-diffusion --config configs/ild_photons_per_layer.yaml \
    --data "$DATA/g4_photons_train.h5" "$DATA/g4_photons_train2.h5" \
    --val "$DATA/g4_photons_val_uniform.h5" --out "$OUT" \
    --threads 1 --seed 17 --time-budget "${1:-1h30m}" --no-progress $RESUME
