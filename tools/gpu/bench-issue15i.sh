#!/usr/bin/env bash
# Issue 15, eighth round, second call: the same as bench-issue15h.sh after the CUDA path's score
# became float16 by default (3 bytes a cell copied back instead of 5), twice for the panel to show
# the run-to-run spread, and the CUDA tests of the frame input (pytest is on the GPU machine).
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "cuda tests"
timeout 150 python3 -m pytest tests/inference/test_ort_cuda.py tests/inference/test_frame_input.py -q -p no:cacheprovider --noconftest -rs 2>&1 | tail -6
t parity
for r in /tmp/panel-full.toml recipes/deeppcb-640.toml; do
  AOI_ORT_CUDA=graph,fp16,fp32tail timeout 100 python3 tools/gpu/frame_parity.py $r 30 2>&1 | tail -1 | tee -a $R/parity.txt
done
bench panel-fp16-a graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-fp16-b graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-fp16-noframe graph,fp16,fp32tail,noframe /tmp/panel-full.toml --cycles 300 --prerender 16
bench panel-fp16-render graph,fp16,fp32tail /tmp/panel-full.toml --cycles 200
bench b1024 graph board-b-1024 --cycles 300 --prerender 16
for r in board-a-640 deeppcb-640; do bench "pre-$r" graph $r --cycles 1000 --prerender 64; done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
