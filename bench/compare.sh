#!/usr/bin/env bash
# One command for the side-by-side benchmark (bench/compare.py): installs Debian's
# python3-torch (and Pillow, NumPy) if missing, builds resnet_ddp if needed, runs it.
#
#   bench/compare.sh [compare.py options]     e.g. --runs 5 --modes single28,ddp28
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for p in python3-torch python3-numpy python3-pil; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -x build/resnet_ddp ] || bash tools/setup.sh
exec /usr/bin/python3 bench/compare.py "$@"
