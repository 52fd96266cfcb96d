#!/usr/bin/env bash
# Draws the pictures of the documentation's pictures page (docs/pictures.rst) into
# docs/_static/pictures/: trains the default preset (`cnnative train`, about 30 s on 2 cores,
# seed 0, so the same model on every machine up to BLAS) and runs `cnnative show` on it, on the
# embedded validation digits; the learning curve comes along as learning_curve.png.
#     bash tools/make_doc_pictures.sh [PYTHON]   # default: python3, with cnnative and matplotlib
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
# An absolute path: the commands run from a scratch directory below.
case $python in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; esac
"$python" -c "import matplotlib" 2>/dev/null || {
    echo "make_doc_pictures: $python has no matplotlib; pip install matplotlib" >&2; exit 1; }
pictures="$PWD/docs/_static/pictures"
mkdir -p "$pictures"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# From the scratch directory, so that the installed package runs and src/cnnative/signal.py
# can't shadow the standard library's signal module.
cd "$work"
"$python" -m cnnative train --no-progress --out model.npz
"$python" -m cnnative show model.npz --out "$pictures"
cp model.png "$pictures/learning_curve.png"
echo "pictures in $pictures:"
ls -l "$pictures"
