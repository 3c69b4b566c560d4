#!/usr/bin/env bash
# Issue 15, twelfth round, third call (session 15): every issue-15 figure at the round's last
# commit, with frames in page-locked memory (cuda-python's wheels staged in $H/whl): deeppcb-640 on
# 2 CPU cores (taskset -c 0,1) three times with the network alone; our model and YOLO11n alone at
# 640; the GPU cycle of the 640 recipes (deeppcb-640 three times), board-b-1024 and the panel's
# whole frame (three times); the pipelined throughput at 640. Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15u.sh
set -u
. tools/gpu/ort-gpu-env.sh
cat STAGED_FROM 2>/dev/null; git log --oneline -1 2>/dev/null
cpu() {  # name
  t "$1: cpu deeppcb-640"
  taskset -c 0,1 timeout 150 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime \
    --threads 2 --cycles 300 --prerender 32 --json > $R/$1.txt 2>&1; summ $R/$1.txt
}
cpu cpu2-deeppcb-a
t "cpu network alone"
taskset -c 0,1 timeout 120 python3 tools/gpu/ort_cpu_alone.py models/aoi-defect-v3.onnx 300 2>&1 | tail -3 | tee $R/cpu-alone.txt
cpu cpu2-deeppcb-b
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "yolo11n build + export"
timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx 2>&1 | grep -v Warning | tail -2 | tee $R/yolo.txt
t "model alone: ours vs yolo11n"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 \
  2>&1 | grep '^{' | tee $R/peer-alone.txt
for k in a b c; do bench "deeppcb-640-$k" graph deeppcb-640 --cycles 1000 --prerender 64; done
bench board-a-640 graph board-a-640 --cycles 1000 --prerender 64
bench pipe-deeppcb-640 graph deeppcb-640 --cycles 1000 --prerender 64 --pipelined
bench b1024 graph board-b-1024 --cycles 300 --prerender 16
for k in a b c; do bench panel-fp16-$k graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16; done
grep -h '"frames"' $R/*.txt | python3 -c "import json,sys; print('frames', sorted({json.loads(l)['frames'] for l in sys.stdin}))"
cpu cpu2-deeppcb-c
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
