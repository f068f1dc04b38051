#!/usr/bin/env bash
# Training throughput of resnet_ddp on the real data: median images/s per step (the
# first 3 steps excluded as warm-up) and peak RSS, for one setting.
#
#   bench/throughput.sh [-n RANKS] [-s STEPS] CONFIG [section.key=value ...]
#
# Prints one line: ranks, threads, image size, median img/s, peak RSS of rank 0
# (GNU time, max resident set), and the per-phase time split of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=1 steps=20
while [ $# -gt 0 ]; do
  case $1 in -n) ranks=$2; shift 2 ;; -s) steps=$2; shift 2 ;; *) break ;; esac
done
bin=${RESNET_DDP_BIN:-build/resnet_ddp}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
args=("$@" "train.max_steps=$steps" "data.test_limit=256" "checkpoint.dir=$tmp/ck" "train.progress=false")
if [ "$ranks" -gt 1 ]; then
  [ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  # GNU time cannot expand the rank: give each rank its own file through a wrapper.
  cat > "$tmp/wrap.sh" <<SH
#!/bin/sh
exec /usr/bin/time -v -o "$tmp/time.\$OMPI_COMM_WORLD_RANK" "$bin" "\$@"
SH
  chmod +x "$tmp/wrap.sh"
  cmd=(mpirun --oversubscribe --bind-to none -np "$ranks" "$tmp/wrap.sh" "${args[@]}")
else
  cmd=(/usr/bin/time -v -o "$tmp/time.0" "$bin" "${args[@]}")
fi
"${cmd[@]}" > "$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
rate=$(sed -n 's/^# throughput: median \([0-9.]*\) img\/s.*/\1/p' "$tmp/out")
rss=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$tmp/time.0")
info=$(sed -n 's/^# data .*; \([0-9]* rank(s) x [0-9]* thread(s)\);.*/\1/p' "$tmp/out")
size=$(sed -n 's/.*MFLOP per training image at \([0-9x]*\);.*/\1/p' "$tmp/out")
gib=$(awk -v k="$rss" 'BEGIN { printf "%.2f", k / 1048576 }')
echo "$info, $size: median $rate img/s over $steps steps; rank 0 peak RSS $gib GiB"
grep -E "^epoch .* stopped|^  time" "$tmp/out" | sed 's/^/  /'
