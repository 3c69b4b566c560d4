#!/usr/bin/env bash
# Issue 15, thirteenth round: registration as the station's CUDA kernels (aoi/inference/kernreg.py)
# against devreg's ONNX graphs (AOI_ORT_CUDA=...,nokernels), alternated in one call on the H200:
# deeppcb-640 three times each, board-a-640, board-b-1024 and the panel's whole frame, the
# pipelined loop, and ours and YOLO11n alone at 640. Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15w.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
kernels_vs_graphs
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
