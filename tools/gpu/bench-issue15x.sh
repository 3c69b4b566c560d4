#!/usr/bin/env bash
# Issue 15, thirteenth round, second call: registration with its fit on the device too
# (aoi/inference/kernreg.py, one launch a frame), first the CUDA tests, then against devreg's ONNX graphs (AOI_ORT_CUDA=...,nokernels), alternated in one call on the H200:
# deeppcb-640 three times each, board-a-640, board-b-1024 and the panel's whole frame, the
# pipelined loop, and ours and YOLO11n alone at 640. Set-up as bench-issue15r.sh.
#   run: carry ["data/h-g15d"], command: H=data/h-g15d bash tools/gpu/bench-issue15x.sh
set -u
. tools/gpu/ort-gpu-env.sh
t "the CUDA tests"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/inference/test_kernreg.py \
  tests/inference/test_devreg.py tests/inference/test_ort_cuda.py tests/inference/test_frame_input.py \
  tests/inference/test_pinned_frames.py tests/test_framemem.py 2>&1 | tail -8 | tee $R/pytest.txt
python3 tools/gpu/panel_full.py /tmp/panel-full.toml
t "yolo11n build + export"
timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx 2>&1 | grep -v Warning | tail -2 | tee $R/yolo.txt
t "model alone: ours vs yolo11n"
timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 \
  2>&1 | grep '^{' | tee $R/peer-alone.txt
for k in a b c; do
  bench "deeppcb-640-kern-$k" graph deeppcb-640 --cycles 1000 --prerender 64
  bench "deeppcb-640-onnx-$k" graph,nokernels deeppcb-640 --cycles 1000 --prerender 64
done
bench board-a-640-kern graph board-a-640 --cycles 1000 --prerender 64
bench board-a-640-onnx graph,nokernels board-a-640 --cycles 1000 --prerender 64
bench pipe-deeppcb-640-kern graph deeppcb-640 --cycles 1000 --prerender 64 --pipelined
bench b1024-kern graph board-b-1024 --cycles 300 --prerender 16
bench b1024-onnx graph,nokernels board-b-1024 --cycles 300 --prerender 16
for k in a b; do
  bench "panel-kern-$k" graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
  bench "panel-onnx-$k" graph,fp16,fp32tail,nokernels /tmp/panel-full.toml --cycles 300 --prerender 16
done
bench panel-kern-c graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
t done; date -u
tar czf $OUT/r.tgz -C $OUT r && rm -rf $R
