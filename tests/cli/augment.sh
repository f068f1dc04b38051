# Training with every augmentation on ([data] augment_*): a short run exits 0, and with
# micro-shards (bit-identical for any number of ranks) 2 ranks end with the same
# weights as 1 rank, since every sample is augmented as a function of (seed, epoch,
# index) alone; the same run without augmentation ends elsewhere.
source "$(dirname "$0")/lib.bash"
CMP=${CKPT_COMPARE:?CKPT_COMPARE is set by CTest}
run() { # name ranks extra-args...
  run_ranks "$1" "$2" configs/r18-28.ini model.width=8 train.batch_size=32 \
    data.train_limit=256 data.test_limit=64 train.max_steps=3 train.threads=1 \
    dist.shard_size=16 "${@:3}"
}
AUG=(data.augment_crop=2 data.augment_flip=true data.augment_erase=0.5)
ck=ckpt-0000000003.h5
run aug1 1 "${AUG[@]}"
printf '%s\n' "$out" | grep -q "^#   augment_erase = 0.5$" \
  || { echo "FAIL: the resolved config does not show augment_erase = 0.5"; FAILS=$((FAILS + 1)); }
run aug2 2 "${AUG[@]}"
run plain1 1
"$CMP" "$TMP/aug1/$ck" "$TMP/aug2/$ck" \
  || { echo "FAIL: augmented training differs between 1 and 2 ranks"; FAILS=$((FAILS + 1)); }
"$CMP" "$TMP/aug1/$ck" "$TMP/plain1/$ck" > /dev/null \
  && { echo "FAIL: augmentation did not change training"; FAILS=$((FAILS + 1)); }
finish
