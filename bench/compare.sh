#!/usr/bin/env bash
# One command for the side-by-side benchmark (bench/compare.py): installs Debian's
# python3-torch (and Pillow, NumPy) if missing, builds resnet_ddp if needed, runs it.
#
#   bench/compare.sh [compare.py options]     e.g. --runs 5 --modes single28,ddp28
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_packages.sh python3-torch python3-numpy python3-pil
# Build (or bring the build up to date: compare.py also runs sgemm_peak and fma_peak).
if [ -f build/CMakeCache.txt ]; then cmake --build build -j"$(nproc)" >/dev/null; else bash tools/setup.sh; fi
exec /usr/bin/python3 bench/compare.py "$@"
