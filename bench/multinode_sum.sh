#!/usr/bin/env bash
# Time grad_sync's sum of ResNet-18's gradients (44.7 MB of floats) across nodes made
# of network namespaces (tools/netns_nodes.bash) joined by tbf-capped links: every
# way the program sums (hierarchical: shared memory per node + slices across nodes,
# after backward or bucket by bucket during it; flat: MPI_Allreduce or overlapped
# MPI_Iallreduce over all ranks), for each node
# count and link rate, beside the ring model 2(N-1)/N x S / B for the bytes that
# cross one node's link. Root only.
#
#   bash bench/multinode_sum.sh [--nodes "2 4"] [--rates "1gbit 10gbit"] [--ranks-per-node 2]
#                               [--iters 10] [--backward-ms 0]
#
# Prints one line per measurement (build/grad_sum's) and a Markdown table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes_list="2 4" rates="1gbit 10gbit" per_node=2 iters=10 backward_ms=0
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes_list=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --ranks-per-node) per_node=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --backward-ms) backward_ms=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "multinode_sum.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "multinode_sum.sh: needs root (network namespaces)" >&2; exit 2; }
[ -x build/grad_sum ] || { echo "multinode_sum.sh: build/grad_sum is missing (build first)" >&2; exit 2; }
# shellcheck source=tools/netns_nodes.bash
source tools/netns_nodes.bash
NODES_SHARED=$PWD   # the source tree and build/ on every node, even under /tmp
dir=$(mktemp -d /var/tmp/multinode-sum.XXXXXX)
trap 'nodes_down; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM   # an interrupted run cleans up too
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_tcp_if_include=eth0 OMPI_MCA_oob_tcp_if_include=eth0
unset RESNET_DDP_NODE_SIZE
echo "# $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; commit $(git rev-parse --short HEAD 2> /dev/null || echo '?')"
rows=()
for n in $nodes_list; do
  for rate in $rates; do
    nodes_up "$n" "$rate" "$dir" || exit 1
    nodes_rsh_agent "$dir/nsrsh"
    : > "$dir/hosts"
    for i in $(seq "$n"); do echo "n$i slots=$per_node" >> "$dir/hosts"; done
    ranks=$((n * per_node))
    for mode in "hierarchical:--shared-memory 1 --overlap 0" \
                "hierarchical overlapped:--shared-memory 1 --overlap 1" \
                "flat:--shared-memory 0 --overlap 0" "flat overlapped:--shared-memory 0 --overlap 1"; do
      name=${mode%%:*}
      # shellcheck disable=SC2086  # the mode's options, one per word
      line=$(node_run 1 env OMPI_MCA_plm_rsh_agent="$dir/nsrsh" mpirun --oversubscribe --bind-to none \
               -np "$ranks" --hostfile "$dir/hosts" -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
               build/grad_sum --iters "$iters" --backward-ms "$backward_ms" ${mode#*:} 2>&1 | grep '^grad_sum:' || true)
      echo "$rate: $line"
      median=$(sed -n 's/.*median total \([0-9.]*\) s, exposed \([0-9.]*\) s.*/\1 \2/p' <<< "$line")
      r=${rate%bit}
      bits=$(numfmt --from=si "${r^^}")
      model=$(awk -v n="$n" -v b="$bits" 'BEGIN { printf "%.3f", 2 * (n - 1) / n * 44.7e6 * 8 / b }')
      rows+=("| $n | $per_node | $rate | $name | ${median% *} | ${median#* } | $model |")
    done
    nodes_down
  done
done
echo
echo "| nodes | ranks per node | link | sum | median total s | exposed s | ring model s |"
echo "| ---: | ---: | --- | --- | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
