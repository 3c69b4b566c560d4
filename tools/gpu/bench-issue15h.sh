#!/usr/bin/env bash
# Issue 15, eighth round, one device call: a whole frame uploaded once (aoi/inference/frame_input.py)
# against the padded [1, 2, H, W] batch uploaded every board (AOI_ORT_CUDA=...,noframe), in the
# same call: parity of verdicts and defects on CUDA (tools/gpu/frame_parity.py), then the cycle of
# the whole-frame panel (tools/gpu/panel_full.py), board-b-1024 and the 640 recipes, and
# deeppcb-640 on 2 CPU cores. Same set-up as bench-issue15d.sh (wheels in $H/whl,
# onnxruntime-gpu staged in /tmp/stage). Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t parity
for r in /tmp/panel-full.toml recipes/board-b-1024.toml recipes/deeppcb-640.toml; do
  AOI_ORT_CUDA=graph,fp16,fp32tail timeout 100 python3 tools/gpu/frame_parity.py $r 30 2>&1 | tail -1 | tee -a $R/parity.txt
done
bench panel-fp16-frame graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-fp16-noframe graph,fp16,fp32tail,noframe /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-fp32-frame graph /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-fp16-frame-render graph,fp16,fp32tail /tmp/panel-full.toml --cycles 200
bench b1024-frame graph board-b-1024 --cycles 300 --prerender 16
bench b1024-noframe graph,noframe board-b-1024 --cycles 300 --prerender 16
for r in board-a-640 deeppcb-640; do
  bench "pre-$r-frame" graph $r --cycles 1000 --prerender 64
  bench "pre-$r-noframe" graph,noframe $r --cycles 1000 --prerender 64
done
t "cpu 2 cores"
taskset -c 0,1 timeout 120 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime --threads 2 --cycles 300 --json > $R/cpu2-deeppcb.txt 2>&1; summ $R/cpu2-deeppcb.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
