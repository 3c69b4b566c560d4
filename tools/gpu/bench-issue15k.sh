#!/usr/bin/env bash
# Issue 15, ninth round, one device call: registration in one device graph (measurements and fit,
# aoi/inference/regfit.py) against the step graphs fitted on the host (AOI_ORT_CUDA=...,stepreg),
# in the same call: the CUDA tests of both, then the cycle of the 640 recipes (sequential and
# pipelined), board-b-1024 and the whole-frame panel, and the model alone at 640 for the ratio.
# Same set-up as bench-issue15h.sh (wheels in $H/whl, onnxruntime-gpu staged in /tmp/stage).
# Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "cuda tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -k "cuda" tests/inference/test_devreg.py \
  tests/inference/test_ort_cuda.py 2>&1 | tail -4 | tee $R/pytest.txt
t "model alone"
timeout 90 python3 -m models.bench_gpu --model models/aoi-defect-v3.onnx --shape 1,640,640 \
  --runs 300 2>&1 | tee $R/model-alone.txt | tail -2
for r in deeppcb-640 board-a-640; do
  bench "pre-$r-one" graph $r --cycles 1000 --prerender 64
  bench "pre-$r-step" graph,stepreg $r --cycles 1000 --prerender 64
  bench "pipe-$r-one" graph $r --cycles 1000 --prerender 64 --pipelined
done
bench pre-deeppcb-640-one2 graph deeppcb-640 --cycles 1000 --prerender 64
bench b1024-one graph board-b-1024 --cycles 300 --prerender 16
for k in a b c; do bench panel-fp16-one-$k graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16; done
bench panel-fp16-step graph,fp16,fp32tail,stepreg /tmp/panel-full.toml --cycles 300 --prerender 16
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
