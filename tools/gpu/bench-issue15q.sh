#!/usr/bin/env bash
# Issue 15, eleventh round: malloc keeps freed blocks (aoi/heap.py, d2f9a67) against glibc's
# defaults (AOI_RETAIN_HEAP=0), alternated in one call: deeppcb-640 and the network alone on 2 CPU
# cores (taskset -c 0,1), then the GPU cycle (640 recipes, board-b-1024, the panel's whole frame)
# and our model and YOLO11n alone. Set-up as bench-issue15n.sh.
set -u
. tools/gpu/ort-gpu-env.sh
cpu() {  # name heap
  t "$1: cpu deeppcb-640 heap=$2"
  AOI_RETAIN_HEAP=$2 taskset -c 0,1 timeout 120 python3 -m aoi.cli bench --recipe deeppcb-640 \
    --backend onnxruntime --threads 2 --cycles 300 --prerender 32 --json > $R/$1.txt 2>&1; summ $R/$1.txt
}
for c in 0 1; do echo "cpu$c siblings $(cat /sys/devices/system/cpu/cpu$c/topology/thread_siblings_list)"; done | tee $R/cpus.txt
for k in a b; do
  for h in 0 1; do
    AOI_RETAIN_HEAP=$h taskset -c 0,1 timeout 60 python3 tools/gpu/ort_cpu_alone.py models/aoi-defect-v3.onnx 300 | tee -a $R/cpu-alone.txt
  done
  cpu cpu2-heap0-$k 0; cpu cpu2-heap1-$k 1
done
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "yolo11n build + export"
timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx 2>&1 | grep -v Warning | tail -2 | tee $R/yolo.txt
t "model alone: ours vs yolo11n"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 \
  2>&1 | grep '^{' | tee $R/peer-alone.txt
for k in a b; do
  for h in 0 1; do
    AOI_RETAIN_HEAP=$h bench "deeppcb-640-heap$h-$k" graph deeppcb-640 --cycles 1000 --prerender 64
    AOI_RETAIN_HEAP=$h bench "panel-fp16-heap$h-$k" graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
  done
done
for h in 0 1; do
  AOI_RETAIN_HEAP=$h bench "board-a-640-heap$h" graph board-a-640 --cycles 1000 --prerender 64
  AOI_RETAIN_HEAP=$h bench "b1024-heap$h" graph board-b-1024 --cycles 300 --prerender 16
done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
