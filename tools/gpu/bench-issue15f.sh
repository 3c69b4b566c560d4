#!/usr/bin/env bash
# Issue 15, sixth round, one device call: the panel as one padded whole frame after the padding
# fix (edges repeated, not zeros) and the blob-first postprocessing, FP32 and FP16 with the FP32
# tail, rendering and pre-rendered source; the shipped tiled panel beside it.
# Same set-up as bench-issue15d.sh (wheels in $H/whl, onnxruntime-gpu staged). Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
bench panel-full graph /tmp/panel-full.toml --cycles 200
bench panel-full-fp16 graph,fp16,fp32tail /tmp/panel-full.toml --cycles 200
bench panel-full-fp16-pre graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-full-pre graph /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-tiles graph panel-c-4096x3000 --cycles 100
t "model alone: v2 whole frame"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v2.onnx:1,2,3008,4096 2>&1 | tail -2 | tee $R/alone-panel.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
