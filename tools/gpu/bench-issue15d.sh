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
. tools/gpu/ort-gpu-env.sh
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
