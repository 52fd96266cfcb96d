#!/usr/bin/env bash
# Checks the .pyi stub of every compiled module (src/cnnative/_native/*.pyi) against the module
# as built and installed: names, signatures and kinds must agree (mypy's stubtest).
#     bash tools/stubtest.sh [PYTHON]      # default: python3; installs mypy into it if missing
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
# An absolute path: the check runs from tools/ below.
case $python in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; esac
"$python" -c "import mypy" 2>/dev/null || "$python" -m pip install -q "mypy>=1.10"
modules=$(cd src/cnnative/_native && ls *.pyi | sed 's/\.pyi$//; s/^/cnnative._native./')
allowlist=()
[ -f tools/stubtest-allowlist.txt ] && allowlist=(--allowlist "$PWD/tools/stubtest-allowlist.txt")
# From tools/, so that the installed package is checked, not a source tree on the path.
cd tools && "$python" -m mypy.stubtest "${allowlist[@]}" $modules
