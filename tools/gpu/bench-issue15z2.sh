#!/usr/bin/env bash
# Issue 15, fourteenth round, second call (session 17): every issue-15 figure at the round's last
# commit (the network queued behind registration, the host's postprocessing of reduced maps
# cheaper): the CUDA tests, then issue15-figures.sh's `figures 3` (deeppcb-640 on 2 CPU cores
# twice with the network alone between; ours and YOLO11n alone at 640; the GPU cycle of the 640
# recipes, pipelined once; board-b-1024; the panel's whole frame three times) and a third CPU
# run, then deeppcb-640 not chained once more for the same call. Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15z2.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
cuda_tests 240 12
figures 3
cpu cpu2-deeppcb-c
bench deeppcb-640-nochain graph,nochain deeppcb-640 --cycles 1000 --prerender 64
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
