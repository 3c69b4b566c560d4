#!/usr/bin/env bash
# Issue 16, session 12: v4 with scale augmentation (models/configs/deeppcb-v6.toml), its
# fold-1 model alone (design 20085 held out, --folds-only), 6,979 steps; the ONNX file back in
# $OUT/probe.tar, scored on the CPU afterwards with aoi eval against the session-11 probe's v4.
#   stage: bash tools/gpu/stage-tree.sh; run: carry ["data/h-train16"], command:
#   bash data/h-train16/tools/gpu/train-scale16.sh data/h-train16
cd "${1:-.}" || exit 2
R=/tmp/probe
. tools/gpu/train-env.sh
python3 -m pytest -q -p no:cacheprovider tests/models/test_deeppcb.py 2>&1 | tail -2
python3 -m models.train_deeppcb --config models/configs/deeppcb-v6.toml --device cuda --out "$R" \
  --fold models/splits/cv4-fold1.txt --folds-only 2>&1 \
  | tee "$R/train.log" | grep --line-buffered -E '^step|STOPPED|trained|Error|parameters'
tar -C "$R" --exclude=last.pt -cf "$OUT/probe.tar" . && tar -tf "$OUT/probe.tar"; date -u
