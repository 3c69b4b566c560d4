#!/usr/bin/env bash
# Issue 15, fourteenth round: the network's run queued behind registration's kernels on one
# stream (aoi/inference/chain.py). First the CUDA tests, then issue15-figures.sh's
# chained_vs_not. Set-up as bench-issue15r.sh (onnxruntime-gpu staged in /tmp/stage).
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15z.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
t "the CUDA tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs tests/inference/test_chain.py \
  tests/inference/test_kernreg.py tests/inference/test_devreg.py tests/inference/test_ort_cuda.py \
  tests/inference/test_frame_input.py tests/inference/test_pinned_frames.py tests/test_framemem.py \
  2>&1 | tail -12 | tee $R/pytest.txt
chained_vs_not
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
