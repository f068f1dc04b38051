# Disk full while writing a checkpoint (simulated with a file-size limit): a clear
# error, no partial file left, the previous checkpoint intact, and resume = auto goes on.
source "$(dirname "$0")/lib.bash"
CMP=${CKPT_COMPARE:?CKPT_COMPARE is set by CTest}
RUN=(configs/r18-28.ini model.width=32 train.batch_size=32 data.train_limit=640 data.test_limit=64
     train.epochs=1 train.threads=2 checkpoint.every_steps=2 checkpoint.dir="$TMP/ck")
"$BIN" "${RUN[@]}" train.max_steps=2 > /dev/null || { echo "FAIL: first run"; exit 1; }
size=$(stat -c %s "$TMP/ck/ckpt-0000000002.h5")
limit_kib=$(( size / 1024 / 2 ))   # half a checkpoint fits
expect_fail 1 "cannot write checkpoint '$TMP/ck/ckpt-0000000004.h5'.*(File too large|No space).*previous checkpoints are kept" -- \
  bash -c "ulimit -f $limit_kib; exec \"\$0\" \"\$@\"" "$BIN" "${RUN[@]}" checkpoint.resume=auto train.max_steps=4
ls "$TMP"/ck/*.tmp > /dev/null 2>&1 && { echo "FAIL: a .tmp file was left behind"; FAILS=$((FAILS+1)); }
"$CMP" "$TMP/ck/ckpt-0000000002.h5" "$TMP/ck/ckpt-0000000002.h5" > /dev/null \
  && echo "ok: the previous checkpoint still verifies" || { echo "FAIL: previous checkpoint damaged"; FAILS=$((FAILS+1)); }
out=$("$BIN" "${RUN[@]}" checkpoint.resume=auto train.max_steps=4 2>&1)
printf '%s\n' "$out" | grep -q "resumed from $TMP/ck/ckpt-0000000002.h5" && [ -f "$TMP/ck/ckpt-0000000004.h5" ] \
  && echo "ok: resume = auto continues from it once space is back" || { echo "FAIL: resume after disk full"; FAILS=$((FAILS+1)); }
finish
