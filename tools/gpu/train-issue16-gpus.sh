#!/usr/bin/env bash
# Issue 16, one device call on a machine with several GPUs (nvidia-h200-x8; x4 or x2 share GPUs):
# the config's own model and its four leave-groups-out fold models, each in its own process on
# its own GPU with its own loader. Every batch depends only on ([run] seed, index), so the five
# processes see the very batches the side-by-side run gives (models/train_deeppcb.py). The cosine
# runs by steps (--step-schedule); MINUTES is only a guard. Everything comes back in $OUT/r16.tar.
#
# From /work/main, with the tree and the packed data in data/h-train16 (git-ignored, a clone of
# this checkout; see tools/gpu/train-issue16.sh for the packing and the wheels):
#   run: kind nvidia-h200-x8, carry ["data/h-train16"],
#        command: bash data/h-train16/tools/gpu/train-issue16-gpus.sh data/h-train16 [MINUTES] [CONFIG]
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
cd "${1:-.}" || exit 2
MIN=${2:-8}; CONFIG=${3:-models/configs/deeppcb-v4.toml}
R=/tmp/r16g; rm -rf "$R"; mkdir -p "$R"
exec > >(tee "$OUT/call.log") 2>&1
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader; nproc; date -u
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site data/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
NG=$(nvidia-smi -L | wc -l)
JOBS=(final fold1 fold2 fold3 fold4)
W=$(( $(nproc) / ${#JOBS[@]} - 1 )); [ "$W" -gt 24 ] && W=24
t "train: ${#JOBS[@]} processes on $NG GPUs, $W loader workers each, guard $MIN min, $CONFIG"
i=0
for job in "${JOBS[@]}"; do
  args=(--config "$CONFIG" --device cuda --out "$R" --step-schedule --max-minutes "$MIN" --workers "$W")
  [ "$job" = final ] || args+=(--fold "models/splits/cv4-$job.txt" --folds-only)
  CUDA_VISIBLE_DEVICES=$(( i % NG )) python3 -m models.train_deeppcb "${args[@]}" > "$R/$job.log" 2>&1 &
  i=$(( i + 1 ))
done
# Progress every 30 s; a loader that gives no step-250 line within 240 s stops the call.
started=$(date +%s)
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
  sleep 30
  for job in "${JOBS[@]}"; do echo "  $job: $(grep -E '^step|STOPPED|Error|error' "$R/$job.log" | tail -1)"; done
  if [ $(( $(date +%s) - started )) -gt 240 ] && ! grep -qs '^step' "$R"/*.log; then
    t "no step-250 line after 240 s: stopping"; kill $(jobs -rp); sleep 2
    for job in "${JOBS[@]}"; do tail -5 "$R/$job.log"; done
  fi
done
wait
for job in "${JOBS[@]}"; do echo "== $job"; grep -v '^\s*$' "$R/$job.log" | tail -6; done
ls -la "$R"/*/model.onnx
tar -C "$R" -cf "$OUT/r16.tar" --exclude=last.pt . && tar -tvf "$OUT/r16.tar"
t done; date -u
