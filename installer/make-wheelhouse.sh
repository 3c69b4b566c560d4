#!/usr/bin/env bash
# Builds the wheelhouse install.sh installs from, on a machine that reaches PyPI: the station's
# wheel and every dependency's, for the line PC's Python and platform.
#   installer/make-wheelhouse.sh [--gpu] [--out DIR] [--python PY]
# Build it with the same Python minor version (and CPU architecture) as the line PC's python3
# (Debian 12: 3.11, Ubuntu 24.04: 3.12), or pip there finds no matching wheels.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(dirname "$HERE")"
OUT="$SRC/dist/wheelhouse" EXTRAS="gui" PYTHON=python3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpu) EXTRAS="gui,gpu"; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --python) PYTHON="$2"; shift 2 ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
    *) echo "make-wheelhouse: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The station's own wheel (recipes, templates and models inside), then every dependency of it
# with the extras: binary wheels where PyPI has them, else built here.
"$PYTHON" -m pip wheel -q -w "$OUT" "$SRC[$EXTRAS]"
# pip and setuptools for the venv install.sh creates (an offline venv cannot upgrade them).
"$PYTHON" -m pip download -q -d "$OUT" pip setuptools
echo "make-wheelhouse: $(ls "$OUT" | wc -l) files in $OUT (extras: $EXTRAS)"
echo "make-wheelhouse: on the line PC: sudo installer/install.sh --wheelhouse $OUT --extras $EXTRAS"
