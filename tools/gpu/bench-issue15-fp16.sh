#!/usr/bin/env bash
# Issue 15, second device call: FP16 variants with parts kept in FP32 (aoi/inference/fp16.py),
# their mAP on the DeepPCB val split against FP32 and the backend alone. Same staging and
# arguments as bench-issue15.sh (onnxruntime-gpu parts in /tmp/stage, $W/whl, $W/deeppcb).
set -u
export PYTHONUNBUFFERED=1
W=${W:-$PWD/data/h-gpu}
cd "${1:-.}" || exit 2
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
WHL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
if [ ! -d /tmp/site/onnxruntime ]; then
  cat /tmp/stage/* > $WHL && md5sum $WHL || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $WHL $W/whl/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/site
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
R=$OUT/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
TAIL=fp32from=/Add_1; HEAD=fp32from=/head_fine/Conv; STEM=fp32until=/stem/Relu
MODES="graph,fp16,$TAIL;graph,fp16,$HEAD;graph,fp16,$STEM;graph,fp16,$STEM,$HEAD"
t "backend alone"
timeout 150 python3 tools/gpu/issue15_alone.py --model models/aoi-defect-v3.onnx --shape 1,640,640 \
  --shape 8,1024,1024 --modes "graph;graph,fp16;$MODES" 2>&1 | tee $R/alone.txt | grep -v Warning
i=0; IFS=';'; for m in $MODES; do
  i=$((i+1)); t "eval $m"
  AOI_ORT_CUDA=$m timeout 120 python3 -m aoi.cli eval --recipe deeppcb-640 --backend onnxruntime-cuda \
    --data $W/deeppcb/PCBData --split models/splits/deeppcb-val.txt --out /tmp/eval-$i --json \
    > $R/eval-$i.txt 2>&1; echo "rc $?"; grep -E "^mAP|^mousebite" $R/eval-$i.txt
done; unset IFS
t done; date -u
tar czf $OUT/issue15-fp16.tgz -C $OUT r && rm -rf $R
