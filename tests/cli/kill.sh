# SIGKILL at the worst moments: during a checkpoint write (the previous checkpoint
# stays intact and resume = auto continues from it, bit-exactly), and mid-epoch (the
# metrics log stays readable with h5dump and the resumed run appends to it).
source "$(dirname "$0")/lib.bash"
CMP=${CKPT_COMPARE:?CKPT_COMPARE is set by CTest}
# Full-width ResNet-18: a 130 MB checkpoint takes long enough to be caught writing.
RUN=(configs/r18-28.ini data.train_limit=640 data.test_limit=64 train.batch_size=64 train.epochs=1
     train.threads=2 checkpoint.every_steps=1 checkpoint.keep=2)

"$BIN" "${RUN[@]}" checkpoint.dir="$TMP/ref" > /dev/null || { echo "FAIL: reference run"; exit 1; }

"$BIN" "${RUN[@]}" checkpoint.dir="$TMP/k" > /dev/null 2>&1 &
pid=$!
caught=""
for _ in $(seq 2000); do   # wait until a checkpoint is being written after a complete one
  if ls "$TMP"/k/ckpt-*.h5 > /dev/null 2>&1 && ls "$TMP"/k/*.tmp > /dev/null 2>&1; then
    kill -KILL "$pid"; caught=$(ls "$TMP"/k/*.tmp); break
  fi
  sleep 0.005
done
wait "$pid" 2> /dev/null
if [ -z "$caught" ]; then echo "FAIL: never caught a checkpoint being written"; FAILS=$((FAILS+1)); finish; fi
echo "killed while writing $(basename "$caught")"
out=$("$BIN" "${RUN[@]}" checkpoint.dir="$TMP/k" checkpoint.resume=auto 2>&1); rc=$?
printf '%s\n' "$out" | grep -E "resumed from|skipping"
[ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -q "resumed from" || { echo "FAIL: resume after kill (rc $rc)"; FAILS=$((FAILS+1)); }
if "$CMP" "$(ls "$TMP"/ref/ckpt-*.h5 | tail -n 1)" "$(ls "$TMP"/k/ckpt-*.h5 | tail -n 1)"; then
  echo "ok: resumed after the kill, final state equals the uninterrupted run"
else echo "FAIL: resumed run differs"; FAILS=$((FAILS+1)); fi

# Metrics after a kill mid-epoch: readable by h5dump.
SLOW=(configs/r18-28.ini data.test_limit=64 model.width=8 train.batch_size=32 train.threads=1
      checkpoint.every_steps=300)
"$BIN" "${SLOW[@]}" checkpoint.dir="$TMP/m" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do ls "$TMP"/m/ckpt-*.h5 > /dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5
kill -KILL "$pid"; wait "$pid" 2> /dev/null
if h5dump -d /steps/loss "$TMP/m/metrics.h5" > "$TMP/dump.txt" 2>&1; then
  rows=$(sed -n 's/.*DATASPACE  SIMPLE { ( \([0-9]*\) ).*/\1/p' "$TMP/dump.txt")
  if [ "${rows:-0}" -ge 300 ]; then echo "ok: h5dump reads the killed run's metrics: $rows step rows"
  else echo "FAIL: only ${rows:-0} step rows survived (expected >= 300, flushed before the checkpoint)"; FAILS=$((FAILS+1)); fi
else echo "FAIL: h5dump after kill"; head "$TMP/dump.txt"; FAILS=$((FAILS+1)); fi
finish
