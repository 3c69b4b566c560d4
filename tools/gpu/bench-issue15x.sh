#!/usr/bin/env bash
# Issue 15, thirteenth round, second call: registration with its fit on the device too
# (aoi/inference/kernreg.py, one launch a frame). First the CUDA tests, then as bench-issue15w.sh
# (issue15-figures.sh's kernels_vs_graphs). Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15x.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
t "the CUDA tests"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/inference/test_kernreg.py \
  tests/inference/test_devreg.py tests/inference/test_ort_cuda.py tests/inference/test_frame_input.py \
  tests/inference/test_pinned_frames.py tests/test_framemem.py 2>&1 | tail -8 | tee $R/pytest.txt
kernels_vs_graphs
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
