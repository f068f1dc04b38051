#!/usr/bin/env bash
# launch/slurm/r18.sbatch across nodes: this machine cut into 3 nodes, each a
# network namespace with its own address, hostname (UTS namespace) and /tmp (mount
# namespace), joined by veth pairs to a bridge, every link capped by tc tbf, one slurmd
# per node, slurmctld and munge outside. Deterministic mode (micro-shards) throughout,
# so runs on any number of ranks and nodes must end bit-identical:
#  (a) sbatch --nodes=2 --ntasks-per-node=2 trains to the end: 4 ranks on 2 nodes,
#      gradients summed in shared memory per node and across the link (the links'
#      byte counters show it), checkpoints written by rank 0 on the first node;
#  (b) a one-node job (2 ranks) ends bit-identical to (a);
#  (c) (a) preempted by USR1 requeues itself, resumes and ends bit-identical to (a);
#  (d) launch/mpirun.sh with a hostfile across the namespaces (Open MPI's ssh launcher
#      replaced by nsenter into the node) ends bit-identical to (a);
#  (e) a node's link cut mid-step: every rank ends with the hang guard's message
#      within [dist] timeout, the last checkpoint verifies, SLURM marks the node DOWN
#      and requeues the job, which reruns on the other two nodes, resumes and ends
#      bit-identical to (a);
#  (f) a node without the data set (node-local data directory): the one-line data
#      error, exit code 2, no rank left hanging.
# Needs root; prints "SKIPPED: reason" and exits 77 when it cannot run. Everything it
# makes (namespaces, links, daemons, files) is removed on exit, failed or not.
# Environment: MULTINODE_NODES (default 3, at least 3), MULTINODE_RATE (tc rate, default 1gbit).
set -euo pipefail

