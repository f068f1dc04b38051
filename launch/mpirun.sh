#!/usr/bin/env bash
# Run resnet_ddp on N ranks with mpirun, one machine or several (--hostfile).
#
#   launch/mpirun.sh -n 8 configs/r18.ini [section.key=value ...]
#   launch/mpirun.sh -n 16 --hostfile hosts.txt configs/r18.ini
#
# Gives each rank (cores of the node) / (ranks on the node) BLAS threads (at least 1),
# binds each rank to that many cores when they fit, oversubscribes when they do not,
# adds Open MPI's run-as-root variables only when running as root, and prints the
# exact command before running it. Environment: RESNET_DDP_BIN (default
# build/resnet_ddp next to this script), MPIRUN (default mpirun).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${RESNET_DDP_BIN:-$here/../build/resnet_ddp}
mpirun=${MPIRUN:-mpirun}

ranks=1
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    -n|-np) ranks=$2; shift 2 ;;
    --hostfile) extra+=(--hostfile "$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 -n RANKS [--hostfile FILE] CONFIG.ini [section.key=value ...]" >&2; exit 2; }
case $ranks in ''|*[!0-9]*|0) echo "$0: -n expects a positive number of ranks, got '$ranks'" >&2; exit 2 ;; esac

cores=$(nproc)
per_node=$ranks
if [ ${#extra[@]} -gt 0 ]; then per_node=$(( (ranks + $(grep -cv '^\s*\(#\|$\)' "${extra[1]}") - 1) / $(grep -cv '^\s*\(#\|$\)' "${extra[1]}") )); fi
threads=$(( cores / per_node )); [ "$threads" -ge 1 ] || threads=1

opts=(-np "$ranks" "${extra[@]}")
if [ $(( per_node * threads )) -le "$cores" ] && [ "$per_node" -le "$cores" ]; then
  opts+=(--map-by "slot:PE=$threads" --bind-to core)
else
  opts+=(--oversubscribe --bind-to none)   # more ranks than cores: let the kernel share them
fi
opts+=(-x "OMP_NUM_THREADS=$threads" -x "OPENBLAS_NUM_THREADS=$threads")
for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE RESNET_DDP_DATA; do
  [ -n "${!v:-}" ] && opts+=(-x "$v")
done
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

cmd=("$mpirun" "${opts[@]}" "$bin" "$@" "train.threads=$threads")
echo "+ ${cmd[*]}" >&2
exec "${cmd[@]}"
