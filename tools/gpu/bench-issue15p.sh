#!/usr/bin/env bash
# Issue 15, tenth round, last call: deeppcb-640 as shipped, after the merged-defect split skips
# components whose opposite corners cannot hold two boxes (boxsplit.could_split), four runs,
# board-a-640 and the pipelined cycle, beside our model alone; set-up as bench-issue15n.sh.
set -u
. tools/gpu/ort-gpu-env.sh
t "model alone"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 2>&1 | grep '^{' | tee $R/alone.txt
for k in a b c d; do bench "pre-deeppcb-640-$k" graph deeppcb-640 --cycles 1000 --prerender 64; done
bench "pre-board-a-640" graph board-a-640 --cycles 1000 --prerender 64
bench "pipe-deeppcb-640" graph deeppcb-640 --cycles 1000 --prerender 64 --pipelined
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
