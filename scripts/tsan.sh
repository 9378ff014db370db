#!/usr/bin/env bash
# Builds libmoert and the C API and engine tests with ThreadSanitizer (clang, CPU only) in a separate build
# directory and runs them: the C API suites (C, generation, faults) and the engine's golden tests (continuous
# batching, concurrent streams, cancel from another thread, KV-budget failures). Any report fails the run
# (halt_on_error, exitcode 66). No suppressions: moert's CPU kernels use their own thread pool, not libgomp.
#   scripts/tsan.sh      env: TSAN_BUILD_DIR (default build-tsan), TSAN_JOBS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${TSAN_BUILD_DIR:-build-tsan}
JOBS=${TSAN_JOBS:-2}

if ! command -v clang++ >/dev/null 2>&1; then
  echo "tsan.sh: clang++ not found (scripts/install-deps.sh installs clang)" >&2
  exit 1
fi

# -O1 keeps the sanitized forward passes fast enough; -g gives the reports their lines.
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOERT_CUDA=OFF \
  -DCMAKE_C_FLAGS_RELEASE="-O1 -g -fsanitize=thread" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g -fsanitize=thread" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target moert_capi_test_c moert_capi_generate_tests moert_fault_capi_tests \
  moert_golden_tests

export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
run() {
  echo "== $*"
  "$@"
}
run "$BUILD/tests/capi/moert_capi_test_c" "$PWD/tests/data"
run "$BUILD/tests/capi/moert_capi_generate_tests"
# The fault catalogue's loads are single-threaded apart from the weight scan and the generation tests.
run "$BUILD/tests/fault/moert_fault_capi_tests" --gtest_filter='CapiFault.*'
run "$BUILD/tests/golden/moert_golden_tests" --gtest_filter='Engine.*'
echo "tsan.sh: no data races reported"
