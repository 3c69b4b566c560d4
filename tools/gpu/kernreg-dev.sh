#!/usr/bin/env bash
# Issue 15, thirteenth round: registration's CUDA kernels checked on the H200 without
# onnxruntime-gpu (cuda-python's wheels and the station's in $W, default data/kdev).
#   run: carry ["data/kdev"], command: bash tools/gpu/kernreg-dev.sh
set -u
W=${W:-data/kdev}
export PYTHONUNBUFFERED=1
if [ ! -d /tmp/site/cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$W"/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
python3 -c "from cuda.bindings import nvrtc; print('nvrtc', nvrtc.nvrtcVersion())" 2>&1 | tail -3
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/inference/test_kernreg.py 2>&1 | tail -8
timeout 350 python3 tools/gpu/kernreg_check.py --runs ${RUNS:-200} --json $OUT/kernreg.json 2>&1 | tail -40
