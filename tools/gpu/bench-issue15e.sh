#!/usr/bin/env bash
# Issue 15, fifth round, one device call (after bench-issue15d.sh): the panel tiled (shipped)
# against the panel as one padded whole frame (tools/gpu/panel_full.py: registration and warp on
# the device), the model alone at both shapes, the 640/1024 cycle with the collector frozen after
# warm-up (aoi/app/rig.py), FP16 with the FP32 tail, and the pipelined loop with one registration
# worker when registration runs on the device.
# Same set-up as bench-issue15d.sh (wheels in $H/whl, onnxruntime-gpu staged). Results: $OUT.
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
summ() { tail -1 "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print('cycle', d['cycle_ms'], 'reg', d.get('registration'), 'boards/s', d.get('boards_per_s'), 'verdicts', d.get('verdicts'), 'acc', d.get('board_accuracy'), 'over', d['over_budget'], {k: (v['p50'], v['p99']) for k, v in d['stages_ms'].items()})" 2>&1 | head -c 900; echo; }
bench() {  # name mode recipe extra...
  local name=$1 mode=$2 r=$3; shift 3
  t "$name: $r $mode $*"
  AOI_ORT_CUDA=$mode timeout 120 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
    --json "$@" > $R/$name.txt 2>&1; echo "rc $?"; summ $R/$name.txt
}
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
bench panel-tiles graph panel-c-4096x3000 --cycles 100
bench panel-full graph /tmp/panel-full.toml --cycles 100
bench panel-full-fp16 graph,fp16,fp32tail /tmp/panel-full.toml --cycles 100
t "model alone: v2 as the panel runs it"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v2.onnx:8,2,1024,1024 models/aoi-defect-v2.onnx:1,2,3008,4096 2>&1 | tail -2 | tee $R/alone-panel.txt
for r in board-a-640 deeppcb-640 board-b-1024; do bench "seq-$r" graph $r --cycles 300; done
bench fp16-deeppcb-640 graph,fp16,fp32tail deeppcb-640 --cycles 300
for r in board-a-640 deeppcb-640; do
  bench "pipe1-$r" graph $r --cycles 1000 --prerender 64 --pipelined
  bench "seqpre-$r" graph $r --cycles 1000 --prerender 64
done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
