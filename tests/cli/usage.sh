# Command line: --help, --version, missing/unknown arguments, bad overrides.
source "$(dirname "$0")/lib.bash"

"$BIN" --help | grep -q "usage: resnet_ddp CONFIG.ini" || { echo "FAIL: --help"; FAILS=$((FAILS+1)); }
"$BIN" --version | grep -Eq "^resnet_ddp [0-9]+\.[0-9]+\.[0-9]+$" || { echo "FAIL: --version"; FAILS=$((FAILS+1)); }
expect_fail 2 "missing CONFIG" -- "$BIN"
expect_fail 2 "unknown option '--frobnicate'" -- "$BIN" --frobnicate
expect_fail 2 "cannot (open|read) config file '$TMP/none.ini'" -- "$BIN" "$TMP/none.ini"
expect_fail 2 "override 'train.epochs': expected section.key=value" -- "$BIN" configs/r18-28.ini train.epochs
expect_fail 2 "override 'train.epochs=0'.*\[train\] epochs.*expected an integer in 1\.\." -- "$BIN" configs/r18-28.ini train.epochs=0
expect_fail 2 "unknown key \[train\] epoch" -- "$BIN" configs/r18-28.ini train.epoch=3
finish
