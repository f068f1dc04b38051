# Hang guard: one rank of a 2-rank job is frozen (SIGSTOP) mid-training; the other,
# waiting in a collective, must report which collective, phase and step it is stuck
# in after [dist] timeout seconds, and the whole job must end (no hang).
source "$(dirname "$0")/lib.bash"
mpirun --oversubscribe -np 2 "$BIN" configs/r18-28.ini model.width=8 train.batch_size=32 \
  data.test_limit=64 train.threads=1 dist.timeout=5 checkpoint.dir="$TMP/ck" > "$TMP/out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$TMP/ck/metrics.h5" ] && break; sleep 0.1; done
sleep 1
victim=$(pgrep -P "$pid" | tail -n 1)
start=$SECONDS
kill -STOP "$victim"
for _ in $(seq 60); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done
took=$((SECONDS - start))
if kill -0 "$pid" 2> /dev/null; then
  echo "FAIL: job still running ${took}s after a rank froze"; kill -KILL "$pid" "$victim"; FAILS=$((FAILS+1))
else
  wait "$pid"; rc=$?
  line=$(grep "stuck" "$TMP/out" | head -n 1)
  if [ "$rc" -ne 0 ] && [[ "$line" =~ stuck\ [0-9]+\ s\ in\ MPI_.*during\ .*at\ global\ step\ [0-9]+ ]]; then
    echo "ok: job ended ${took}s after rank 1 froze (exit $rc): $line"
  else echo "FAIL: exit $rc, output:"; sed 's/^/    /' "$TMP/out" | tail -n 8; FAILS=$((FAILS+1)); fi
fi
kill -KILL "$victim" 2> /dev/null
finish
