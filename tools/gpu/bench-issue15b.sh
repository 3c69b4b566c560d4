#!/usr/bin/env bash
# Issue 15, second round, one device call: the cycle of the four shipped recipes with
# AOI_ORT_CUDA=graph (cheaper registration), the pipelined bench at 640 (throughput and latency),
# YOLO11n (tools/gpu/yolo11n.py, random weights) against our model alone on ORT CUDA with IO
# binding, and a 2-core CPU bench of deeppcb-640 with 2 and 1 intra-op threads.
#
# Runs from a copy of this tree at $1, with onnxruntime-gpu's parts in /tmp/stage
# (../shared/tools/device-stage, parts copied one call after another) and the station's wheels
# in $WHL_DIR (default .whl of the checkout the device tool sent). Results: $OUT/log, $OUT/r.tgz.
set -u
export PYTHONUNBUFFERED=1
WHL_DIR=$(realpath "${WHL_DIR:-.whl}")
cd "${1:-.}" || exit 2
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
ORTW=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
if [ ! -d /tmp/site/onnxruntime ]; then
  cat /tmp/stage/* > $ORTW && md5sum $ORTW || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $ORTW $WHL_DIR/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/site
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
R=$OUT/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
python3 -c "import onnxruntime as o, torch; print(o.__version__, o.get_available_providers(), torch.__version__)"
summ() { tail -1 "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print('cycle', d['cycle_ms'], 'boards/s', d.get('boards_per_s'), 'over', d['over_budget'], {k: (v['p50'], v['p99']) for k, v in d['stages_ms'].items()})" 2>&1 | head -c 700; echo; }
t "yolo11n build + export"
timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx 2>&1 | grep -v Warning | tail -3 | tee $R/yolo.txt
t "model alone: ours vs yolo11n"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 \
  2>&1 | grep -v Warning | tee $R/alone.txt
for r in board-a-640 deeppcb-640 board-b-1024 panel-c-4096x3000; do
  t "$r graph"
  AOI_ORT_CUDA=graph timeout 120 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
    --cycles 300 --json > $R/bench-$r.txt 2>&1; echo "rc $?"; summ $R/bench-$r.txt
done
for r in deeppcb-640 board-a-640; do
  t "$r graph pipelined"
  AOI_ORT_CUDA=graph timeout 120 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
    --cycles 1000 --pipelined --json > $R/pipe-$r.txt 2>&1; echo "rc $?"; summ $R/pipe-$r.txt
  t "$r graph sequential 1000"
  AOI_ORT_CUDA=graph timeout 120 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
    --cycles 1000 --json > $R/seq-$r.txt 2>&1; echo "rc $?"; summ $R/seq-$r.txt
done
for th in 2 1; do
  t "cpu 2 cores threads $th"
  taskset -c 0,1 timeout 100 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime \
    --threads $th --cycles 300 --json > $R/cpu-t$th.txt 2>&1; echo "rc $?"; summ $R/cpu-t$th.txt
done
t "registration per step, one core"
taskset -c 2 timeout 60 python3 tools/gpu/regprof.py 2>&1 | tee $R/regprof.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
