#!/usr/bin/env bash
# Issue 15, seventh round, one device call: the whole-frame panel again after the postprocessing
# found contested cells in 16x16 blocks (a map with defects spread over it no longer makes one
# frame-sized window). Same set-up as bench-issue15d.sh. Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
bench panel-full-fp16-pre graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-full-pre graph /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-full-fp16 graph,fp16,fp32tail /tmp/panel-full.toml --cycles 200
bench panel-tiles-pre graph panel-c-4096x3000 --cycles 200 --prerender 16
for r in board-a-640 deeppcb-640; do bench "seqpre-$r" graph $r --cycles 1000 --prerender 64; done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
