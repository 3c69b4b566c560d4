#!/usr/bin/env bash
# Issue 16, a capacity probe in one device call: v4's fold-1 model and a wider one
# (tools/gpu/deeppcb-v5-wide.toml) trained side by side on the same batches, design 20085 held
# out (models/splits/cv4-fold1.txt, --folds-only), the cosine fitted into MINUTES; both ONNX
# files back in $OUT/probe.tar, scored on the CPU afterwards with aoi eval.
#   stage: bash tools/gpu/stage-tree.sh; run: carry ["data/h-train16"], command:
#   bash data/h-train16/tools/gpu/train-probe16.sh data/h-train16 5
cd "${1:-.}" || exit 2
R=/tmp/probe
. tools/gpu/train-env.sh
python3 -m models.train_deeppcb --config models/configs/deeppcb-v4.toml \
  --config tools/gpu/deeppcb-v5-wide.toml --device cuda --out "$R" \
  --fold models/splits/cv4-fold1.txt --folds-only --max-minutes "${2:-5}" 2>&1 \
  | tee "$R/train.log" | grep --line-buffered -E '^step|STOPPED|trained|Error|parameters'
tar -C "$R" --exclude=last.pt -cf "$OUT/probe.tar" . && tar -tf "$OUT/probe.tar"; date -u
