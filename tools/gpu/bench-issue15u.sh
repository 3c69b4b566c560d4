#!/usr/bin/env bash
# Issue 15, twelfth round, third call (session 15): every issue-15 figure at the round's last
# commit, with frames in page-locked memory (cuda-python's wheels staged in $H/whl): deeppcb-640 on
# 2 CPU cores (taskset -c 0,1) three times with the network alone; our model and YOLO11n alone at
# 640; the GPU cycle of the 640 recipes (deeppcb-640 three times), board-b-1024 and the panel's
# whole frame (three times); the pipelined throughput at 640. Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15u.sh
set -u
. tools/gpu/ort-gpu-env.sh
cat STAGED_FROM 2>/dev/null; git log --oneline -1 2>/dev/null
. tools/gpu/issue15-figures.sh
figures 3
grep -h '"frames"' $R/*.txt | python3 -c "import json,sys; print('frames', sorted({json.loads(l)['frames'] for l in sys.stdin}))"
cpu cpu2-deeppcb-c
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
