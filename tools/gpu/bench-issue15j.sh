#!/usr/bin/env bash
# Issue 15, eighth round, third call: after postprocessing stopped reading block groups too small
# to hold any kept defect (aoi/vision/postprocess.py), with the frame input and float16 scores:
# the whole-frame panel three times (run-to-run spread), once with the padded batch (noframe),
# once with the rendering source, and board-b-1024 and the 640 recipes. Set-up as
# bench-issue15h.sh. Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
for k in a b c; do bench panel-fp16-$k graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16; done
bench panel-fp16-noframe graph,fp16,fp32tail,noframe /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-fp16-render graph,fp16,fp32tail /tmp/panel-full.toml --cycles 200
bench b1024 graph board-b-1024 --cycles 300 --prerender 16
for r in board-a-640 deeppcb-640; do bench "pre-$r" graph $r --cycles 1000 --prerender 64; done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
