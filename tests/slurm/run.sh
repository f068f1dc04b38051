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

skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root to run a private SLURM cluster"

SRC=${RESNET_DDP_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${RESNET_DDP_BIN:-$SRC/build/resnet_ddp}
CMP=${CKPT_COMPARE:-$(dirname "$BIN")/ckpt_compare}
SBATCH_SCRIPT=$SRC/launch/slurm/r18.sbatch
for f in "$BIN" "$CMP"; do [ -x "$f" ] || { echo "FAIL: $f is missing (build first)"; exit 1; }; done
command -v mpirun > /dev/null || { echo "FAIL: mpirun is missing"; exit 1; }

# ---- packages ------------------------------------------------------------------------
need=()
for pair in slurmctld:slurmctld slurmd:slurmd slurm-client:sbatch munge:munged; do
  command -v "${pair#*:}" > /dev/null || need+=("${pair%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get > /dev/null || skip "SLURM is not installed and there is no apt-get (${need[*]})"
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y --no-install-recommends "${need[@]}" > /tmp/slurm-test-apt.log 2>&1; }
  apt_install || { apt-get update > /dev/null 2>&1 && apt_install; } ||
    skip "could not install ${need[*]} (see /tmp/slurm-test-apt.log)"
fi
command -v runuser > /dev/null || skip "runuser is missing (util-linux)"
id munge > /dev/null 2>&1 || skip "there is no munge user"

# A test run inside a SLURM job must not talk to that job's cluster.
for v in $(compgen -e SLURM_ || true); do unset "$v"; done

# ---- the cluster ---------------------------------------------------------------------
T=$(mktemp -d /tmp/slurm-test.XXXXXX)
chmod 755 "$T"  # the munge user must reach its socket below
PIDS=()         # daemons, stopped in reverse order on exit
cleanup() {
  local rc=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -s "$T/slurmctld.pid" ]; then
    # Cancel what is left (after a failure) so no job outlives its slurmd.
    local left
    left=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$left" ]; then
      # shellcheck disable=SC2086  # one id per word
      scancel $left 2>/dev/null || true
      for _ in $(seq 60); do [ -z "$(squeue -h -o %i 2>/dev/null || true)" ] && break; sleep 0.5; done
    fi
  fi
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cluster_fail() {
  echo "FAIL: $*"
  for log in "$T"/log/*.log "$T"/munge/munged.log; do
    [ -s "$log" ] && { echo "--- $log"; tail -n 15 "$log"; }
  done
  exit 1
}
# pid_of FILE: wait (bounded) for a daemon's pid file, record the pid.
pid_of() {
  for _ in $(seq 100); do [ -s "$1" ] && break; sleep 0.1; done
  [ -s "$1" ] || cluster_fail "no pid file $1"
  PIDS+=("$(cat "$1")")
}

# Munge with its own key and socket, run as the munge user as Debian's service does.
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log" "$T/out" "$T/runs"
chown munge:munge "$T/munge"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1 count=1024 status=none
chown munge:munge "$T/munge/munge.key"
chmod 0400 "$T/munge/munge.key"
runuser -u munge -- munged --key-file="$T/munge/munge.key" --socket="$T/munge/munge.socket" \
  --pid-file="$T/munge/munged.pid" --log-file="$T/munge/munged.log" \
  --seed-file="$T/munge/munged.seed" || cluster_fail "munged did not start"
pid_of "$T/munge/munged.pid"

# Two free ports (a real slurmctld on this machine would hold 6817).
port=16817
while (exec 3<> "/dev/tcp/127.0.0.1/$port") 2>/dev/null || (exec 3<> "/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null; do
  port=$((port + 2))
  [ "$port" -lt 16917 ] || cluster_fail "no free port pair in 16817..16917"
done

# The node as slurmd sees it (name, sockets, cores, memory).
node_line=$(slurmd -C | head -n 1)
node=${node_line%% *}
node=${node#NodeName=}
export SLURM_CONF=$T/slurm.conf
cat > "$SLURM_CONF" <<EOF
ClusterName=resnetci
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MailProg=/bin/true
# Schedule every second: requeued jobs become eligible while no event wakes the
# scheduler, which otherwise looks at them only every 30-60 s.
SchedulerParameters=bf_interval=1,sched_interval=1
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -c -f "$SLURM_CONF" || cluster_fail "slurmctld did not start"
pid_of "$T/slurmctld.pid"
slurmd -f "$SLURM_CONF" -N "$node" || cluster_fail "slurmd did not start"
pid_of "$T/slurmd.pid"
for _ in $(seq 120); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || cluster_fail "node $node is not idle: $(sinfo -h -o '%T %E' 2>&1)"
echo "ok: SLURM $(sinfo -V | cut -d' ' -f2) cluster up: node $node, ports $port-$((port + 1)), $T"

# ---- jobs ----------------------------------------------------------------------------
FAILS=0 PASSES=0
ok() { echo "ok: $*"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
out_of() { echo "$T/out/$1.out"; }
show_out() { sed 's/^/    /' "$(out_of "$1")" | grep -v '^    #   ' | tail -n "${2:-25}"; }
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
job_field() { scontrol show job -o "$1" 2>/dev/null | grep -o "$2=[^ ]*" | cut -d= -f2; }
# wait_for J STATE SECONDS: until the job reaches STATE (or is gone, for STATE=gone).
wait_for() {
  local deadline=$((SECONDS + $3)) st
  while [ "$SECONDS" -lt "$deadline" ]; do
    st=$(squeue -h -j "$1" -o %T 2>/dev/null || true)
    if [ "$2" = gone ]; then [ -z "$st" ] && return 0; elif [ "$st" = "$2" ]; then return 0; fi
    sleep 0.5
  done
  return 1
}
# run_to_end J: wait for the job to finish; prints how long it took.
run_to_end() {
  local t0=$SECONDS
  wait_for "$1" gone 600 || { fail "job $1 did not finish in 600 s ($(squeue -h -j "$1" -o '%T %r'))"; return 1; }
  echo "    job $1 ($(job_field "$1" JobName)) ended after $((SECONDS - t0)) s: $(job_field "$1" JobState)," \
       "exit code $(job_field "$1" ExitCode), $(job_field "$1" Restarts) restart(s)"
}
# preempt J SCANCEL-ARGS...: signal the job once it has logged its first epoch (of 3),
# so that the signal lands mid-training however fast the machine is.
preempt() {
  local j=$1
  shift
  wait_for "$j" RUNNING 300 || { fail "job $j never started"; return 1; }
  for _ in $(seq 1500); do grep -qs '^epoch 1/3 ' "$(out_of "$j")" && break; sleep 0.2; done
  grep -q '^epoch 1/3 ' "$(out_of "$j")" || { fail "job $j: no epoch logged after 300 s"; show_out "$j"; return 1; }
  scancel "$@" "$j"
}
# final_ckpt J: the newest checkpoint in the job's run directory.
final_ckpt() { find "$T/runs/$(job_field "$1" JobName)-$1" -name 'ckpt-*.h5' | sort | tail -n 1; }
# resumed_equal J: (b) and (d): stopped by the signal, requeued once, resumed, equal to (a).
resumed_equal() {
  local j=$1 what=$2 out
  out=$(out_of "$j")
  if [ "$(job_field "$j" ExitCode)" = 0:0 ] && [ "$(job_field "$j" Restarts)" = 1 ] &&
     grep -q 'stopped by a signal' "$out" && grep -q 'resnet_ddp exited with code 4' "$out" &&
     grep -q "requeued job $j" "$out" && grep -q "job $j restart 1 " "$out" &&
     grep -q "resumed from $T/runs/[^/]*-$j/ckpt-" "$out" && tail -n 1 "$out" | grep -q 'exited with code 0'; then
    ok "$what: stopped, requeued itself, $(grep -o 'resumed from [^:]*' "$out" | sed "s|$T/runs/||")"
  else
    fail "$what: expected exit 4, a requeue, restart 1, a resume and exit 0"; show_out "$j" 40
  fi
  if [ -n "$REF" ] && "$CMP" "$REF" "$(final_ckpt "$j")" > "$T/cmp.out" 2>&1; then
    ok "$what: final checkpoint equals the uninterrupted run's bit for bit"
  else
    fail "$what: final checkpoint differs from (a)'s"; sed 's/^/    /' "$T/cmp.out"
  fi
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
  resumed_equal "$JD" "(d) mpirun job preempted through the batch shell"
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

echo "timings (s): (a) $TA  (b) $TB  (c) $TC  (d) $TD  (e) $TE  total $SECONDS"
if [ "$FAILS" -ne 0 ]; then echo "$FAILS check(s) failed, $PASSES passed"; exit 1; fi
echo "all $PASSES checks passed"
