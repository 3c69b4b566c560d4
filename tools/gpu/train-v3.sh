#!/usr/bin/env bash
# Session 2, device call T: train deeppcb-v3 and its no-seam ablation side by side on the same
# batches, export both, evaluate both with `aoi eval` on the CPU (val split, deeppcb-640), keep a
# copy in /tmp/r3 for the bench call that follows while the machine is warm.
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 3
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
R=$OUT/r3; mkdir -p $R; N="deeppcb-v3 v3-noseam"
t train
python3 -m models.train_deeppcb --config models/configs/deeppcb-v3.toml --config tools/gpu/v3-noseam.toml --device cuda --out $R 2>&1 | tee $R/train.log | grep -v "^\s*$" | tail -60
rm -rf /tmp/r3 && cp -r $R /tmp/r3
t eval
for n in $N; do
  timeout 120 python3 -m aoi.cli eval --data data/deeppcb-pack --split models/splits/deeppcb-val.txt --backend onnxruntime \
    --model $R/$n/model.onnx --recipe deeppcb-640 --json --out $R/$n/eval > $R/$n/eval.txt 2>&1 &
done
wait
for n in $N; do echo "== $n"; grep -v '^{' $R/$n/eval.txt | grep -v '^\[eval\]' | grep -v WARNING | tail -14; tail -1 $R/$n/eval.txt | head -c 400; echo; done
t done; date -u
