#!/usr/bin/env bash
# Issue 15, fourth round, one device call: registration's measuring steps on the device
# (aoi/inference/devreg.py). Registration accuracy and time, CPU steps against CUDA steps
# (tools/figures/devreg.py); the cycle of the shipped recipes with AOI_ORT_CUDA=graph (device
# registration and warp, the default) against graph,noreg (registration on the CPU, warp on the
# device) and graph,fp16,fp32tail; the pipelined loop on pre-rendered boards; ours and YOLO11n alone;
# deeppcb-640 on two CPU cores; the device warp's defects against the CPU warp's on CUDA.
#
# Runs from the device tool's checkout; the station's wheels in $H/whl (default data/h-g15d),
# onnxruntime-gpu's first parts in /tmp/stage (staged one call after another with
# ../shared/tools/device-stage) and its last part in $H/p05. Results: $OUT/log, $OUT/r.tgz.
set -u
export PYTHONUNBUFFERED=1
H=$(realpath "${H:-data/h-g15d}")
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
ORTW=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
if [ ! -d /tmp/site/onnxruntime ]; then
  cat /tmp/stage/* "$H/p05" > $ORTW && md5sum $ORTW || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $ORTW "$H"/whl/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/site
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
R=$OUT/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
python3 -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())"
summ() { tail -1 "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print('cycle', d['cycle_ms'], 'reg', d.get('registration'), 'boards/s', d.get('boards_per_s'), 'verdicts', d.get('verdicts'), 'over', d['over_budget'], {k: (v['p50'], v['p99']) for k, v in d['stages_ms'].items()})" 2>&1 | head -c 900; echo; }
bench() {  # name mode recipe extra...
  local name=$1 mode=$2 r=$3; shift 3
  t "$name: $r $mode $*"
  AOI_ORT_CUDA=$mode timeout 120 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
    --json "$@" > $R/$name.txt 2>&1; echo "rc $?"; summ $R/$name.txt
}
t "registration accuracy and time, CPU steps vs CUDA steps"
timeout 150 python3 tools/figures/devreg.py --device cuda --runs 300 2>&1 | grep -v Warning | tee $R/devreg.txt
for r in board-a-640 deeppcb-640 board-b-1024; do
  for mode in graph graph,noreg; do bench "seq-$r-${mode/,/-}" $mode $r --cycles 300; done
done
bench seq-panel graph panel-c-4096x3000 --cycles 200
bench fp16-board-a-640 graph,fp16,fp32tail board-a-640 --cycles 300
for r in board-a-640 deeppcb-640; do
  bench "pipe-$r" graph $r --cycles 1000 --prerender 64 --pipelined
  bench "pipe-$r-noreg" graph,noreg $r --cycles 1000 --prerender 64 --pipelined
  bench "seqpre-$r" graph $r --cycles 1000 --prerender 64
done
t "device warp vs CPU warp on CUDA, 30 boards"
timeout 150 python3 tools/figures/devwarp.py --device cuda --recipe board-a-640 --recipe deeppcb-640 \
  --recipe board-b-1024 2>&1 | grep -v Warning | tail -5 | tee $R/devwarp.txt
t "model alone: ours and YOLO11n"
timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx > $R/yolo.txt 2>&1; tail -3 $R/yolo.txt
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 2>&1 | tail -4 | tee $R/alone.txt
t "CPU: deeppcb-640 on cores 0,1"
taskset -c 0,1 timeout 100 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime --threads 2 \
  --cycles 300 --json > $R/cpu2.txt 2>&1; echo "rc $?"; summ $R/cpu2.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
