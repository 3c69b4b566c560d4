#!/usr/bin/env bash
# Issue 15, twelfth round (session 15): the figures of every issue-15 target in one call after the
# CPU registration change (557b6a3: packed cross-power spectra, the correlation from the gradient
# step's sums, gradient steps stop under 0.05 px, which the device steps share). deeppcb-640 on 2
# CPU cores (taskset -c 0,1) with the network alone beside it; our model and YOLO11n alone at 640;
# the GPU cycle of the 640 recipes, board-b-1024 and the panel's whole frame; the pipelined
# throughput at 640. Set-up as bench-issue15r.sh (ort-gpu-env.sh: the wheel's parts staged in
# /tmp/stage).   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15s.sh
set -u
. tools/gpu/ort-gpu-env.sh
for c in 0 1; do echo "cpu$c siblings $(cat /sys/devices/system/cpu/cpu$c/topology/thread_siblings_list)"; done | tee $R/cpus.txt
lscpu | grep -E "Model name|MHz" | tee -a $R/cpus.txt
. tools/gpu/issue15-figures.sh
figures 4
cpu cpu2-deeppcb-c
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
