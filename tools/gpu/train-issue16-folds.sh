#!/usr/bin/env bash
# Issue 16, second device call: cross-validation folds 2, 3 and 4 of deeppcb-v4 (fold 1 and the
# final model came from train-issue16.sh's run), side by side, --folds-only, at fold 1's length:
# 3,164 steps of the same config and seed, so each step's batch is fold 1's (items depend only on
# (seed, index)). Fold 1 ran 12,000 planned steps on a time-based schedule cut at 6.5 minutes;
# here the plan is 3,164 steps and the time-based schedule fits into this call's guard, so the
# cosine decay ends at step 3,164 or at the guard, whichever is first (near-equivalent, not
# identical). Everything comes back as one tar, $OUT/r16f.tar (the device tool returns few files).
#   run: carry ["data/h-train16"], command: bash data/h-train16/tools/gpu/train-issue16-folds.sh data/h-train16 [END_S]
# END_S (default 330): the whole script ends within END_S seconds of its start.
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
END_S=${2:-330}
cd "${1:-.}" || exit 2
R=/tmp/r16f; rm -rf "$R"; mkdir -p "$R"
exec > >(tee "$OUT/call.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site data/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
t test
# the --folds-only check only (the other fold tests passed in the first call); not a gate: the
# fold models' arithmetic does not depend on it
timeout 40 python3 -m pytest tests/models/test_train_folds.py -q -p no:cacheprovider --noconftest \
  -k folds_only 2>&1 | tail -2
t train
E=$(( $(date +%s) - T0 ))
# training guard: what is left of END_S less ~45 s (data and models set up, 3 exports, the tar)
MM=$(python3 -c "print(round(max($END_S - $E - 45, 60) / 60, 2))")
echo "training guard $MM min"
F=""; for k in 2 3 4; do F="$F --fold models/splits/cv4-fold$k.txt"; done
timeout $(( END_S - E - 6 )) python3 -m models.train_deeppcb --config models/configs/deeppcb-v4.toml \
  --device cuda --out "$R" $F --folds-only --steps 3164 --max-minutes "$MM" > "$R/train.log" 2>&1
echo "train rc $?"; grep -v "^\s*$" "$R/train.log" | tail -25 | cut -c1-260
ls -la "$R"/*/model.onnx
tar -C "$R" -cf "$OUT/r16f.tar" --exclude=last.pt . && tar -tvf "$OUT/r16f.tar"
t done; date -u
