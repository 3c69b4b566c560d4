# Sourced after ort-gpu-env.sh by bench-issue15s.sh, -u.sh (issue 15, twelfth round), -w.sh, -x.sh
# (thirteenth) and -z*.sh (fourteenth). `alone`: ours and YOLO11n alone at 640. `versus ON OFF
# WORD`: the GPU runs as they are against with AOI_ORT_CUDA's WORD, alternated; through it,
# `kernels_vs_graphs`: the cycle with registration's CUDA kernels against devreg's graphs,
# alternated. `chained_vs_not`: the network queued behind registration on one stream against
# after it, alternated. `captured_vs_queued`: registration and the network captured as one
# graph, queued call by call, or the network after registration, alternated. Every
# twelfth-round issue-15 figure in one call: `figures K` runs deeppcb-640 on 2 CPU cores
# (taskset -c 0,1) twice with the network alone between, ours and YOLO11n alone at 640, the GPU
# cycle of the 640 recipes (deeppcb-640 three times, pipelined once), board-b-1024, then the
# panel's whole frame K times; `cpu NAME` is the CPU run, which the calling script repeats at
# the end. `cuda_tests [TIMEOUT] [LINES]` runs the GPU path's tests and keeps their last lines.
cuda_tests() {  # [TIMEOUT] [LINES]
  t "the CUDA tests"
  local d=tests/inference
  timeout "${1:-240}" python3 -m pytest -q -p no:cacheprovider -rs $d/test_chain.py \
    $d/test_kernreg.py $d/test_devreg.py $d/test_ort_cuda.py $d/test_frame_input.py \
    $d/test_pinned_frames.py tests/test_framemem.py 2>&1 | tail -"${2:-12}" | tee $R/pytest.txt
}
cpu() {  # name
  t "$1: cpu deeppcb-640"
  taskset -c 0,1 timeout 150 python3 -m aoi.cli bench --recipe deeppcb-640 --backend onnxruntime \
    --threads 2 --cycles 300 --prerender 32 --json > $R/$1.txt 2>&1; summ $R/$1.txt
}
alone() {  # ours and YOLO11n alone at 640
  t "yolo11n build + export"
  timeout 120 python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx 2>&1 | grep -v Warning | tail -2 | tee $R/yolo.txt
  t "model alone: ours vs yolo11n"
  timeout 120 python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 /tmp/yolo11n.onnx:1,3,640,640 \
    2>&1 | grep '^{' | tee $R/peer-alone.txt
}
versus() {  # ON OFF WORD: the cycle as it is (names *-ON) against with WORD (*-OFF), alternated
  local on=$1 off=$2 word=$3
  python3 tools/gpu/panel_full.py /tmp/panel-full.toml
  alone
  for k in a b c; do
    bench "deeppcb-640-$on-$k" graph deeppcb-640 --cycles 1000 --prerender 64
    bench "deeppcb-640-$off-$k" graph,$word deeppcb-640 --cycles 1000 --prerender 64
  done
  bench board-a-640-$on graph board-a-640 --cycles 1000 --prerender 64
  bench board-a-640-$off graph,$word board-a-640 --cycles 1000 --prerender 64
  bench pipe-deeppcb-640-$on graph deeppcb-640 --cycles 1000 --prerender 64 --pipelined
  bench b1024-$on graph board-b-1024 --cycles 300 --prerender 16
  bench b1024-$off graph,$word board-b-1024 --cycles 300 --prerender 16
  for k in a b; do
    bench "panel-$on-$k" graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
    bench "panel-$off-$k" graph,fp16,fp32tail,$word /tmp/panel-full.toml --cycles 300 --prerender 16
  done
}
kernels_vs_graphs() {  # thirteenth round: registration's CUDA kernels against devreg's graphs
  versus kern onnx nokernels
  bench panel-kern-c graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
}
figures() {  # panel runs
  cpu cpu2-deeppcb-a
  t "cpu network alone"
  taskset -c 0,1 timeout 120 python3 tools/gpu/ort_cpu_alone.py models/aoi-defect-v3.onnx 300 2>&1 | tail -3 | tee $R/cpu-alone.txt
  cpu cpu2-deeppcb-b
  python3 tools/gpu/panel_full.py /tmp/panel-full.toml
  alone
  for k in a b c; do bench "deeppcb-640-$k" graph deeppcb-640 --cycles 1000 --prerender 64; done
  bench board-a-640 graph board-a-640 --cycles 1000 --prerender 64
  bench pipe-deeppcb-640 graph deeppcb-640 --cycles 1000 --prerender 64 --pipelined
  bench b1024 graph board-b-1024 --cycles 300 --prerender 16
  for k in $(echo a b c d e f | cut -d' ' -f1-"$1"); do
    bench panel-fp16-$k graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
  done
}
chained_vs_not() {  # fourteenth round: the network queued behind registration, or not
  versus chain nochain nochain
}
captured_vs_queued() {  # fourteenth round: registration and the network as one graph, or not
  python3 tools/gpu/panel_full.py /tmp/panel-full.toml
  alone
  for k in a b c; do
    bench "deeppcb-640-captured-$k" graph,capture deeppcb-640 --cycles 1000 --prerender 64
    bench "deeppcb-640-queued-$k" graph deeppcb-640 --cycles 1000 --prerender 64
    bench "deeppcb-640-nochain-$k" graph,nochain deeppcb-640 --cycles 1000 --prerender 64
  done
  grep -h "one graph\|could not be captured" $R/deeppcb-640-*.txt | sort | uniq -c | head -5
  bench board-a-640-captured graph,capture board-a-640 --cycles 1000 --prerender 64
  bench board-a-640-queued graph board-a-640 --cycles 1000 --prerender 64
  bench pipe-deeppcb-640-captured graph,capture deeppcb-640 --cycles 1000 --prerender 64 --pipelined
  bench b1024-captured graph,capture board-b-1024 --cycles 300 --prerender 16
  bench b1024-queued graph board-b-1024 --cycles 300 --prerender 16
  for k in a b c; do
    bench "panel-captured-$k" graph,fp16,fp32tail,capture /tmp/panel-full.toml --cycles 300 \
      --prerender 16
  done
  bench panel-queued graph,fp16,fp32tail /tmp/panel-full.toml --cycles 300 --prerender 16
  grep -h "one graph\|could not be captured" $R/panel-*.txt $R/b1024-*.txt | sort | uniq -c | head -5
}
