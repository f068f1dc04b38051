# Bad config and data files: one clear line naming the file, the field and the
# expected value, exit code 2, nothing written.
source "$(dirname "$0")/lib.bash"

printf '[train]\nbatch_size = -4\n' > "$TMP/neg.ini"
expect_fail 2 "$TMP/neg.ini:2: \[train\] batch_size.*expected an integer in 1\.\." -- "$BIN" "$TMP/neg.ini"
printf '[train]\nlr = 0.05\n[data]\nresize = 7\n' > "$TMP/resize.ini"
expect_fail 2 "$TMP/resize.ini:4: \[data\] resize.*expected" -- "$BIN" "$TMP/resize.ini"
printf '[data]\naugment_erase = 1.5\n' > "$TMP/erase.ini"
expect_fail 2 "$TMP/erase.ini:2: \[data\] augment_erase.*expected a number >= 0 and <= 1" -- "$BIN" "$TMP/erase.ini"
expect_fail 2 "override 'data.augment_crop=-1'.*\[data\] augment_crop.*expected an integer in 0\.\.64" -- "$BIN" configs/r18-28.ini data.augment_crop=-1
printf '[model]\ndepth = 19\n' > "$TMP/depth.ini"
expect_fail 2 "$TMP/depth.ini:2: \[model\] depth.*expected one of 18, 34, 50" -- "$BIN" "$TMP/depth.ini"
printf '[train\nlr = 1\n' > "$TMP/syntax.ini"
expect_fail 2 "$TMP/syntax.ini:1: .*syntax" -- "$BIN" "$TMP/syntax.ini"
printf '[trian]\nlr = 1\n' > "$TMP/section.ini"
expect_fail 2 "$TMP/section.ini:2: unknown section \[trian\]" -- "$BIN" "$TMP/section.ini"

# Data: missing directory, truncated gzip, labels out of range.
expect_fail 2 "$TMP/nodata/train-images-idx3-ubyte.gz' not found" -- "$BIN" configs/r18-28.ini "data.dir=$TMP/nodata"
mkdir -p "$TMP/trunc"
src=/usr/share/datasets/fashion-mnist
if [ -d "${RESNET_DDP_DATA:-$src}" ]; then src=${RESNET_DDP_DATA:-$src}; fi
cp "$src"/*.gz "$TMP/trunc/"
head -c 100000 "$src/train-images-idx3-ubyte.gz" > "$TMP/trunc/train-images-idx3-ubyte.gz"
expect_fail 2 "$TMP/trunc/train-images-idx3-ubyte.gz: .*(truncated|corrupt)" -- "$BIN" configs/r18-28.ini "data.dir=$TMP/trunc"
expect_fail 2 "label [0-9]+ at index [0-9]+ is not below \[model\] num_classes = 5" -- "$BIN" configs/r18-28.ini model.num_classes=5
finish
