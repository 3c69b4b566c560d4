#!/usr/bin/env bash
# Session 2, device call B (right after train-v3.sh, onnxruntime-gpu staged in /tmp/stage):
# model alone on ORT CUDA (shipped v2, new v3), the 8/7 batch alternation test, and the station
# cycle on ORT CUDA: board-a-640 and panel-c with short batches padded (auto) and not (A/B).
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
W=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
cat /tmp/stage/* > $W && md5sum $W && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $W || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 3
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import onnxruntime as o; o.preload_dlls(); print('ort', o.__version__, o.get_available_providers())"
R=$OUT/b3; mkdir -p $R; V3=/tmp/r3/deeppcb-v3/model.onnx; ls -la $V3
t model-alone
for m in models/aoi-defect-v2.onnx $V3; do timeout 60 python3 -m models.bench_gpu --model $m --shape 1,640,640 --shape 8,1024,1024 --shape 7,1024,1024 --runs 200 | tee -a $R/gpu.jsonl; done
t alternate
for s in "" HEURISTIC; do timeout 60 python3 -m models.bench_gpu --model models/aoi-defect-v2.onnx --shape 8,1024,1024 --shape 7,1024,1024 --runs 20 --alternate "$s" | tee -a $R/gpu.jsonl; done
for r in board-a-640 panel-c-4096x3000; do
  sed "s#^path = \"../models/aoi-defect-v2.onnx\"#path = \"$V3\"#" recipes/$r.toml > recipes/v3-$r.toml
  grep -q "$V3" recipes/v3-$r.toml || echo "model path not replaced in $r"
done
t board-a
for r in board-a-640 v3-board-a-640; do
  [ -f recipes/$r.toml ] && r=recipes/$r.toml
  timeout 60 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda --cycles 200 --json > $R/bench-$(basename $r .toml).txt 2>&1; tail -1 $R/bench-$(basename $r .toml).txt | head -c 1500; echo
done
t panel-pad
timeout 170 python3 -m aoi.cli bench --recipe recipes/v3-panel-c-4096x3000.toml --backend onnxruntime-cuda --cycles 200 --json > $R/bench-panel-pad.txt 2>&1; tail -1 $R/bench-panel-pad.txt | head -c 1500; echo
t panel-nopad
timeout 100 python3 -m aoi.cli bench --recipe recipes/v3-panel-c-4096x3000.toml --backend onnxruntime-cuda --station tools/gpu/nopad.toml --cycles 50 --json > $R/bench-panel-nopad.txt 2>&1; tail -1 $R/bench-panel-nopad.txt | head -c 1500; echo
t panel-pad-v2
timeout 120 python3 -m aoi.cli bench --recipe panel-c-4096x3000 --backend onnxruntime-cuda --cycles 100 --json > $R/bench-panel-v2.txt 2>&1; tail -1 $R/bench-panel-v2.txt | head -c 600; echo
t done; date -u
