#!/bin/sh
# Score a model bundle the way the README's model card does (issue 17's "must show"):
#   1000 showers at the energies of g4_photons_val_uniform.h5 against it, floor from g4_photons_train2.h5;
#   600 showers at the energies of g4_photons_val_fixed.h5 (10/50/90 GeV) against it, floor from its halves.
# evaluate exits 1 on a FAIL verdict: --no-fail-exit lets the script score both samples; impact: evaluate's default (random).
# Usage: campaign/evaluate.sh MODEL_DIR LABEL OUT_DIR [generate options, e.g. --sampler edm]
set -e
cd "$(dirname "$0")/.."
DATA=${CALOCLOUDS_DATA:-../shared/data}
MODEL=$1; LABEL=$2; OUT=$3; shift 3
mkdir -p "$OUT"
CC=.venv/bin/caloclouds
$CC generate --model "$MODEL" --energies-from "$DATA/g4_photons_val_uniform.h5" --seed 1 -o "$OUT/uniform.h5" "$@"
$CC evaluate --reference "$DATA/g4_photons_val_uniform.h5" --floor-reference "$DATA/g4_photons_train2.h5" \
    --generated "$OUT/uniform.h5" --label "$LABEL" --max-showers 1000 --no-fail-exit --out "$OUT/eval_uniform"
$CC generate --model "$MODEL" --energies-from "$DATA/g4_photons_val_fixed.h5" --seed 1 -o "$OUT/fixed.h5" "$@"
$CC evaluate --reference "$DATA/g4_photons_val_fixed.h5" --generated "$OUT/fixed.h5" --label "$LABEL" --no-fail-exit \
    --out "$OUT/eval_fixed"
