#!/usr/bin/env bash
# Issue 16, one device call: the fold tests, then deeppcb-v4 and its four leave-groups-out fold
# models (models/splits/cv4-fold*.txt) trained side by side on the same batches, each exported to
# ONNX; everything in $OUT/r16.tar. Evaluation runs on the station's CPU afterwards (aoi eval /
# aoi bench, commands in models/aoi-defect-v4.md).
#
# Run from a copy of the tree with the packed data inside it (both git-ignored in the checkout
# the device tool sends), e.g. from /work/main:
#   python -m models.deeppcb pack --data ../shared/data/deeppcb/PCBData --out data/deeppcb-all --val-groups
#   pip download (cp312) pydantic pydantic_core annotated_types typing_extensions typing_inspection -d data/whl
#   run: carry ["data/h-train16"], command: bash data/h-train16/tools/gpu/train-issue16.sh data/h-train16 [MINUTES]
# MINUTES (default the config's max_minutes) bounds the training; the LR schedule fits into it.
# With a third argument, the folder a previous call's r16.tar was unpacked into (carried, e.g.
# ["data/h-train16", "data/r16-call1"] and ../r16-call1 from inside data/h-train16), the cosine
# runs by steps and the run resumes from that folder's last.pt files (models.train_deeppcb
# --resume); a first call of such a run passes an empty folder's name: "-". With RESTART=LR and
# STEPS=N as well, the resumed run restarts its warm-up and cosine at peak LR, to step N.
# CONFIG=PATH trains another config's models (default models/configs/deeppcb-v4.toml); resumed
# folders named deeppcb-v4* are renamed to its models (deeppcb-v5-cv4-fold1, ...).
# The GPU machine has torch, numpy, OpenCV, onnx and onnxruntime; only models.* runs there.
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
cd "${1:-.}" || exit 2
# The device tool brings back only a few files from $OUT (the first run of this script lost three
# fold models to that limit): train in /tmp/r16, then pack the ONNX files, train.json files and
# the log into one tar under $OUT (checkpoints stay behind).
R=/tmp/r16; rm -rf "$R"; mkdir -p "$R"
exec > >(tee "$OUT/call.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
echo "tree: $(cat STAGED_FROM 2>/dev/null || echo 'unknown (not staged by tools/gpu/stage-tree.sh)')"
python3 -c "import torch, cv2, onnx, onnxruntime; print('torch', torch.__version__, 'ort', onnxruntime.__version__)"
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site data/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
t tests
if python3 -c "import pytest" 2>/dev/null; then
  python3 -m pytest tests/models/test_train_folds.py -q -p no:cacheprovider --noconftest -rs 2>&1 | tail -5
  rc=${PIPESTATUS[0]}
else  # no pytest there: call the test functions with a temporary folder each
  python3 - <<'EOF'
import inspect, sys, tempfile
from pathlib import Path
sys.path.insert(0, "tests/models")
import test_train_folds as m
for name, fn in vars(m).items():
    if name.startswith("test_"):
        with tempfile.TemporaryDirectory() as tmp:
            fn(*([Path(tmp)] if inspect.signature(fn).parameters else []))
        print("passed", name)
EOF
  rc=$?
fi
[ "$rc" = 0 ] || { echo "fold tests failed (rc $rc): not training"; exit 4; }
if [ -n "${SHAPES:-}" ]; then  # SHAPES=1: the first step per new batch size, cuDNN on and off
  t shapes
  timeout 180 python3 tools/gpu/train_profile.py --shapes 2>&1 | tail -20
fi
t train
CONFIG=${CONFIG:-models/configs/deeppcb-v4.toml}; NAME=$(basename "$CONFIG" .toml)
F=""; for k in 1 2 3 4; do F="$F --fold models/splits/cv4-fold$k.txt"; done
X=""
if [ -n "${3:-}" ]; then
  [ "${SCHEDULE:-steps}" = time ] || X="--step-schedule"  # SCHEDULE=time: the rest fits MINUTES
  if [ "$3" != - ]; then  # each model's folder, renamed to CONFIG's models (v4 -> v5 etc.)
    for d in "$3"/*/; do b=$(basename "$d"); cp -a "$d" "$R/$NAME${b#deeppcb-v4}"; done
    X="$X --resume" && ls "$R"
  fi
  # RESTART=LR STEPS=N: a warm restart from the resumed step, cosine from LR to step N.
  [ -n "${RESTART:-}" ] && X="$X --restart $RESTART --steps ${STEPS:?STEPS with RESTART}"
fi
python3 -m models.train_deeppcb --config "$CONFIG" --device cuda --out "$R" $F \
  ${2:+--max-minutes $2} $X 2>&1 | tee "$R/train.log" | grep --line-buffered -E '^step|STOPPED|trained|Error'
echo "train rc ${PIPESTATUS[0]}"; grep -v "^\s*$" "$R/train.log" | tail -40
ls -la "$R"/*/model.onnx
tar -C "$R" -cf "$OUT/r16.tar" . && tar -tvf "$OUT/r16.tar"  # last.pt too: a later call resumes
t done; date -u
