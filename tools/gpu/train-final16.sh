#!/usr/bin/env bash
# Issue 16, session 14: the final model of the multi-scale recipe (recipes/deeppcb-640-ms.toml):
# v4 with scale augmentation (models/configs/deeppcb-v6.toml) on all of trainval, 6,979 steps,
# the length and config of session 13's four fold models (train-scale16.sh, -folds.sh), which
# give its cross-validation. The ONNX file and train.json back in $OUT/final.tar.
#   stage: bash tools/gpu/stage-tree.sh; run: carry ["data/h-train16"], command:
#   bash data/h-train16/tools/gpu/train-final16.sh data/h-train16
cd "${1:-.}" || exit 2
R=/tmp/final
. tools/gpu/train-env.sh
python3 -m models.train_deeppcb --config models/configs/deeppcb-v6.toml --device cuda --out "$R" 2>&1 \
  | tee "$R/train.log" | grep --line-buffered -E '^step|STOPPED|trained|Error|parameters'
tar -C "$R" --exclude=last.pt -cf "$OUT/final.tar" . && tar -tf "$OUT/final.tar"; date -u
