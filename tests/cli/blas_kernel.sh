# OpenBLAS's kernel (blas_kernel.c). The start-up line names the kernel OpenBLAS itself
# reports (OPENBLAS_VERBOSE=2 makes it print "Core: <name>" each time it installs one),
# and that is the best kernel for this CPU's flags in /proc/cpuinfo. A user-set
# OPENBLAS_CORETYPE is kept; one this CPU cannot execute, or a name OpenBLAS does not
# know, stops the program with one line and exit 2 (not SIGILL), alone and under
# mpirun. RESNET_DDP_TEST_BLAS_FALLBACK=Prescott stands for OpenBLAS falling back on a
# CPU it does not know: the program switches OpenBLAS to the best kernel.
source "$(dirname "$0")/lib.bash"
unset OPENBLAS_CORETYPE RESNET_DDP_TEST_BLAS_FALLBACK
TINY=(configs/r18-28.ini data.train_limit=64 data.test_limit=16 train.batch_size=32 model.width=8
      train.max_steps=1 train.epochs=1 train.progress=false)

flags=" $(grep -m 1 '^flags' /proc/cpuinfo | cut -d: -f2) "
vendor=$(grep -m 1 '^vendor_id' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
has() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
if has avx512f avx512cd avx512bw avx512dq avx512vl; then best=SkylakeX; level='SkylakeX|Cooperlake'
elif has avx2 fma; then
  case $vendor in AuthenticAMD | HygonGenuine) best=Zen ;; *) best=Haswell ;; esac
  level='Haswell|Zen'
elif has avx; then best=Sandybridge
elif has sse4_2; then best=Nehalem
elif has ssse3; then best=Core2
else best=Prescott
fi
level=${level:-$best}
if ! has avx512f; then bad=SkylakeX lacks=avx512f
elif ! has fma4; then bad=Bulldozer lacks=fma4
else bad= lacks=
fi
echo "# CPU $vendor, best kernel $best; $bad needs $lacks, which it lacks"

# expect_kernel PATTERN -- [VAR=value...]: a tiny run succeeds and its '# BLAS:' line
# matches PATTERN and names the kernel OpenBLAS last reported installing.
run=0
expect_kernel() {
  local pattern=$1; shift 2
  run=$((run + 1))
  env OPENBLAS_VERBOSE=2 "$@" "$BIN" "${TINY[@]}" "checkpoint.dir=$TMP/ck$run" > "$TMP/out" 2> "$TMP/err"
  local rc=$? line core
  line=$(grep '^# BLAS:' "$TMP/out")
  core=$(grep -o 'Core: [A-Za-z0-9_]*' "$TMP/err" | tail -n 1 | cut -d' ' -f2)
  if [ "$rc" -ne 0 ] || [[ $line != *"kernel $core:"* ]] || ! grep -Eq -- "$pattern" <<< "$line"; then
    echo "FAIL: '$*' exited $rc; OpenBLAS reported kernel '$core'; start-up line: '$line'"
    echo "    (wanted a line matching: $pattern)"
    sed 's/^/    /' "$TMP/err" | tail -n 5
    FAILS=$((FAILS + 1))
  else
    echo "ok: $line"
  fi
}

expect_kernel "^# BLAS: OpenBLAS [0-9.]+ \([a-zA-Z]+\), kernel ($level): " --
expect_kernel "kernel Prescott: OPENBLAS_CORETYPE=Prescott, set by the user" -- OPENBLAS_CORETYPE=Prescott
expect_kernel "kernel $best: OPENBLAS_CORETYPE=${best,,}, set by the user" -- "OPENBLAS_CORETYPE=${best,,}"
if [ "$best" != Prescott ]; then
  expect_kernel "kernel $best: switched from Prescott, .*which has" -- RESNET_DDP_TEST_BLAS_FALLBACK=Prescott
fi

expect_fail 2 "OPENBLAS_CORETYPE=NoSuchCore: unknown OpenBLAS kernel \(expected one of Prescott, .*$best" -- \
  env OPENBLAS_CORETYPE=NoSuchCore "$BIN" "${TINY[@]}" "checkpoint.dir=$TMP/ck-unknown"
if [ -n "$bad" ]; then
  cant="OPENBLAS_CORETYPE=$bad: this CPU \($vendor family [0-9]+ model [0-9]+\) lacks [a-z0-9_. ]*$lacks[a-z0-9_. ]* that kernel needs \(expected one of Prescott, .*$best"
  expect_fail 2 "$cant" -- env OPENBLAS_CORETYPE=$bad "$BIN" "${TINY[@]}" "checkpoint.dir=$TMP/ck-bad"
  # Every rank finds it before MPI_Init: one line from rank 0, and the job ends at once.
  start=$SECONDS
  expect_fail 2 "$cant" -- env OPENBLAS_CORETYPE=$bad mpirun --oversubscribe -np 2 "$BIN" "${TINY[@]}" \
    "checkpoint.dir=$TMP/ck-bad-mpi"
  if [ $((SECONDS - start)) -gt 10 ]; then
    echo "FAIL: under mpirun it took $((SECONDS - start)) s (limit 10 s)"
    FAILS=$((FAILS + 1))
  fi
else
  echo "skipped: this CPU has both AVX-512 and FMA4; no kernel it cannot run to try"
fi
finish
