#!/usr/bin/env bash
# Session 2, device call C (onnxruntime-gpu staged in /tmp/stage): the station cycle on ORT CUDA
# with this session's code (padding, postprocess fast path, sleeping CPU threads), shipped recipes.
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
W=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
cat /tmp/stage/* > $W && md5sum $W && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $W || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 3
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; git log --oneline -1
R=$OUT/c3; mkdir -p $R
for r in board-a-640 deeppcb-640 panel-c-4096x3000; do
  t $r
  timeout 150 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda --cycles 200 --json > $R/bench-$r.txt 2>&1; tail -1 $R/bench-$r.txt | head -c 1600; echo
done
t doctor; timeout 60 python3 -m aoi.cli doctor --json > $R/doctor.json 2>&1; head -c 1500 $R/doctor.json; echo
t done; date -u
