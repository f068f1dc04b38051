# Shared helpers for the shell tests (sourced, not run by CTest: no .sh name match).
set -uo pipefail
BIN=${RESNET_DDP_BIN:?RESNET_DDP_BIN is set by CTest}
FAILS=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# expect_fail CODE PATTERN -- cmd...: cmd must exit with CODE and print one error
# line on stderr matching PATTERN (grep -E).
expect_fail() {
  local code=$1 pattern=$2; shift 3
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  local errors
  errors=$(printf '%s\n' "$out" | grep -c '^resnet_ddp: error:')
  if [ "$rc" -ne "$code" ] || ! printf '%s\n' "$out" | grep -Eq -- "$pattern" || [ "$errors" -ne 1 ]; then
    echo "FAIL: '$*' exited $rc (want $code), $errors error line(s), output:"
    printf '%s\n' "$out" | sed 's/^/    /'
    echo "    (wanted a line matching: $pattern)"
    FAILS=$((FAILS + 1))
  else
    echo "ok: $(printf '%s\n' "$out" | grep '^resnet_ddp: error:')"
  fi
}

# run_ranks NAME RANKS ARGS...: the program on RANKS ranks with checkpoints in
# $TMP/NAME and no progress line; its output in $out, a non-zero exit counted.
run_ranks() {
  local name=$1 ranks=$2; shift 2
  out=$(mpirun --oversubscribe -np "$ranks" "$BIN" "$@" train.progress=false \
        checkpoint.dir="$TMP/$name" 2>&1) \
    || { echo "FAIL: $name exited non-zero:"; printf '%s\n' "$out" | tail -5; FAILS=$((FAILS + 1)); }
}

finish() {
  if [ "$FAILS" -ne 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
  echo "all checks passed"
}
