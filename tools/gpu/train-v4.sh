#!/usr/bin/env bash
# Session 2, device call D: deeppcb-v4 = v3 with a third synthetic boards, more of them grey.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 3
R=$OUT/r4; mkdir -p $R
python3 -m models.train_deeppcb --config tools/gpu/deeppcb-v4.toml --device cuda --out $R 2>&1 | tee $R/train.log | grep -v "^\s*$" | tail -12
timeout 100 python3 -m aoi.cli eval --data data/deeppcb-pack --split models/splits/deeppcb-val.txt --backend onnxruntime \
    --model $R/deeppcb-v4/model.onnx --recipe deeppcb-640 --json --out $R/eval > $R/eval.txt 2>&1
grep -v '^{' $R/eval.txt | grep -v '^\[eval\]' | tail -10
sed 's#^path = "../models/aoi-defect-v2.onnx"#path = "'$R'/deeppcb-v4/model.onnx"#' recipes/board-b-1024.toml > recipes/v4-board-b-1024.toml
timeout 100 python3 -m aoi.cli bench --recipe recipes/v4-board-b-1024.toml --backend onnxruntime --cycles 200 --json 2>/dev/null | tail -1 | head -c 300; echo
date -u
