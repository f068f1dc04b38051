# Shared by the SLURM tests (run.sh: one node; multinode.sh: nodes in network
# namespaces): packages, munge, the daemons and their cleanup, the common part of
# slurm.conf, and the job helpers. Source it after setting SRC, BIN and CMP.
# Prints "SKIPPED: reason" and exits 77 when the cluster cannot be made.

skip() { echo "SKIPPED: $*"; exit 77; }

# poll_until SECONDS CMD...: run CMD every 0.2 s until it succeeds (status 0), or
# fail (status 1) once SECONDS have passed.
poll_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
not() { ! "$@"; }

# slurm_prepare: root, the programs, Debian's slurm and munge packages (installed when
# missing), no SLURM_ variables from a surrounding job.
slurm_prepare() {
  [ "$(id -u)" -eq 0 ] || skip "needs root to run a private SLURM cluster"
  for f in "$BIN" "$CMP"; do [ -x "$f" ] || { echo "FAIL: $f is missing (build first)"; exit 1; }; done
  command -v mpirun > /dev/null || { echo "FAIL: mpirun is missing"; exit 1; }
  local need=() pair
  for pair in slurmctld:slurmctld slurmd:slurmd slurm-client:sbatch munge:munged; do
    command -v "${pair#*:}" > /dev/null || need+=("${pair%%:*}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get > /dev/null || skip "SLURM is not installed and there is no apt-get (${need[*]})"
    echo "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y --no-install-recommends "${need[@]}" > /var/tmp/slurm-test-apt.log 2>&1; }
    apt_install || { apt-get update > /dev/null 2>&1 && apt_install; } ||
      skip "could not install ${need[*]} (see /var/tmp/slurm-test-apt.log)"
  fi
  command -v runuser > /dev/null || skip "runuser is missing (util-linux)"
  id munge > /dev/null 2>&1 || skip "there is no munge user"
  # A test run inside a SLURM job must not talk to that job's cluster.
  local v
  for v in $(compgen -e SLURM_ || true); do unset "$v"; done
}

# slurm_tmpdir: the cluster's directory in $T. Under /var/tmp, not /tmp, because
# multinode.sh gives every node a /tmp of its own.
slurm_tmpdir() {
  T=$(mktemp -d /var/tmp/slurm-test.XXXXXX)
  chmod 755 "$T"  # the munge user must reach its socket below
  mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log" "$T/out" "$T/runs"
}

PIDS=()          # daemons, stopped in reverse order on exit
CLEANUP_HOOK=:   # a test's own cleanup, run after the daemons stop
slurm_cleanup() {
  local rc=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -s "$T/slurmctld.pid" ]; then
    # Cancel what is left (after a failure) so no job outlives its slurmd.
    local left
    left=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$left" ]; then
      # shellcheck disable=SC2086  # one id per word
      scancel $left 2>/dev/null || true
      poll_until 30 no_jobs_queued || true
    fi
  fi
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill "$pid" 2>/dev/null || continue
    poll_until 10 not kill -0 "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  $CLEANUP_HOOK
  [ -n "${T:-}" ] && rm -rf "$T"
  exit "$rc"
}
trap slurm_cleanup EXIT
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
  poll_until 10 test -s "$1" || cluster_fail "no pid file $1"
  PIDS+=("$(cat "$1")")
}

# start_munge: munged with its own key and socket, as the munge user (as Debian's
# service runs it).
start_munge() {
  chown munge:munge "$T/munge"
  dd if=/dev/urandom of="$T/munge/munge.key" bs=1 count=1024 status=none
  chown munge:munge "$T/munge/munge.key"
  chmod 0400 "$T/munge/munge.key"
  runuser -u munge -- munged --key-file="$T/munge/munge.key" --socket="$T/munge/munge.socket" \
    --pid-file="$T/munge/munged.pid" --log-file="$T/munge/munged.log" \
    --seed-file="$T/munge/munged.seed" || cluster_fail "munged did not start"
  pid_of "$T/munge/munged.pid"
}

# free_ports ADDR: sets PORT to the first of two free ports at ADDR (a real slurmctld
# on this machine would hold 6817).
free_ports() {
  PORT=16817
  while (exec 3<> "/dev/tcp/$1/$PORT") 2>/dev/null || (exec 3<> "/dev/tcp/$1/$((PORT + 1))") 2>/dev/null; do
    PORT=$((PORT + 2))
    [ "$PORT" -lt 16917 ] || cluster_fail "no free port pair in 16817..16917"
  done
}

# write_conf CONTROLLER NODE-LINES PARTITION-NODES: $SLURM_CONF for a cluster whose
# slurmctld is CONTROLLER (SlurmctldHost syntax); %n in the slurmd paths is the node.
write_conf() {
  export SLURM_CONF=$T/slurm.conf
  cat > "$SLURM_CONF" <<EOF
ClusterName=resnetci
SlurmctldHost=$1
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
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
SlurmdSpoolDir=$T/spool/%n
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.%n.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.%n.log
${SLURM_CONF_EXTRA:-}
$2
PartitionName=ci Nodes=$3 Default=YES MaxTime=INFINITE State=UP
EOF
}

