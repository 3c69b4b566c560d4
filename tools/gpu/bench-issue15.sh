#!/usr/bin/env bash
# Issue 15, one device call: the CUDA path with device-resident buffers, CUDA graphs and FP16.
#
# Runs from a copy of this tree at $1 (default .), with onnxruntime-gpu's parts already in
# /tmp/stage (../shared/tools/device-stage), the station's wheels in $W/whl and DeepPCB's val
# pairs (trainval split only) in $W/deeppcb/PCBData. Per recipe, `aoi bench` on ORT CUDA with
# AOI_ORT_CUDA=plain (the reduced graph through session.run: the code before this change),
# graph (IO binding + a CUDA graph per shape) and graph,fp16; the backend alone per mode; the
# model alone (models/bench_gpu.py); FP32 vs FP16 mAP on the val split; a 2-core CPU bench.
# Everything lands in $OUT/issue15.tgz and $OUT/log.
set -u
export PYTHONUNBUFFERED=1
W=${W:-$PWD/data/h-gpu}
cd "${1:-.}" || exit 2
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
WHL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
if [ ! -d /tmp/site/onnxruntime ]; then
  cat /tmp/stage/* > $WHL && md5sum $WHL || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $WHL $W/whl/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/site
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
R=$OUT/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
python3 -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())"
mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > $R/mem-$1.txt & MP=$!; }
memend() { kill $MP 2>/dev/null; wait $MP 2>/dev/null; echo "gpu memory max MiB $1: $(sort -n $R/mem-$1.txt | tail -1)"; }
t "backend alone"
timeout 120 python3 tools/gpu/issue15_alone.py --model models/aoi-defect-v3.onnx --shape 1,640,640 \
  --shape 8,1024,1024 2>&1 | tee $R/alone.txt | grep -v Warning
t "model alone"
timeout 90 python3 -m models.bench_gpu --model models/aoi-defect-v3.onnx --shape 1,640,640 \
  --runs 300 2>&1 | tee $R/model-alone.txt | tail -2
for r in board-a-640 deeppcb-640 board-b-1024 panel-c-4096x3000; do
  for m in plain graph graph,fp16; do
    t "$r $m"; mem $r-$m
    AOI_ORT_CUDA=$m timeout 120 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
      --cycles 300 --json > $R/bench-$r-$m.txt 2>&1; echo "rc $?"; memend $r-$m
    tail -1 $R/bench-$r-$m.txt | head -c 900; echo
  done
done
for m in graph graph,fp16 plain; do
  t "eval $m"
  AOI_ORT_CUDA=$m timeout 150 python3 -m aoi.cli eval --recipe deeppcb-640 --backend onnxruntime-cuda \
    --data $W/deeppcb/PCBData --split models/splits/deeppcb-val.txt --out /tmp/eval-$m --json \
    > $R/eval-$m.txt 2>&1; echo "rc $?"; grep -E "^mAP|^at the" $R/eval-$m.txt
done
t "cpu 2 cores"
taskset -c 0,1 timeout 100 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime \
  --threads 2 --cycles 300 --json > $R/cpu-deeppcb-640.txt 2>&1; echo "rc $?"
tail -1 $R/cpu-deeppcb-640.txt | head -c 900; echo
t done; date -u
tar czf $OUT/issue15.tgz -C $OUT r && rm -rf $R
