# A learning rate far too high: the loss becomes non-finite, training stops with exit
# code 3 and a message naming the step, on every rank, and no checkpoint with
# non-finite values is written (the last good ones stay readable).
source "$(dirname "$0")/lib.bash"
CMP=${CKPT_COMPARE:?CKPT_COMPARE is set by CTest}
for ranks in 1 2; do
  dir="$TMP/ck$ranks"
  expect_fail 3 "training diverged: .*(loss is (nan|inf|-nan)|is not finite after).* global step [0-9]+" -- \
    mpirun --oversubscribe -np $ranks "$BIN" configs/r18-28.ini model.width=8 train.batch_size=32 \
    data.train_limit=2000 data.test_limit=64 train.threads=1 train.lr=100 train.momentum=0.9 \
    checkpoint.every_steps=1 checkpoint.keep=1000 checkpoint.dir="$dir"
  for f in "$dir"/ckpt-*.h5; do
    [ -e "$f" ] || continue
    "$CMP" "$f" "$f" > /dev/null || { echo "FAIL: $f does not verify"; FAILS=$((FAILS+1)); }
  done
  echo "ok: $ranks rank(s): $(ls "$dir"/ckpt-*.h5 2>/dev/null | wc -l) checkpoint(s) before the divergence, all verify"
done
finish
