#!/usr/bin/env bash
# Issue 15, fourteenth round, third call (session 17): registration and the network captured as
# one CUDA graph (aoi/inference/chain.py). First the CUDA tests, then issue15-figures.sh's
# captured_vs_queued. Set-up as bench-issue15r.sh (onnxruntime-gpu staged in /tmp/stage).
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15z3.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
t "the CUDA tests"
timeout 300 python3 -m pytest -q -p no:cacheprovider -rs tests/inference/test_chain.py \
  tests/inference/test_kernreg.py tests/inference/test_devreg.py tests/inference/test_ort_cuda.py \
  tests/inference/test_frame_input.py tests/inference/test_pinned_frames.py tests/test_framemem.py \
  2>&1 | tail -25 | tee $R/pytest.txt
captured_vs_queued
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
