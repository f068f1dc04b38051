#!/usr/bin/env bash
# A few training steps of a small ResNet-18 under valgrind memcheck, single process:
# no memory errors and no definite leaks (Open MPI's own init/finalize allocations
# are suppressed by valgrind.supp). Also checkpoint write and metrics on the way.
set -uo pipefail
bin=${RESNET_DDP_BIN:?set by CTest}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 --num-callers=40 \
  --suppressions="$here/valgrind.supp" --log-file="$tmp/vg.log" \
  "$bin" configs/r18-28.ini model.width=4 train.batch_size=16 data.train_limit=64 data.test_limit=16 \
  train.epochs=1 train.max_steps=3 train.threads=1 checkpoint.dir="$tmp/ck" > "$tmp/out" 2>&1
rc=$?
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" "$tmp/vg.log" | sed 's/^==[0-9]*== *//'
if [ "$rc" -ne 0 ]; then
  echo "FAIL: exit code $rc"; tail -n 60 "$tmp/vg.log"; tail -n 5 "$tmp/out"; exit 1
fi
grep -q "ERROR SUMMARY: 0 errors" "$tmp/vg.log" || { echo "FAIL: valgrind reported errors"; exit 1; }
echo "valgrind memcheck: 0 errors, 0 definite leaks"