start_slurmctld() {
  slurmctld -c -f "$SLURM_CONF" || cluster_fail "slurmctld did not start"
  pid_of "$T/slurmctld.pid"
}

# wait_idle N: until sinfo shows N idle nodes.
nodes_idle() { [ "$(sinfo -h -o '%D %T' 2>/dev/null)" = "$1 idle" ]; }
wait_idle() {
  poll_until 60 nodes_idle "$1" || cluster_fail "the $1 node(s) are not idle: $(sinfo -h -o '%D %T %E' 2>&1)"
}

# ---- jobs ----------------------------------------------------------------------------
FAILS=0 PASSES=0
ok() { echo "ok: $*"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
out_of() { echo "$T/out/$1.out"; }
show_out() { sed 's/^/    /' "$(out_of "$1")" | grep -v '^    #   ' | tail -n "${2:-25}"; }
job_field() { scontrol show job -o "$1" 2>/dev/null | grep -o "$2=[^ ]*" | cut -d= -f2; }
# job_is J FIELD VALUE: whether scontrol shows the job's FIELD as VALUE.
job_is() { [ "$(job_field "$1" "$2")" = "$3" ]; }
no_jobs_queued() { [ -z "$(squeue -h -o %i 2>/dev/null || true)" ]; }
# job_state_is J STATE: the job is in STATE, or has left the queue for STATE=gone.
job_state_is() {
  local st
  st=$(squeue -h -j "$1" -o %T 2>/dev/null || true)
  if [ "$2" = gone ]; then [ -z "$st" ]; else [ "$st" = "$2" ]; fi
}
# wait_for J STATE SECONDS: until the job reaches STATE (or is gone, for STATE=gone).
wait_for() { poll_until "$3" job_state_is "$1" "$2"; }
# run_to_end J: wait for the job to finish; prints how long it took.
run_to_end() {
  local t0=$SECONDS
  wait_for "$1" gone 600 || { fail "job $1 did not finish in 600 s ($(squeue -h -j "$1" -o '%T %r'))"; return 1; }
  echo "    job $1 ($(job_field "$1" JobName)) ended after $((SECONDS - t0)) s: $(job_field "$1" JobState)," \
       "exit code $(job_field "$1" ExitCode), $(job_field "$1" Restarts) restart(s)"
}
# wait_epoch J K OF: until the job has logged epoch K of OF (300 s at most).
wait_epoch() {
  wait_for "$1" RUNNING 300 || { fail "job $1 never started"; return 1; }
  poll_until 300 grep -qs "^epoch $2/$3 " "$(out_of "$1")" && return 0
  fail "job $1: no epoch $2 logged after 300 s"; show_out "$1"; return 1
}
# final_ckpt J: the newest checkpoint in the job's run directory.
final_ckpt() { { find "$T/runs/$(job_field "$1" JobName)-$1" -name 'ckpt-*.h5' 2> /dev/null || true; } | sort | tail -n 1; }
# resumed_equal J WHAT [STEP]: stopped by a signal, requeued once, resumed, equal to
# $REF; the rerun trained in step J.STEP (default 1: r18.sbatch spends step 0 on an
# empty step; "" when the launcher starts the ranks without a step).
resumed_equal() {
  local j=$1 what=$2 step=${3-1} out in_step=""
  out=$(out_of "$j")
  if [ -n "$step" ] && grep -qs "launch task StepId=$j\.$step " "$T"/log/slurmd.*.log; then
    in_step="reran in step $j.$step, "
  fi
  if [ "$(job_field "$j" ExitCode)" = 0:0 ] && [ "$(job_field "$j" Restarts)" = 1 ] &&
     { [ -z "$step" ] || [ -n "$in_step" ]; } &&
     grep -q 'stopped by a signal' "$out" && grep -q 'resnet_ddp exited with code 4' "$out" &&
     grep -q "requeued job $j" "$out" && grep -q "job $j restart 1 " "$out" &&
     grep -q "resumed from $T/runs/[^/]*-$j/ckpt-" "$out" && tail -n 1 "$out" | grep -q 'exited with code 0'; then
    ok "$what: stopped, requeued itself, ${in_step}$(grep -o 'resumed from [^:]*' "$out" | sed "s|$T/runs/||")"
  else
    fail "$what: expected exit 4, a requeue, restart 1, a resume${step:+ in step $j.$step} and exit 0"
    show_out "$j" 40
  fi
  same_as_ref "$j" "$what"
}
# same_as_ref J WHAT: the job's final checkpoint equals $REF bit for bit.
same_as_ref() {
  if [ -n "${REF:-}" ] && "$CMP" "$REF" "$(final_ckpt "$1")" > "$T/cmp.out" 2>&1; then
    ok "$2: final checkpoint equals the reference run's bit for bit"
  else
    fail "$2: final checkpoint differs from the reference run's"; sed 's/^/    /' "$T/cmp.out"
  fi
}

# report TIMINGS...: the cases' times, then the verdict (exit 1 on any failure).
report() {
  echo "timings (s): $*  total $SECONDS"
  if [ "$FAILS" -ne 0 ]; then echo "$FAILS check(s) failed, $PASSES passed"; exit 1; fi
  echo "all $PASSES checks passed"
}
