#!/usr/bin/env bash
# Issue 15, fourteenth round, fourth call (session 17): the panel's whole frame three times and
# deeppcb-640 twice at the round's last code commit, with ours and YOLO11n alone, for a further
# sample of the host-bound p99 (calls z2 and z3 differed two-fold in the panel's postprocessing).
# Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15z4.sh
set -u
. tools/gpu/ort-gpu-env.sh
. tools/gpu/issue15-figures.sh
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
alone
for k in a b; do bench "deeppcb-640-$k" graph deeppcb-640 --cycles 1000 --prerender 64; done
for k in a b c; do
  bench "panel-fp16-$k" graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
