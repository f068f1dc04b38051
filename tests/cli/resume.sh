# Checkpoints and exact resume, end to end through the program:
#  - stopped mid-epoch (max_steps) and at an epoch boundary, then resumed: the final
#    checkpoint and the metrics log equal the uninterrupted run's bit for bit;
#  - saved by 2 ranks, resumed by 1 (micro-shards make ranks interchangeable);
#  - with augmentation, label smoothing, one-cycle, flip evaluation and the weight
#    average on: stopped mid-epoch (on 2 ranks, resumed on 1; on 1), equal to the
#    uninterrupted run, the average included (and the metrics on one rank);
#  - SIGUSR1 mid-run: exit code 4, a checkpoint, and a bit-exact resume;
#  - corrupt or unfitting checkpoints: clear errors, auto falls back to the previous one.
source "$(dirname "$0")/lib.bash"
CMP=${CKPT_COMPARE:?CKPT_COMPARE is set by CTest}
MPI=(mpirun --oversubscribe -np)
RUN=(configs/r18-28.ini data.train_limit=600 data.test_limit=100 model.width=8 train.batch_size=64
     train.epochs=3 train.momentum=0.9 train.weight_decay=0.0005 train.threads=1
     dist.shard_size=16 checkpoint.every_epochs=1 checkpoint.keep=2)

check() { # description, command...
  local what=$1; shift
  if "$@" > "$TMP/check.out" 2>&1; then echo "ok: $what: $(tail -n 1 "$TMP/check.out")"
  else echo "FAIL: $what"; sed 's/^/    /' "$TMP/check.out"; FAILS=$((FAILS + 1)); fi
}
final() { ls "$1"/ckpt-*.h5 | tail -n 1; }

"$BIN" "${RUN[@]}" checkpoint.dir="$TMP/full" > "$TMP/full.log" || { echo "FAIL: reference run"; exit 1; }

# Stopped mid-epoch (step 13 of 10 per epoch) and at the boundary (step 20).
for k in 13 20; do
  "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/stop$k" train.max_steps=$k > /dev/null
  "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/stop$k" checkpoint.resume=auto > "$TMP/resume$k.log"
  grep -q "resumed from $TMP/stop$k/ckpt-00000000$k.h5" "$TMP/resume$k.log" || { echo "FAIL: resume $k did not say which checkpoint"; FAILS=$((FAILS+1)); }
  check "stopped at step $k, resumed: parameters" "$CMP" "$(final "$TMP/full")" "$(final "$TMP/stop$k")"
  check "stopped at step $k, resumed: metrics" "$CMP" --metrics "$TMP/full/metrics.h5" "$TMP/stop$k/metrics.h5"
done

# Saved by 2 ranks, resumed by 1.
"${MPI[@]}" 2 "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/ranks" train.max_steps=15 > /dev/null
"$BIN" "${RUN[@]}" checkpoint.dir="$TMP/ranks" checkpoint.resume=auto > /dev/null
check "saved by 2 ranks, resumed by 1" "$CMP" "$(final "$TMP/full")" "$(final "$TMP/ranks")"

# The recipe options on: augmentation drawn from (seed, epoch, sample), the average in
# the checkpoint.
RECIPE=("${RUN[@]}" data.augment_crop=2 data.augment_flip=true data.augment_erase=0.5
        train.label_smoothing=0.1 train.schedule=onecycle train.nesterov=true
        train.ema_decay=0.9 train.eval_flip=true)
"$BIN" "${RECIPE[@]}" checkpoint.dir="$TMP/recipe" > /dev/null
"${MPI[@]}" 2 "$BIN" "${RECIPE[@]}" checkpoint.dir="$TMP/recipe2" train.max_steps=13 > /dev/null
"$BIN" "${RECIPE[@]}" checkpoint.dir="$TMP/recipe2" checkpoint.resume=auto > /dev/null
check "augmentation and average on, stopped at step 13 on 2 ranks, resumed on 1" \
  "$CMP" "$(final "$TMP/recipe")" "$(final "$TMP/recipe2")"
"$BIN" "${RECIPE[@]}" checkpoint.dir="$TMP/recipe1" train.max_steps=17 > /dev/null
"$BIN" "${RECIPE[@]}" checkpoint.dir="$TMP/recipe1" checkpoint.resume=auto > /dev/null
check "augmentation and average on, stopped at step 17, resumed" \
  "$CMP" "$(final "$TMP/recipe")" "$(final "$TMP/recipe1")"
