#!/usr/bin/env bash
# Issue 15, twelfth round: the tests that need CUDA, on the H200 (pytest is on the GPU machine):
# page-locked frame memory (tests/inference/test_pinned_frames.py), registration's device steps
# against the CPU steps after the CPU change (tests/inference/test_devreg.py), the CUDA runner and
# the frame input. Set-up as bench-issue15r.sh, cuda-python's wheels staged in $H/whl.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/test-issue15v.sh
set -u
. tools/gpu/ort-gpu-env.sh
timeout 300 python3 -m pytest -q -p no:cacheprovider -rs tests/inference/test_pinned_frames.py \
  tests/inference/test_devreg.py tests/inference/test_ort_cuda.py tests/inference/test_frame_input.py \
  tests/test_framemem.py 2>&1 | tail -15 | tee $R/pytest.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
