# Sourced by the issue 15 bench scripts on the GPU machine: installs onnxruntime-gpu (its parts
# staged in /tmp/stage one call after another, the last one in $H/p05) and the station's wheels
# ($H/whl) into /tmp/site once per machine, sets PYTHONPATH and the CUDA libraries' path, and
# defines t (a timestamped line), summ (one line from a bench's JSON) and bench (one aoi bench).
export PYTHONUNBUFFERED=1
H=$(realpath "${H:-data/h-g15d}")
T0=$(date +%s); t() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
ORTW=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
if [ ! -d /tmp/site/onnxruntime ]; then
  cat /tmp/stage/* "$H/p05" > $ORTW && md5sum $ORTW || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $ORTW "$H"/whl/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/site
export LD_LIBRARY_PATH=$(python3 -c "import glob,os,nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d+'/**/lib*.so*', recursive=True)})))"):${LD_LIBRARY_PATH:-}
R=$OUT/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
summ() { tail -1 "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print('cycle', d['cycle_ms'], 'reg', d.get('registration'), 'boards/s', d.get('boards_per_s'), 'verdicts', d.get('verdicts'), 'acc', d.get('board_accuracy'), 'over', d['over_budget'], {k: (v['p50'], v['p99']) for k, v in d['stages_ms'].items()})" 2>&1 | head -c 900; echo; }
bench() {  # name mode recipe extra...
  local name=$1 mode=$2 r=$3; shift 3
  t "$name: $r $mode $*"
  AOI_ORT_CUDA=$mode timeout 120 python3 -m aoi.cli bench --recipe $r --backend onnxruntime-cuda \
    --json "$@" > $R/$name.txt 2>&1; echo "rc $?"; summ $R/$name.txt
}
