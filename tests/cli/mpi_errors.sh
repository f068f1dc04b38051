# Under mpirun an error on any rank stops every rank promptly, with its message once:
# a config error every rank sees, a data directory missing on rank 1 only, and a
# global batch smaller than the number of ranks.
source "$(dirname "$0")/lib.bash"
MPI=(mpirun --oversubscribe -np)

timed_fail() { # max_seconds code pattern -- cmd...
  local max=$1; shift
  local start=$SECONDS
  expect_fail "$@"
  local took=$((SECONDS - start))
  if [ "$took" -gt "$max" ]; then echo "FAIL: took ${took}s (limit ${max}s)"; FAILS=$((FAILS + 1)); fi
}

timed_fail 20 2 "\[train\] epochs: expected an integer in 1\.\." -- "${MPI[@]}" 4 "$BIN" configs/r18-28.ini train.epochs=0
cat > "$TMP/rank1-bad-data.sh" <<'SH'
#!/bin/sh
[ "$OMPI_COMM_WORLD_RANK" = 1 ] && export RESNET_DDP_DATA=/nonexistent/fashion
exec "$@"
SH
chmod +x "$TMP/rank1-bad-data.sh"
timed_fail 20 2 "data file '/nonexistent/fashion/train-images-idx3-ubyte.gz' not found" -- \
  "${MPI[@]}" 2 "$TMP/rank1-bad-data.sh" "$BIN" configs/r18-28.ini model.width=8 "checkpoint.dir=$TMP/ck1"
timed_fail 20 2 "batch_size = 2 is smaller than the 3 ranks" -- \
  "${MPI[@]}" 3 "$BIN" configs/r18-28.ini train.batch_size=2 data.train_limit=100 "checkpoint.dir=$TMP/ck2"
# A checkpoint that does not verify: rank 0 reads it, every rank stops.
"$BIN" configs/r18-28.ini model.width=8 train.batch_size=32 data.train_limit=64 data.test_limit=16 \
  train.epochs=1 "checkpoint.dir=$TMP/ck3" > /dev/null
head -c 5000 "$(ls "$TMP"/ck3/ckpt-*.h5 | tail -n 1)" > "$TMP/cut.h5"
timed_fail 20 2 "resume = $TMP/cut.h5: checkpoint .*cut.h5. is truncated or extended: the header says [0-9]* bytes, the file has 5000" -- \
  "${MPI[@]}" 4 "$BIN" configs/r18-28.ini model.width=8 train.batch_size=32 data.train_limit=64 \
  data.test_limit=16 "checkpoint.dir=$TMP/ck4" "checkpoint.resume=$TMP/cut.h5"
finish
