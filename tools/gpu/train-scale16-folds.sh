#!/usr/bin/env bash
# Issue 16, session 13: folds 2-4 of v4 with scale augmentation (models/configs/deeppcb-v6.toml),
# side by side (--folds-only), planned at fold 1's 6,979 steps with the cosine fitted into 6.5
# minutes (the guard ends it first if the three are slower); the ONNX files back in
# $OUT/folds.tar. With train-scale16.sh's fold-1 model they score test-time upscaling on the CPU.
#   stage: bash tools/gpu/stage-tree.sh; run: carry ["data/h-train16"], command:
#   bash data/h-train16/tools/gpu/train-scale16-folds.sh data/h-train16
cd "${1:-.}" || exit 2
R=/tmp/folds
. tools/gpu/train-env.sh
python3 -m models.train_deeppcb --config models/configs/deeppcb-v6.toml --device cuda --out "$R" \
  --fold models/splits/cv4-fold2.txt --fold models/splits/cv4-fold3.txt \
  --fold models/splits/cv4-fold4.txt --folds-only --steps 6979 --max-minutes 6.5 2>&1 \
  | tee "$R/train.log" | grep --line-buffered -E '^step|STOPPED|trained|Error|parameters'
tar -C "$R" --exclude=last.pt -cf "$OUT/folds.tar" . && tar -tf "$OUT/folds.tar"; date -u
