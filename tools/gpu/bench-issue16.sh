#!/usr/bin/env bash
# Issue 16, session 14: deeppcb-640-ms (aoi-defect-v6 and -v6b at scales 1, 1.25 and 1.5, six
# readings a board) on the H200 with ONNX Runtime's CUDA provider, beside deeppcb-640 in the same
# call. Set-up as bench-issue15r.sh (ort-gpu-env.sh: the wheel's parts staged in /tmp/stage).
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue16.sh
set -u
. tools/gpu/ort-gpu-env.sh
bench deeppcb-640 graph deeppcb-640 --cycles 300 --prerender 32
bench deeppcb-640-ms graph deeppcb-640-ms --cycles 300 --prerender 32
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