check "augmentation and average on: metrics" "$CMP" --metrics "$TMP/recipe/metrics.h5" "$TMP/recipe1/metrics.h5"
listing=$(h5dump -n "$(final "$TMP/recipe")" 2>&1)
if grep -q "/ema/7.weight" <<< "$listing"; then echo "ok: the checkpoint holds the average as /ema"
else echo "FAIL: no /ema/7.weight in the checkpoint"; FAILS=$((FAILS+1)); fi

# Preemption: SIGUSR1 to one rank of a 2-rank run; all ranks stop at the next step.
SLOW=("${RUN[@]}" data.train_limit=30000)
"$BIN" "${SLOW[@]}" checkpoint.dir="$TMP/slowref" train.epochs=1 > /dev/null
"${MPI[@]}" 2 "$BIN" "${SLOW[@]}" checkpoint.dir="$TMP/preempt" train.epochs=1 > "$TMP/preempt.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$TMP/preempt/metrics.h5" ] && break; sleep 0.1; done
sleep 1
rank1=$(pgrep -P "$pid" | tail -n 1)   # rank 1 only: rank 0 must learn it from the others
kill -USR1 "$rank1"
wait "$pid"; rc=$?
if [ "$rc" -eq 4 ] && grep -q "stopped by a signal" "$TMP/preempt.log"; then echo "ok: SIGUSR1 -> exit code 4 after a checkpoint"
else echo "FAIL: preempted run exited $rc"; sed 's/^/    /' "$TMP/preempt.log" | tail -n 5; FAILS=$((FAILS+1)); fi
"$BIN" "${SLOW[@]}" checkpoint.dir="$TMP/preempt" train.epochs=1 checkpoint.resume=auto > /dev/null
check "preempted and resumed" "$CMP" "$(final "$TMP/slowref")" "$(final "$TMP/preempt")"

# Bad checkpoints.
good=$(final "$TMP/full")
head -c 3000 "$good" > "$TMP/truncated.h5"
expect_fail 2 "truncated.h5" -- "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/x1" checkpoint.resume="$TMP/truncated.h5"
expect_fail 2 "is ResNet-18 \(width 8, 10 classes\) but the config builds ResNet-34" -- \
  "$BIN" "${RUN[@]}" model.depth=34 checkpoint.dir="$TMP/x2" checkpoint.resume="$good"
expect_fail 2 "expected the same global batch" -- \
  "$BIN" "${RUN[@]}" train.batch_size=32 checkpoint.dir="$TMP/x3" checkpoint.resume="$good"
expect_fail 2 "already holds checkpoints of another run" -- "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/full"
touch "$TMP/afile"
expect_fail 2 "cannot create checkpoint directory '$TMP/afile/sub'" -- "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/afile/sub"
expect_fail 2 "cannot create metrics file '$TMP/nodir/m.h5'" -- "$BIN" "${RUN[@]}" checkpoint.dir="$TMP/x4" metrics.path="$TMP/nodir/m.h5"

# A corrupt newest checkpoint: auto reports it and takes the previous one.
mkdir -p "$TMP/fallback"
"$BIN" "${RUN[@]}" checkpoint.dir="$TMP/fallback" train.max_steps=20 > /dev/null
newest=$(final "$TMP/fallback")
size=$(stat -c %s "$newest")
head -c 4096 /dev/urandom | dd of="$newest" bs=1 seek=$((size / 2)) conv=notrunc status=none
"$BIN" "${RUN[@]}" checkpoint.dir="$TMP/fallback" checkpoint.resume=auto > "$TMP/fallback.log" 2>&1
if grep -q "skipping $newest" "$TMP/fallback.log" && grep -q "resumed from $TMP/fallback/ckpt-0000000010.h5" "$TMP/fallback.log"; then
  echo "ok: auto skipped the corrupt $(basename "$newest") and resumed from step 10"
else echo "FAIL: fallback"; sed 's/^/    /' "$TMP/fallback.log" | head; FAILS=$((FAILS+1)); fi
check "resumed from the older checkpoint, same result" "$CMP" "$(final "$TMP/full")" "$(final "$TMP/fallback")"
finish
