#!/usr/bin/env bash
# Issue 15, ninth round, second call: after the coarse run took over the first patch
# measurement (one run fewer) and the host's fit went to Python floats (aoi/vision/rigidfit.py):
# where registration's time goes (tools/gpu/devreg_prof.py), the CUDA tests, the model alone,
# the 640 recipes sequential and pipelined, board-b-1024 and the whole-frame panel three times.
# Same set-up as bench-issue15h.sh. Results: $OUT.
set -u
. tools/gpu/ort-gpu-env.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "cuda tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -k "cuda" tests/inference/test_devreg.py \
  tests/inference/test_ort_cuda.py 2>&1 | tail -4 | tee $R/pytest.txt
t "registration profile"
timeout 120 python3 tools/gpu/devreg_prof.py --runs 300 2>&1 | grep '^{' | tee $R/devreg-prof.txt
t "model alone"
timeout 90 python3 -m models.bench_gpu --model models/aoi-defect-v3.onnx --shape 1,640,640 \
  --runs 300 2>&1 | tee $R/model-alone.txt | tail -1
for r in deeppcb-640 board-a-640; do
  for k in a b; do bench "pre-$r-$k" graph $r --cycles 1000 --prerender 64; done
  bench "pipe-$r" graph $r --cycles 1000 --prerender 64 --pipelined
done
bench b1024 graph board-b-1024 --cycles 300 --prerender 16
for k in a b c; do bench panel-fp16-$k graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16; done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
