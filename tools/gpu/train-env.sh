# Sourced by the issue-16 training scripts on the GPU machine, from the staged folder (the
# caller cds there and sets R, its results folder, first): empties R, logs everything to
# $OUT/call.log, prints the GPU and the staged commit, installs the station's wheels
# (data/whl) into /tmp/site where pydantic is missing, and puts the tree on PYTHONPATH.
set -u
export PYTHONUNBUFFERED=1
rm -rf "$R"; mkdir -p "$R"
exec > >(tee "$OUT/call.log") 2>&1
nvidia-smi --query-gpu=name --format=csv,noheader; date -u; echo "tree: $(cat STAGED_FROM)"
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site data/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
