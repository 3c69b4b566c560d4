#!/usr/bin/env bash
# Issue 15, ninth round, third call: the round's whole table in one run. Where registration's
# time goes (tools/gpu/devreg_prof.py); our model alone and YOLO11n alone at 640 (random weights,
# tools/gpu/yolo11n.py; tools/gpu/peer_alone.py, IO binding and CUDA graph for both); the 640
# recipes sequential (twice) and pipelined, board-b-1024, the whole-frame panel three times; and
# deeppcb-640 on 2 CPU cores (taskset -c 0,1). Same set-up as bench-issue15h.sh. Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "registration profile"
timeout 120 python3 tools/gpu/devreg_prof.py --runs 300 2>&1 | tee $R/devreg-prof.txt | grep '^{'
t "yolo11n build + export"
timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx 2>&1 | grep -v Warning | tail -2 | tee $R/yolo.txt
t "model alone: ours vs yolo11n"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 \
  2>&1 | grep '^{' | tee $R/peer-alone.txt
for r in deeppcb-640 board-a-640; do
  for k in a b; do bench "pre-$r-$k" graph $r --cycles 1000 --prerender 64; done
  bench "pipe-$r" graph $r --cycles 1000 --prerender 64 --pipelined
done
bench b1024 graph board-b-1024 --cycles 300 --prerender 16
for k in a b c; do bench panel-fp16-$k graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16; done
t "cpu 2 cores"
taskset -c 0,1 timeout 120 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime --threads 2 \
  --cycles 300 --json > $R/cpu2-deeppcb.txt 2>&1; summ $R/cpu2-deeppcb.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
