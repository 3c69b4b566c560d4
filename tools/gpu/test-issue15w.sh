#!/usr/bin/env bash
# Issue 15, thirteenth round: the tests that need CUDA, on the H200, with registration's CUDA
# kernels (tests/inference/test_kernreg.py) beside the earlier ones. Set-up as bench-issue15r.sh
# (onnxruntime-gpu staged; cuda-python's wheels in $H/whl).
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/test-issue15w.sh
set -u
. tools/gpu/ort-gpu-env.sh
timeout 400 python3 -m pytest -q -p no:cacheprovider -rs tests/inference/test_kernreg.py \
  tests/inference/test_devreg.py tests/inference/test_ort_cuda.py tests/inference/test_frame_input.py \
  tests/inference/test_pinned_frames.py tests/test_framemem.py 2>&1 | tail -25 | tee $R/pytest.txt
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
