#!/usr/bin/env bash
# Issue 15, twelfth round, second call (session 15): frames in page-locked memory
# (aoi/framemem.py, aoi/inference/pinned_frames.py; cuda-python's wheels staged in $H/whl)
# against pageable frames (AOI_PINNED_FRAMES=0), alternated: the panel's whole frame, deeppcb-640
# and board-b-1024 on the H200. First a check that the station's frame memory is page-locked
# there. Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15t.sh
set -u
. tools/gpu/ort-gpu-env.sh
t "page-locked frame memory"
python3 - <<'PY' 2>&1 | tee $R/pinned-check.txt
import numpy as np
from aoi.inference.pinned_frames import frame_memory
from aoi.inference.tensorrt.cuda_mem import call, cudart
with frame_memory("onnxruntime-cuda") as memory:
    frame = memory.empty((3000, 4096), np.uint8)
    kind = call("cudaPointerGetAttributes", frame.__array_interface__["data"][0]).type
    print(type(memory).__name__, kind, kind == cudart().cudaMemoryType.cudaMemoryTypeHost)
PY
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
for k in a b c; do
  for p in 1 0; do
    AOI_PINNED_FRAMES=$p bench "panel-pinned$p-$k" graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
  done
done
for p in 1 0; do
  AOI_PINNED_FRAMES=$p bench "deeppcb-640-pinned$p" graph deeppcb-640 --cycles 1000 --prerender 64
  AOI_PINNED_FRAMES=$p bench "b1024-pinned$p" graph board-b-1024 --cycles 300 --prerender 16
done
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
