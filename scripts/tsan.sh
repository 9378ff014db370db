#!/usr/bin/env bash
# Builds libmoert and the C API and engine tests with ThreadSanitizer (GCC, CPU only) in a separate build
# directory and runs them: the C API suites (C, generation, faults, KV hand-off) and the engine's golden tests
# (continuous batching, concurrent streams, cancel from another thread, KV-budget failures, the prefix cache,
# speculative decoding). Any report fails the run
# (halt_on_error, exitcode 66). No suppressions: moert's CPU kernels use their own thread pool, not libgomp.
#   scripts/tsan.sh      env: TSAN_BUILD_DIR (default build-tsan), TSAN_JOBS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${TSAN_BUILD_DIR:-build-tsan}
JOBS=${TSAN_JOBS:-2}

# GCC, not clang: GCC links its TSan runtime as a shared library (libtsan.so) into libmoert, which links
# with --no-undefined; clang 14's shared TSan runtime (-shared-libsan) crashes at startup on this kernel.
# -O1 keeps the sanitized forward passes fast enough; -g gives the reports their lines.
link="-fsanitize=thread"
# Tests are listed when run (PRE_TEST), not at build time: this script runs the binaries itself.
CC=gcc CXX=g++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOERT_CUDA=OFF \
  -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST \
  -DCMAKE_C_FLAGS_RELEASE="-O1 -g -fsanitize=thread" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g -fsanitize=thread" \
  -DCMAKE_EXE_LINKER_FLAGS="$link" -DCMAKE_SHARED_LINKER_FLAGS="$link" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target moert_capi_test_c moert_capi_generate_tests moert_fault_capi_tests \
  moert_golden_tests moert_capi_kv_handoff_tests moert_ep_tests

export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"

# The canary: a deliberate race built the same way must fail with TSan's exit code, or a pass below would
# mean nothing (flags lost, runtime missing).
cat > "$BUILD/tsan_canary.cpp" <<'CPP'
#include <thread>
int shared = 0;
int main() {
  std::thread t([] { shared = 1; });
  shared = 2;
  t.join();
  return shared == 3;
}
CPP
g++ -std=c++20 -O1 -g $link "$BUILD/tsan_canary.cpp" -o "$BUILD/tsan_canary"
set +e
"$BUILD/tsan_canary" 2>"$BUILD/tsan_canary.log"
canary=$?
set -e
if [ "$canary" -ne 66 ]; then
  echo "tsan.sh: the deliberate race was not reported (exit $canary): ThreadSanitizer is not working" >&2
  exit 1
fi
echo "== canary: the deliberate race is reported (exit 66)"
run() {
  echo "== $*"
  "$@"
}
run "$BUILD/tests/capi/moert_capi_test_c" "$PWD/tests/data"
run "$BUILD/tests/capi/moert_capi_generate_tests"
# The fault catalogue's loads are single-threaded apart from the weight scan and the generation tests.
run "$BUILD/tests/fault/moert_fault_capi_tests" --gtest_filter='CapiFault.*'
run "$BUILD/tests/capi/moert_capi_kv_handoff_tests"
# The engine: continuous batching, the prefix cache's shared pages, speculative decoding's verify and drafts.
run "$BUILD/tests/golden/moert_golden_tests" --gtest_filter='Engine.*:PrefixCacheEngine.*:SpeculativeEngine.*'
# Expert parallelism: in-process ranks as threads, the exchange lane of the two-microbatch overlap, rows
# copied between the ranks' tensors.
run "$BUILD/tests/ep/moert_ep_tests" \
  --gtest_filter='InProcess*:EpLayer.*:EpBatchInvariant.*:EpFaults.*:Fixtures/EpLogits.*tiny_v3_fp8_ep4*'
echo "tsan.sh: no data races reported"
