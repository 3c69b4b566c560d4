#!/usr/bin/env bash
# Issue 15, third round, one device call: the device warp (GridSample in the graph,
# aoi/inference/warp.py) on ORT CUDA. The cycle of board-a-640, deeppcb-640 and board-b-1024 with
# AOI_ORT_CUDA=graph (device warp, the default) and graph,nowarp (CPU warp) side by side, 300
# boards each; the defects with and without the device warp on CUDA (tools/figures/devwarp.py);
# the pipelined loop (2 registration workers) against the sequential one on pre-rendered boards
# (--prerender 64, 1000 boards) at 640.
#
# Runs from the device tool's checkout with this branch's aoi/ and tools/ in $H (default
# data/h-g15c), the station's wheels in $H/whl, onnxruntime-gpu's first parts in /tmp/stage
# (staged one call after another) and its last part in $H/p05. Results: $OUT/log, $OUT/r.tgz.
set -u
export PYTHONUNBUFFERED=1
H=$(realpath "${H:-data/h-g15c}")
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
ORTW=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
if [ ! -d /tmp/site/onnxruntime ]; then
  cat /tmp/stage/* "$H/p05" > $ORTW && md5sum $ORTW || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $ORTW "$H"/whl/*.whl || exit 3
fi
W=/tmp/tree; rm -rf $W; mkdir -p $W
cp -a aoi plc recipes models tools pyproject.toml $W/ 2>/dev/null
rm -rf $W/aoi $W/tools; cp -a "$H/aoi" "$H/tools" $W/
cd $W || exit 2
export PYTHONPATH=$PWD:/tmp/site
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
R=$OUT/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
python3 -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())"
summ() { tail -1 "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print('cycle', d['cycle_ms'], 'boards/s', d.get('boards_per_s'), 'verdicts', d.get('verdicts'), 'over', d['over_budget'], {k: (v['p50'], v['p99']) for k, v in d['stages_ms'].items()})" 2>&1 | head -c 900; echo; }
for mode in graph graph,nowarp; do
  for r in board-a-640 deeppcb-640 board-b-1024; do
    t "$r $mode"
    AOI_ORT_CUDA=$mode timeout 90 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
      --cycles 300 --json > $R/bench-$r-${mode/,/-}.txt 2>&1; echo "rc $?"; summ $R/bench-$r-${mode/,/-}.txt
  done
done
for r in board-a-640 deeppcb-640; do
  for loop in pipelined sequential; do
    t "$r prerender 64 $loop 1000"
    extra=""; [ $loop = pipelined ] && extra=--pipelined
    AOI_ORT_CUDA=graph timeout 90 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
      --cycles 1000 --prerender 64 $extra --json > $R/$loop-$r.txt 2>&1; echo "rc $?"; summ $R/$loop-$r.txt
  done
done
t "device warp vs CPU warp on CUDA, 30 boards"
timeout 120 python3 tools/figures/devwarp.py --device cuda --recipe board-a-640 --recipe deeppcb-640 \
  --recipe board-b-1024 2>&1 | grep -v Warning | tail -4 | tee $R/devwarp.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
