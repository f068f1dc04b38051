# Eight ranks on two cores (oversubscribed): a few steps of the full ResNet-18, global
# batch 256 (32 per rank), finish cleanly and leave a checkpoint.
source "$(dirname "$0")/lib.bash"
start=$SECONDS
out=$(mpirun --oversubscribe -np 8 "$BIN" configs/r18-28.ini train.max_steps=3 data.train_limit=2048 \
      data.test_limit=256 train.threads=1 checkpoint.dir="$TMP/ck" 2>&1); rc=$?
printf '%s\n' "$out" | grep -E "^# data|^epoch|^# throughput|error"
[ "$rc" -eq 0 ] || { echo "FAIL: exit code $rc"; FAILS=$((FAILS+1)); }
printf '%s\n' "$out" | grep -q "8 rank(s) x 1 thread(s)" || { echo "FAIL: not 8 ranks"; FAILS=$((FAILS+1)); }
printf '%s\n' "$out" | grep -q "stopped at step 3/8" || { echo "FAIL: did not run 3 steps"; FAILS=$((FAILS+1)); }
[ -f "$TMP/ck/ckpt-0000000003.h5" ] || { echo "FAIL: no checkpoint"; FAILS=$((FAILS+1)); }
echo "took $((SECONDS - start)) s"
finish
