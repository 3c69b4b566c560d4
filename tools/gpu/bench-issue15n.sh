#!/usr/bin/env bash
# Issue 15, tenth round: the panel's whole-frame cycle six times after postprocessing by blocks
# got cheaper (18eaef4), beside the round's other figures: our model alone and YOLO11n alone at
# 640 (tools/gpu/peer_alone.py), the 640 recipes, board-b-1024, and deeppcb-640 on 2 CPU cores
# (taskset -c 0,1; the cores' SMT siblings are listed first). Set-up as bench-issue15m.sh.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
for c in 0 1; do echo "cpu$c siblings $(cat /sys/devices/system/cpu/cpu$c/topology/thread_siblings_list)"; done | tee $R/cpus.txt
t "yolo11n build + export"
timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx 2>&1 | grep -v Warning | tail -2 | tee $R/yolo.txt
t "model alone: ours vs yolo11n"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 \
  2>&1 | grep '^{' | tee $R/peer-alone.txt
for k in a b c d e f; do bench panel-fp16-$k graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16; done
for k in a b; do bench "pre-deeppcb-640-$k" graph deeppcb-640 --cycles 1000 --prerender 64; done
bench "pre-board-a-640" graph board-a-640 --cycles 1000 --prerender 64
bench "pipe-deeppcb-640" graph deeppcb-640 --cycles 1000 --prerender 64 --pipelined
bench b1024 graph board-b-1024 --cycles 300 --prerender 16
t "cpu 2 cores"
taskset -c 0,1 timeout 120 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime --threads 2 \
  --cycles 300 --json > $R/cpu2-deeppcb.txt 2>&1; summ $R/cpu2-deeppcb.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
