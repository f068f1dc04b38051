#!/usr/bin/env bash
# The unit tests (one executable per module), the small model's data-parallel
# equivalence tests and the fuzz-corpus replays (CTest label "sanitize"), rebuilt with AddressSanitizer + UndefinedBehaviorSanitizer
# (RESNET_DDP_SANITIZE=ON) in <build>/sanitize and run there. Any sanitizer report
# fails the test (UBSan is built with -fno-sanitize-recover, LSan fails the process).
set -euo pipefail
src=${RESNET_DDP_SOURCE:?set by CTest}
out=${1:?usage: run.sh BUILD_DIR}
cmake -S "$src" -B "$out" -DRESNET_DDP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Release -DRESNET_DDP_WERROR=ON > "$out.configure.log"
cmake --build "$out" -j "$(nproc)" > "$out.build.log" 2>&1 || { tail -n 30 "$out.build.log"; exit 1; }
ctest --test-dir "$out" --output-on-failure -L sanitize
