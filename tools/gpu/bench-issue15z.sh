#!/usr/bin/env bash
# Issue 15, fourteenth round: the network's run queued behind registration's kernels on one
# stream (aoi/inference/chain.py). First the CUDA tests, then issue15-figures.sh's
# chained_vs_not. Set-up as bench-issue15r.sh (onnxruntime-gpu staged in /tmp/stage).
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15z.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
cuda_tests 240 12
chained_vs_not
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
