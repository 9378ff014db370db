#!/usr/bin/env bash
# GPU check of the CUDA backend: runs the cuda tests (every op against the CPU backend, the whole random
# model) and the FP8 GEMM benchmark from a build directory, then the NCCL expert-parallel transport's tests
# and its all-to-all benchmark (DeepEP's sizes), and prints a short summary.
#   scripts/gpu_check.sh BUILD_DIR [bench iterations]
# BUILD_DIR needs only tests/cuda/moert_cuda_test and tests/cuda/moert_cuda_bench (GoogleTest and the CUDA
# runtime are linked in statically; cuBLASLt comes from the CUDA toolkit on the machine), and for the NCCL
# part tests/cuda/moert_nccl_test and tests/cuda/moert_nccl_bench (libnccl.so.2 from the machine; skipped
# when they were not built). Full logs go to $OUT (or /tmp) as cuda_test.log, cuda_bench.log, nccl_test.log
# and nccl_bench.log. The device tool sends at most 64 MiB of working tree: run scripts/device_tree.sh slim
# here first (the test data and shipped model stay behind; these checks do not read them).
set -u
B=${1:?usage: scripts/gpu_check.sh BUILD_DIR [bench iterations]}
ITERS=${2:-20}
LOG=${OUT:-/tmp}
T=$B/tests/cuda/moert_cuda_test
X=$B/tests/cuda/moert_cuda_bench
NT=$B/tests/cuda/moert_nccl_test
NB=$B/tests/cuda/moert_nccl_bench
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# step TITLE LOG FILTER CMD...: runs CMD with its output in $LOG/LOG, shows what FILTER (a command reading
# that log) picks out, prints and returns CMD's exit code.
step() {
  local title=$1 log=$LOG/$2 filter=$3
  shift 3
  echo "== $title"
  "$@" >"$log" 2>&1
  local rc=$?
  eval "$filter" <"$log"
  echo "exit code: $rc"
  return $rc
}

rc=0
step "cuda tests ($T)" cuda_test.log \
  'grep -E "^\[  (PASSED|FAILED|SKIPPED) |^gemm paths|^model |Failure|relative|Expected|Which is|rel_err" | head -80' \
  "$T" --gtest_color=no || rc=1
step "FP8 GEMM bench ($X, $ITERS iterations)" cuda_bench.log 'tail -60' "$X" "$ITERS" || rc=1
if [ -x "$NT" ] && [ -x "$NB" ]; then
  step "NCCL transport tests ($NT)" nccl_test.log \
    'grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|Expected|Which is|needs [0-9]" | head -40' \
    "$NT" --gtest_color=no || rc=1
  step "NCCL all-to-all bench ($NB, $ITERS iterations)" nccl_bench.log 'tail -20' "$NB" "$ITERS" || rc=1
else
  echo "== NCCL transport: $NT / $NB not built, skipped"
fi
exit $rc
