# SIGKILL one rank of a 4-rank job mid-training: the whole job must end within 30 s
# (the launcher sees a rank die and takes the others down), and a restart with
# resume = auto continues from the last checkpoint to the same result as an
# uninterrupted run (micro-shards make the result independent of the rank count).
source "$(dirname "$0")/lib.bash"
CMP=${CKPT_COMPARE:?CKPT_COMPARE is set by CTest}
RUN=(configs/r18-28.ini model.width=8 train.batch_size=64 data.train_limit=12800 data.test_limit=64
     train.epochs=1 train.threads=1 dist.shard_size=16 checkpoint.every_steps=20)
"$BIN" "${RUN[@]}" checkpoint.dir="$TMP/ref" > /dev/null || { echo "FAIL: reference run"; exit 1; }

mpirun --oversubscribe -np 4 "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/k" > "$TMP/out" 2>&1 &
pid=$!
for _ in $(seq 300); do ls "$TMP"/k/ckpt-*.h5 > /dev/null 2>&1 && break; sleep 0.1; done
victim=$(pgrep -P "$pid" | sed -n 3p)   # rank 2
start=$SECONDS
kill -KILL "$victim"
for _ in $(seq 30); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done
took=$((SECONDS - start))
if kill -0 "$pid" 2> /dev/null; then
  echo "FAIL: job still running ${took}s after a rank was killed"; pkill -KILL -P "$pid"; kill -KILL "$pid"; FAILS=$((FAILS+1))
else
  wait "$pid"; rc=$?
  [ "$rc" -ne 0 ] && echo "ok: job ended ${took}s after SIGKILL of rank 2 (mpirun exit $rc)" \
    || { echo "FAIL: mpirun exited 0 after a rank was killed"; FAILS=$((FAILS+1)); }
fi
last=$(ls "$TMP"/k/ckpt-*.h5 | tail -n 1)
out=$(mpirun --oversubscribe -np 4 "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/k" checkpoint.resume=auto 2>&1) \
  || { echo "FAIL: restart"; printf '%s\n' "$out" | tail -n 5; FAILS=$((FAILS+1)); }
printf '%s\n' "$out" | grep -q "resumed from $last" && echo "ok: restarted from $(basename "$last")" \
  || { echo "FAIL: restart did not resume from $last"; FAILS=$((FAILS+1)); }
"$CMP" "$(ls "$TMP"/ref/ckpt-*.h5 | tail -n 1)" "$(ls "$TMP"/k/ckpt-*.h5 | tail -n 1)" > "$TMP/cmp" \
  && echo "ok: final state equals the uninterrupted run: $(cat "$TMP/cmp")" \
  || { echo "FAIL: $(cat "$TMP/cmp")"; FAILS=$((FAILS+1)); }
finish
