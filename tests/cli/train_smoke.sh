# A short real training run end to end: 1 epoch on 512 images of the real data set
# with a narrow ResNet-18, single process. Checks the per-epoch line and exit code 0.
source "$(dirname "$0")/lib.bash"

out=$("$BIN" configs/r18-28.ini train.epochs=2 data.train_limit=512 data.test_limit=256 \
      model.width=8 train.batch_size=64 train.threads=2 checkpoint.dir="$TMP/ck" 2>&1); rc=$?
printf '%s\n' "$out" | tail -n 6
[ "$rc" -eq 0 ] || { echo "FAIL: exit code $rc"; FAILS=$((FAILS+1)); }
printf '%s\n' "$out" | grep -Eq "^epoch 2/2  train loss [0-9.]+  train acc [0-9.]+  test loss [0-9.]+  test acc [0-9.]+  [0-9.]+ img/s  [0-9.]+ s$" \
  || { echo "FAIL: no epoch line"; FAILS=$((FAILS+1)); }
printf '%s\n' "$out" | grep -q "11178378" && { echo "FAIL: width 8 should not have the full parameter count"; FAILS=$((FAILS+1)); }
[ -f "$TMP/ck/metrics.h5" ] && ls "$TMP"/ck/ckpt-*.h5 > /dev/null 2>&1 \
  || { echo "FAIL: no checkpoint or metrics in $TMP/ck"; FAILS=$((FAILS+1)); }
finish
