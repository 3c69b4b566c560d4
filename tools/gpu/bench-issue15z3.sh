#!/usr/bin/env bash
# Issue 15, fourteenth round, third call (session 17): registration and the network captured as
# one CUDA graph (aoi/inference/chain.py). First the CUDA tests, then issue15-figures.sh's
# captured_vs_queued. Set-up as bench-issue15r.sh (onnxruntime-gpu staged in /tmp/stage).
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15z3.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
cuda_tests 300 25
captured_vs_queued
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
