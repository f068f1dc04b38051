# A learning rate far too high: the loss becomes non-finite, training stops with exit
# code 3 and a message naming the step, on every rank, and no checkpoint with
# non-finite values is written: with a checkpoint every step, the last good ones (one
# for each step before the one that diverged, at least one) exist and verify, and
# none exists from the diverged step on.
source "$(dirname "$0")/lib.bash"
CMP=${CKPT_COMPARE:?CKPT_COMPARE is set by CTest}
for ranks in 1 2; do
  dir="$TMP/ck$ranks"
  expect_fail 3 "training diverged: .*(loss is (nan|inf|-nan)|is not finite after).* global step [0-9]+" -- \
    mpirun --oversubscribe -np $ranks "$BIN" configs/r18-28.ini model.width=8 train.batch_size=32 \
    data.train_limit=2000 data.test_limit=64 train.threads=1 train.lr=100 train.momentum=0.9 \
    checkpoint.every_steps=1 checkpoint.keep=1000 checkpoint.dir="$dir" > "$TMP/fail$ranks.out"
  cat "$TMP/fail$ranks.out"
  step=$(grep -oE 'global step [0-9]+' "$TMP/fail$ranks.out" | head -n 1 | grep -oE '[0-9]+$')
  if [ -z "$step" ] || [ "$step" -lt 2 ]; then
    echo "FAIL: $ranks rank(s): diverged at step '${step}', want a step after the first checkpoint"
    FAILS=$((FAILS + 1))
    continue
  fi
  want=""
  for ((s = 1; s < step; s++)); do want+="$(printf 'ckpt-%010d.h5' "$s") "; done
  have=$(cd "$dir" && ls ckpt-*.h5 2>/dev/null | tr '\n' ' ')
  if [ "$have" != "$want" ]; then
    echo "FAIL: $ranks rank(s), diverged at step $step: checkpoints '$have', want '$want'"
    FAILS=$((FAILS + 1))
    continue
  fi
  bad=0
  for f in $want; do
    "$CMP" "$dir/$f" "$dir/$f" > /dev/null || { echo "FAIL: $dir/$f does not verify"; bad=$((bad + 1)); }
  done
  FAILS=$((FAILS + bad))
  [ "$bad" -eq 0 ] && echo "ok: $ranks rank(s): diverged at step $step; checkpoints of steps 1..$((step - 1)) exist and verify, none after"
done
finish
