#!/usr/bin/env bash
# GPU check of the CUDA backend: runs the cuda tests (every op against the CPU backend, the whole random
# model) and the FP8 GEMM benchmark from a build directory, then prints a short summary.
#   scripts/gpu_check.sh BUILD_DIR [bench iterations]
# BUILD_DIR needs only tests/cuda/moert_cuda_test and tests/cuda/moert_cuda_bench (GoogleTest and the CUDA
# runtime are linked in statically; cuBLASLt comes from the CUDA toolkit on the machine). Full logs go to
# $OUT (or /tmp) as cuda_test.log and cuda_bench.log.
set -u
B=${1:?usage: scripts/gpu_check.sh BUILD_DIR [bench iterations]}
ITERS=${2:-20}
LOG=${OUT:-/tmp}
T=$B/tests/cuda/moert_cuda_test
X=$B/tests/cuda/moert_cuda_bench
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== cuda tests ($T)"
"$T" --gtest_color=no >"$LOG/cuda_test.log" 2>&1
test_rc=$?
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^gemm paths|^model |Failure|relative|Expected|Which is|rel_err" "$LOG/cuda_test.log" | head -80
echo "tests exit code: $test_rc"

echo "== FP8 GEMM bench ($X, $ITERS iterations)"
"$X" "$ITERS" >"$LOG/cuda_bench.log" 2>&1
bench_rc=$?
cat "$LOG/cuda_bench.log" | tail -60
echo "bench exit code: $bench_rc"
[ $test_rc -eq 0 ] && [ $bench_rc -eq 0 ]
