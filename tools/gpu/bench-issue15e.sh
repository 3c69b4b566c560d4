#!/usr/bin/env bash
# Issue 15, fifth round, one device call (after bench-issue15d.sh): the panel tiled (shipped)
# against the panel as one padded whole frame (tools/gpu/panel_full.py: registration and warp on
# the device), the model alone at both shapes, the 640/1024 cycle with the collector frozen after
# warm-up (aoi/app/rig.py), FP16 with the FP32 tail, and the pipelined loop with one registration
# worker when registration runs on the device.
# Same set-up as bench-issue15d.sh (wheels in $H/whl, onnxruntime-gpu staged). Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
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
