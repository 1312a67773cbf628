#!/usr/bin/env bash
# Rebuild the shipped weights (worker/models/{mtcnn_finetuned,mtcnn_union,mask_cnn}.pt) from
# ../shared into OUT, then score them as docs/metrics.json was scored. Never writes worker/models/.
#
#   ml/reproduce_weights.sh [SHARED_DIR=../shared] [OUT=var/reproduced]
#
# Needs the lab (`pip install -e '.[ml]'`). Hours on a 2-core CPU (crops ~10 min, each
# detector 5-15 min, each classifier 8-25 min). Training is seeded, not bit-identical across
# machines or torch builds: expect the figures within their intervals, not to the digit.
set -euo pipefail
SHARED=${1:-../shared}
OUT=${2:-var/reproduced}
SCENES="$SHARED/datasets/kaggle-scenes-dev"
mkdir -p "$OUT/crops" "$OUT/det"

# Detectors: RNet/ONet fine-tuned on masked faces; then a second PNet beside the stock one and
# that pair's RNet/ONet retrained gently from the first file's.
maskwatch train-detector "$SHARED" --stages rnet,onet --out "$OUT/mtcnn_finetuned.pt"
maskwatch train-detector "$SHARED" --stages pnet --pnet-union --init "$OUT/mtcnn_finetuned.pt" \
    --out "$OUT/det/union_c.pt"
maskwatch train-detector "$SHARED" --stages rnet,onet --init "$OUT/det/union_c.pt" --lr 2e-5 \
    --out "$OUT/mtcnn_union.pt"
MERGED="$OUT/mtcnn_finetuned.pt+$OUT/mtcnn_union.pt"

# Face crops, cut as inference cuts them (group-aware splits; the kaggle scene split is the
# committed ml/training/splits). kaggle_detected: the detector's own boxes, with not_face.
CUT=(--detector-weights "$OUT/mtcnn_finetuned.pt")
for source in kaggle chandrikadeb7 prajnasb kaggle_detected; do
    maskwatch prepare-data "$SHARED" --out "$OUT/crops/$source" --sources "$source" "${CUT[@]}"
done
maskwatch prepare-data "$SHARED" --out "$OUT/crops/kd_merged" --sources kaggle_detected \
    --detector-weights "$MERGED"
# prajnasb's real (unmasked) faces only, as a data dir of their own
mkdir -p "$OUT/crops/prajnasb-unmasked/train"
ln -sfn ../../prajnasb/train/without_mask "$OUT/crops/prajnasb-unmasked/train/without_mask"

# Classifier v4: v3 (single-detector crops) and two seeds on the merged pair's crops, averaged.
# `maskwatch train`'s defaults are the shipped recipe.
TRAIN=("$OUT/crops/kaggle/train" "$OUT/crops/chandrikadeb7/train" "$OUT/crops/prajnasb-unmasked/train")
VAL=(--val-dir "$OUT/crops/kaggle/val" --val-dir "$OUT/crops/chandrikadeb7/val"
     --val-dir "$OUT/crops/kaggle_detected/val")
maskwatch train "${TRAIN[@]}" "$OUT/crops/kaggle_detected/train" --out "$OUT/v3.pt" "${VAL[@]}"
for seed in 0 1; do
    maskwatch train "${TRAIN[@]}" "$OUT/crops/kd_merged/train" --seed "$seed" \
        --out "$OUT/seed$seed.pt" "${VAL[@]}"
done
maskwatch ensemble "$OUT/v3.pt" "$OUT/seed0.pt" "$OUT/seed1.pt" --out "$OUT/mask_cnn.pt" "${VAL[@]}"

# The shipped figures' evaluation (docs/metrics.json): 80 held-out scenes, merged detector.
maskwatch evaluate-scenes "$SCENES/annotations" "$SCENES/images" \
    --split-file ml/training/splits/kaggle_scenes_val.txt \
    --detector-weights "$MERGED" --checkpoint "$OUT/mask_cnn.pt" --json | tee "$OUT/scenes.json"
