#!/usr/bin/env bash
# Issue 15, eleventh round, second call: the malloc tuning as shipped (aoi/heap.py: one arena in
# aoi's main for every process, the raised thresholds only where the rig's network runs on the
# CPU) against AOI_RETAIN_HEAP=0, alternated: deeppcb-640 and board-b-1024 on 2 CPU cores
# (taskset -c 0,1), then the GPU cycle (deeppcb-640, the panel's whole frame, board-b-1024) and
# our model alone. Set-up as bench-issue15n.sh.
set -u
. tools/gpu/ort-gpu-env.sh
cpu() {  # name heap recipe cycles prerender
  t "$1: cpu $3 heap=$2"
  AOI_RETAIN_HEAP=$2 taskset -c 0,1 timeout 150 /usr/bin/time -f "maxrss_kb %M" python3 -m aoi.cli bench \
    --recipe $3 --backend onnxruntime --threads 2 --cycles $4 --prerender $5 --json > $R/$1.txt 2>&1
  summ $R/$1.txt; grep maxrss $R/$1.txt
}
for c in 0 1; do echo "cpu$c siblings $(cat /sys/devices/system/cpu/cpu$c/topology/thread_siblings_list)"; done | tee $R/cpus.txt
for k in a b; do cpu cpu2-deeppcb-heap0-$k 0 deeppcb-640 300 32; cpu cpu2-deeppcb-heap1-$k 1 deeppcb-640 300 32; done
cpu cpu2-b1024-heap0 0 board-b-1024 150 16; cpu cpu2-b1024-heap1 1 board-b-1024 150 16
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "model alone"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 2>&1 | grep '^{' | tee $R/alone.txt
for k in a b; do
  for h in 0 1; do
    AOI_RETAIN_HEAP=$h bench "deeppcb-640-heap$h-$k" graph deeppcb-640 --cycles 1000 --prerender 64
    AOI_RETAIN_HEAP=$h bench "panel-fp16-heap$h-$k" graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
  done
done
for h in 0 1; do AOI_RETAIN_HEAP=$h bench "b1024-heap$h" graph board-b-1024 --cycles 300 --prerender 16; done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
