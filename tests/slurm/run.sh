#!/usr/bin/env bash
# launch/slurm/r18.sbatch on a real, throwaway SLURM cluster of this one machine:
#  (a) a 2-task job trains to completion and leaves its checkpoints and metrics;
#  (b) the same job preempted by USR1 to its ranks requeues itself, resumes, and ends
#      bit-identical to (a);
#  (c) a bad config fails the job with the program's exit code and error line;
#  (d) the mpirun variant, preempted through the batch shell (what --signal=B:USR1
#      does), requeues, resumes and ends bit-identical to (a);
#  (e) scancel is a cancel: the job checkpoints but does not requeue itself.
# Needs root (daemons, munge user); installs Debian's slurm and munge packages when
# missing. Prints "SKIPPED: reason" and exits 77 when it cannot run.
set -euo pipefail

SRC=${RESNET_DDP_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${RESNET_DDP_BIN:-$SRC/build/resnet_ddp}
CMP=${CKPT_COMPARE:-$(dirname "$BIN")/ckpt_compare}
SBATCH_SCRIPT=$SRC/launch/slurm/r18.sbatch
# shellcheck source=tests/slurm/lib.bash
source "$SRC/tests/slurm/lib.bash"
slurm_prepare

# ---- the cluster: this machine as one node -------------------------------------------
slurm_tmpdir
start_munge
free_ports 127.0.0.1
# The node as slurmd sees it (name, sockets, cores, memory).
node_line=$(slurmd -C | head -n 1)
node=${node_line%% *}
node=${node#NodeName=}
write_conf localhost "$node_line NodeAddr=127.0.0.1 State=UNKNOWN" "$node"
start_slurmctld
mkdir -p "$T/spool/$node"
slurmd -f "$SLURM_CONF" -N "$node" || cluster_fail "slurmd did not start"
pid_of "$T/slurmd.$node.pid"
wait_idle 1
echo "ok: SLURM $(sinfo -V | cut -d' ' -f2) cluster up: node $node, ports $PORT-$((PORT + 1)), $T"

# ---- jobs ----------------------------------------------------------------------------
# 3 epochs of 63 steps: preempt() signals after the first.
TRAIN=(configs/r18-28.ini data.train_limit=4000 data.test_limit=200 model.width=8
       train.batch_size=64 train.epochs=3)

# submit NAME [VAR=value ...] -- ARGS...: the sbatch script with 2 tasks; prints the job id.
submit() {
  local name=$1 export=ALL,RESNET_DDP_BIN=$BIN,RESNET_DDP_RUNS=$T/runs
  shift
  while [ "$1" != -- ]; do export+=,$1; shift; done
  shift
  sbatch --parsable --job-name="$name" --chdir="$SRC" --output="$T/out/%j.out" \
    --ntasks-per-node=2 --overcommit --time=00:15:00 --export="$export" "$SBATCH_SCRIPT" "$@"
}
# preempt J SCANCEL-ARGS...: signal the job once it has logged its first epoch (of 3),
# so that the signal lands mid-training however fast the machine is.
preempt() {
  local j=$1
  shift
  wait_epoch "$j" 1 3 || return 1
  scancel "$@" "$j"
}

# (a) Uninterrupted: the reference for (b) and (d).
t0=$SECONDS
JA=$(submit full -- "${TRAIN[@]}")
run_to_end "$JA" || true
REF=$(final_ckpt "$JA")
OUT=$(out_of "$JA")
if [ "$(job_field "$JA" ExitCode)" = 0:0 ] && [ -n "$REF" ] && [ -s "$T/runs/full-$JA/metrics.h5" ] &&
   grep -q '2 rank(s) x 1 thread(s)' "$OUT" && grep -q '# done: 189 steps' "$OUT" &&
   tail -n 1 "$OUT" | grep -q 'exited with code 0'; then
  ok "(a) 2-task job trained to the end: $(basename "$REF") and metrics.h5 in full-$JA/, 2 ranks"
else
  fail "(a) 2-task job"; show_out "$JA"
fi
TA=$((SECONDS - t0))

# (b) Preempted by USR1 to the ranks (what --signal=USR1@N or a site's preemption
# signal does), requeued by the script.
t0=$SECONDS
JB=$(submit preempt -- "${TRAIN[@]}")
preempt "$JB" --signal=USR1 && run_to_end "$JB" && resumed_equal "$JB" "(b) preempted srun job"
TB=$((SECONDS - t0))

# (c) Bad config: the program's exit code and its one error line.
t0=$SECONDS
JC=$(submit badconfig -- "${TRAIN[@]}" train.epochs=0)
run_to_end "$JC" || true
OUT=$(out_of "$JC")
if [ "$(job_field "$JC" ExitCode)" = 2:0 ] && [ "$(job_field "$JC" JobState)" = FAILED ] &&
   grep -q "^resnet_ddp: error: command line override 'train.epochs=0'" "$OUT" &&
   tail -n 1 "$OUT" | grep -q 'resnet_ddp exited with code 2$'; then
  ok "(c) bad config: job FAILED with exit code 2: $(grep '^resnet_ddp: error:' "$OUT" | head -n 1)"
else
  fail "(c) bad config"; show_out "$JC"
fi
TC=$((SECONDS - t0))

# (d) The mpirun variant; USR1 to the batch shell only (as --signal=B:USR1@N sends
# it), which forwards it to mpirun, which forwards it to the ranks.
t0=$SECONDS
JD=$(submit mpirun LAUNCHER=mpirun -- "${TRAIN[@]}")
if preempt "$JD" --batch --signal=USR1 && run_to_end "$JD"; then
  grep -q 'launch: mpirun ' "$(out_of "$JD")" || fail "(d) the launch line does not show mpirun"
  grep -q 'got SIGUSR1, asking the ranks' "$(out_of "$JD")" || fail "(d) the batch shell did not report the USR1"
  # mpirun starts the ranks of a one-node job itself, in no SLURM step.
  resumed_equal "$JD" "(d) mpirun job preempted through the batch shell" ""
fi
TD=$((SECONDS - t0))

# (e) scancel ends the job for good: a checkpoint, no requeue.
t0=$SECONDS
JE=$(submit cancel -- "${TRAIN[@]}")
preempt "$JE" && run_to_end "$JE" && {
  OUT=$(out_of "$JE")
  if [ "$(job_field "$JE" JobState)" = CANCELLED ] && [ "$(job_field "$JE" Restarts)" = 0 ] &&
     grep -q 'stopped by a signal' "$OUT" && grep -q 'SLURM is ending it: not requeued' "$OUT"; then
    ok "(e) scancel: checkpoint written, job CANCELLED and not requeued"
  else
    fail "(e) scancel"; show_out "$JE"
  fi
}
TE=$((SECONDS - t0))

report "(a) $TA  (b) $TB  (c) $TC  (d) $TD  (e) $TE"