SRC=${RESNET_DDP_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${RESNET_DDP_BIN:-$SRC/build/resnet_ddp}
CMP=${CKPT_COMPARE:-$(dirname "$BIN")/ckpt_compare}
SBATCH_SCRIPT=$SRC/launch/slurm/r18.sbatch
cd "$SRC"   # relative paths below (configs/, launch/) are the source tree's
NODES=${MULTINODE_NODES:-3}
RATE=${MULTINODE_RATE:-1gbit}
# shellcheck source=tests/slurm/lib.bash
source "$SRC/tests/slurm/lib.bash"
slurm_prepare
for tool in ip tc nsenter unshare; do command -v "$tool" > /dev/null || skip "$tool is missing"; done

# ---- the nodes, and the cluster over them ----------------------------------------------
# shellcheck source=tools/netns_nodes.bash
source "$SRC/tools/netns_nodes.bash"
CLEANUP_HOOK=nodes_down
ip netns add "$NODES_TAG-probe" 2> /dev/null || skip "cannot make network namespaces (ip netns add)"
ip netns del "$NODES_TAG-probe"
slurm_tmpdir
# The program, the tools and the source tree on every node (a fresh clone may be in /tmp).
NODES_SHARED="$SRC $(dirname "$BIN") $(dirname "$CMP")"
nodes_up "$NODES" "$RATE" "$T" || cluster_fail "could not make $NODES nodes"
NET=$NODES_NET
start_munge
free_ports "$NET.1"
# A node lost from view is DOWN after 20 s (the default is 300).
SLURM_CONF_EXTRA="SlurmdTimeout=20"
write_conf "$(hostname -s)($NET.1)" \
  "NodeName=n[1-$NODES] NodeHostname=n[1-$NODES] NodeAddr=$NET.[11-$((10 + NODES))] CPUs=$(nproc) RealMemory=2000 State=UNKNOWN" \
  "n[1-$NODES]"
start_slurmctld
for i in $(seq "$NODES"); do
  mkdir -p "$T/spool/n$i"
  node_run "$i" slurmd -f "$SLURM_CONF" -N "n$i" || cluster_fail "slurmd n$i did not start"
  pid_of "$T/slurmd.n$i.pid"
done
wait_idle "$NODES"
echo "ok: SLURM $(sinfo -V | cut -d' ' -f2) cluster up: $NODES nodes n1..n$NODES at $NET.11.., links $RATE, $T"


# ---- jobs ----------------------------------------------------------------------------
# Open MPI between the nodes over eth0 (the test environment pins it to lo).
export OMPI_MCA_btl_tcp_if_include=eth0 OMPI_MCA_oob_tcp_if_include=eth0
# 3 epochs of 16 steps, micro-shards of 8 images: any rank count gives the same bits.
TRAIN=(configs/r18-28.ini data.train_limit=1024 data.test_limit=128 model.width=8
       train.batch_size=64 train.epochs=3 dist.shard_size=8 dist.timeout=15)
STEPS=48

# submit NAME NODES [VAR=value ...] -- ARGS...: the sbatch script on NODES nodes x 2 tasks.
submit() {
  local name=$1 nodes=$2 export=ALL,RESNET_DDP_BIN=$BIN,RESNET_DDP_RUNS=$T/runs
  shift 2
  while [ "$1" != -- ]; do export+=,$1; shift; done
  shift
  sbatch --parsable --job-name="$name" --chdir="$SRC" --output="$T/out/%j.out" \
    --nodes="$nodes" --ntasks-per-node=2 --overcommit --time=00:15:00 --export="$export" \
    "$SBATCH_SCRIPT" "$@"
}

# (a) 2 nodes x 2 ranks, to the end: the reference.
t0=$SECONDS
before=()
for i in 1 2; do before[i]=$(node_tx_bytes "$i"); done
JA=$(submit full 2 -- "${TRAIN[@]}")
run_to_end "$JA" || true
REF=$(final_ckpt "$JA")
OUT=$(out_of "$JA")
if [ "$(job_field "$JA" ExitCode)" = 0:0 ] && [ -n "$REF" ] &&
   grep -q 'nodes n\[1-2\] tasks 4 ' "$OUT" &&
   grep -q '4 rank(s) x 1 thread(s); 2 node(s);' "$OUT" &&
   grep -q 'overlap on, summed by shared memory + MPI_Iallreduce across nodes' "$OUT" &&
   grep -q "written by rank 0, on host n1)" "$OUT" && grep -q "# done: $STEPS steps" "$OUT"; then
  ok "(a) 2 nodes x 2 ranks trained to the end, summed in shared memory + across the link; $(basename "$REF") by rank 0 on n1"
else
  fail "(a) 2 nodes x 2 ranks"; show_out "$JA"
fi
# Each step each node sends at least its share of a ring allreduce of the gradients
# across the link: 2(N-1)/N x the gradient bytes, N = 2 nodes.
grad_bytes=$(sed -n 's/^# model ResNet-18: \([0-9]*\) trainable parameters.*/\1/p' "$OUT" | head -n 1)
grad_bytes=$((grad_bytes * 4))
for i in 1 2; do
  sent=$(( $(node_tx_bytes "$i") - before[i] ))
  if [ "$sent" -ge $((STEPS * grad_bytes)) ]; then
    ok "(a) n$i sent $sent bytes over its link, >= $STEPS steps x $grad_bytes gradient bytes"
  else
    fail "(a) n$i sent $sent bytes over its link, expected >= $((STEPS * grad_bytes))"
  fi
done
TA=$((SECONDS - t0))

# (b) One node, 2 ranks: the same bits.
t0=$SECONDS
JB=$(submit onenode 1 -- "${TRAIN[@]}")
run_to_end "$JB" || true
grep -q '2 rank(s) x 1 thread(s); 1 node(s);' "$(out_of "$JB")" || { fail "(b) not 2 ranks on 1 node"; show_out "$JB"; }
same_as_ref "$JB" "(b) one node x 2 ranks against 2 nodes x 2 ranks"
TB=$((SECONDS - t0))

# (c) Preempted by USR1 to the ranks, requeued by the script, resumed.
t0=$SECONDS
JC=$(submit preempt 2 -- "${TRAIN[@]}")
wait_epoch "$JC" 1 3 && scancel --signal=USR1 "$JC" && run_to_end "$JC" &&
  resumed_equal "$JC" "(c) 2-node job preempted"
TC=$((SECONDS - t0))

# (d) launch/mpirun.sh with a hostfile, started on n1; Open MPI reaches n2 through
# an "ssh" that enters n2's namespaces.
t0=$SECONDS
nodes_rsh_agent "$T/nsrsh"
printf 'n1 slots=2\nn2 slots=2\n' > "$T/hosts"
mkdir -p "$T/runs/mpirun"
if node_run 1 env OMPI_MCA_plm_rsh_agent="$T/nsrsh" bash launch/mpirun.sh -n 4 --hostfile "$T/hosts" \
     "${TRAIN[@]}" train.progress=false checkpoint.dir="$T/runs/mpirun" > "$T/out/mpirun.out" 2>&1 &&
   grep -q '4 rank(s) x 1 thread(s); 2 node(s);' "$T/out/mpirun.out"; then
  ok "(d) launch/mpirun.sh -n 4 --hostfile (n1, n2) trained to the end on 2 nodes"
else
  fail "(d) launch/mpirun.sh across the nodes"; grep -v '^#   ' "$T/out/mpirun.out" | tail -n 20 | sed 's/^/    /'
fi
REF_D=$(find "$T/runs/mpirun" -name 'ckpt-*.h5' | sort | tail -n 1)
if [ -n "$REF_D" ] && "$CMP" "$REF" "$REF_D" > "$T/cmp.out" 2>&1; then
  ok "(d) mpirun across the nodes: final checkpoint equals (a)'s bit for bit"
else
  fail "(d) mpirun's final checkpoint differs from (a)'s"; sed 's/^/    /' "$T/cmp.out"
fi
TD=$((SECONDS - t0))

# (e) n2's link goes down mid-step. Every rank's hang guard ([dist] timeout = 15 s)
# ends it with its message; SLURM finds n2 unreachable (SlurmdTimeout), marks it DOWN
# and requeues the job (--requeue), which reruns on n1 and n3 and resumes from its
# last checkpoint.
t0=$SECONDS
JE=$(submit linkcut 2 -- "${TRAIN[@]}")
OUT=$(out_of "$JE")
if wait_epoch "$JE" 1 3; then
  sleep 1   # into epoch 2, mid-step
  node_link 2 down
  cut=$SECONDS
  poll_until 60 grep -qs 'resnet_ddp: error: \[rank [0-9]*\] stuck' "$OUT" || true
  msg=$(grep -m 1 'resnet_ddp: error: \[rank [0-9]*\] stuck' "$OUT" || true)
  msg_after=$((SECONDS - cut))
  # No rank may outlive the guard (on either side of the cut).
  poll_until 20 not pgrep -f "^$BIN .*runs/linkcut-$JE" > /dev/null || true
  ranks_left=$(pgrep -fc "^$BIN .*runs/linkcut-$JE" || true)
  gone_after=$((SECONDS - cut))
  if [ -n "$msg" ] && [ "$msg_after" -le 25 ] && [ "$ranks_left" = 0 ]; then
    ok "(e) link cut: message after $msg_after s, every rank ended after $gone_after s: $msg"
  else
    fail "(e) link cut: expected the hang guard's message within 25 s and no rank left" \
         "(message after $msg_after s, $ranks_left rank(s) left after $gone_after s)"; show_out "$JE"
  fi
  last=$(final_ckpt "$JE")
  if [ -n "$last" ] && "$CMP" "$last" "$last" > "$T/cmp.out" 2>&1; then
    ok "(e) the last checkpoint before the cut verifies: $(basename "$last")"
  else
    fail "(e) no intact checkpoint after the link cut"; sed 's/^/    /' "$T/cmp.out"
  fi
  # SLURM's side: n2 DOWN (not responding), the job requeued.
  poll_until 90 job_is "$JE" Restarts 1 || true
  echo "    $((SECONDS - cut)) s after the cut: job $JE $(job_field "$JE" JobState)," \
       "$(job_field "$JE" Restarts) restart(s); n2 $(sinfo -h -n n2 -o '%T (%E)')"
  if [ "$(job_field "$JE" Restarts)" = 1 ]; then
    ok "(e) SLURM requeued the job when n2 stopped answering"
    # It reruns on the nodes left (n1 and n3), but only once slurmctld has taken the
    # killed run's end: that run's batch script on n1 ends after the requeue, and
    # its exit status, arriving after a rerun has started, would end the rerun
    # (slurmctld: "Started JobId=4 ...", 3 ms later "_job_complete: JobId=4
    # WEXITSTATUS 1"). If slurmctld logs no such line, 60 s is more than that script
    # can take (its srun waits up to 32 s for the lost node's step). Then no step
    # daemon of the job may be left there (n2's cannot be told while its link is
    # down); a requeued job waits out its old credential unless given a start time.
    from=$(grep -n "requeue job JobId=$JE due to failure" "$T/log/slurmctld.log" | tail -n 1 | cut -d: -f1)
    killed_run_completed() { tail -n +"${from:-1}" "$T/log/slurmctld.log" | grep -q "_job_complete: JobId=$JE "; }
    step_daemons_gone() {
      local i
      for i in $(seq "$NODES"); do
        [ "$i" = 2 ] || [ -z "$(node_pids "$i" "slurmstepd: \[$JE\.")" ] || return 1
      done
    }
    poll_until 60 killed_run_completed || true
    poll_until 60 step_daemons_gone || true
    scontrol update JobId="$JE" StartTime=now > /dev/null 2>&1 || true
    run_to_end "$JE" || true
    if [ "$(job_field "$JE" ExitCode)" = 0:0 ] &&
       grep -q "resumed from $T/runs/[^/]*-$JE/$(basename "$last")" "$OUT"; then
      ok "(e) the requeued job ran on $(grep -o "restart 1 nodes [^ ]*" "$OUT" | cut -d' ' -f4)," \
         "resumed from $(basename "$last") and finished"
    else
      fail "(e) the requeued job did not resume from $(basename "$last") and finish"; show_out "$JE" 40
      grep -E "JobId=${JE}[ ;]|job[ _]?$JE\b" "$T/log/slurmctld.log" | tail -n 15 | sed 's/^/    slurmctld: /' || true
      grep -h -E "JobId=$JE\b|StepId=$JE\.|job $JE\b" "$T"/log/slurmd.*.log | tail -n 15 |
        sed 's/^/    slurmd: /' || true
    fi
    same_as_ref "$JE" "(e) resumed after the link cut"
  else
    fail "(e) job $JE not requeued after n2 went down"; show_out "$JE"
  fi
fi
node_link 2 up
TE=$((SECONDS - t0))

# (f) The data set only on n1 (node-local /tmp): n2's ranks fail to read it.
t0=$SECONDS
node_run 1 cp -r /usr/share/datasets/fashion-mnist /tmp/fmnist
JF=$(submit nodata 2 -- "${TRAIN[@]}" data.dir=/tmp/fmnist)
run_to_end "$JF" || true
OUT=$(out_of "$JF")
if [ "$(job_field "$JF" ExitCode)" = 2:0 ] && grep -q "^resnet_ddp: error: .*/tmp/fmnist/" "$OUT" &&
   ! grep -q 'stuck' "$OUT"; then
  ok "(f) data set missing on n2: exit code 2 after $((SECONDS - t0)) s: $(grep -m 1 '^resnet_ddp: error:' "$OUT")"
else
  fail "(f) data set missing on n2: expected exit code 2 and the data error"; show_out "$JF"
fi
TF=$((SECONDS - t0))

report "(a) $TA  (b) $TB  (c) $TC  (d) $TD  (e) $TE  (f) $TF"
