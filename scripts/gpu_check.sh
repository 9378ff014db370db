#!/usr/bin/env bash
# GPU check of the CUDA backend, for a session with a lent GPU (the device tool's `run`):
#   scripts/gpu_check.sh BUILD_DIR [bench iterations]
# 1. ldd: every library the binaries need is found on the GPU machine (fails early, naming the missing one);
# 2. each test suite in its own process under a time-out (the ops against the CPU backend, the whole random
#    model, the fixtures' golden logits (tests/data's V3 and V2 fixtures, those carried), bf16 activations
#    (ops and model), MTP speculation, the NCCL transport), printing each test's seed and errors;
# 3. the benchmarks: the model at DeepSeek-V3's width (decode ms/step at batch 1-128 with 1024 tokens of
#    context, prefill tokens/s, per-op times, MLA decode bandwidth; bench/moert_v3_width_bench, when carried),
#    the FP8 GEMMs, NCCL all-to-all at DeepEP's sizes, and the host CPU's AMX GEMM where it has AMX
#    (tests/kernels' GemmFp8Act, when that binary was carried);
# then a summary table. Full logs go to $OUT (or /tmp): ldd.log, <step>.log. Whole run: < 9 minutes on an
# H100/H200. BUILD_DIR needs tests/cuda/{moert_cuda_test,moert_cuda_bench,moert_nccl_test,moert_nccl_bench}
# (GoogleTest and cudart linked statically; cuBLASLt and NCCL from the machine). The device tool sends at
# most 64 MiB of working tree: run scripts/device_tree.sh slim and scripts/device_pack.sh BUILD_DIR here
# first (then BUILD_DIR is device-pack, and the fixtures are carried by name).
set -u
B=${1:?usage: scripts/gpu_check.sh BUILD_DIR [bench iterations]}
ITERS=${2:-20}
LOG=${OUT:-/tmp}
mkdir -p "$LOG"
T=$B/tests/cuda/moert_cuda_test
X=$B/tests/cuda/moert_cuda_bench
NT=$B/tests/cuda/moert_nccl_test
NB=$B/tests/cuda/moert_nccl_bench
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
         /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

declare -a SUMMARY
# step NAME TIMEOUT_S CMD...: runs CMD under a time-out with its output in $LOG/NAME.log, shows the lines
# worth reading, records the result.
step() {
  local name=$1 limit=$2
  shift 2
  local log=$LOG/$name.log t0=$SECONDS
  echo "== $name: $* (time-out ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  local rc=$?
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[ seed|^gemm paths|^model |^bf16 |^golden |^decode step|^mixed step|^EP over|^speculation on cuda|Failure|Expected|Which is|rel_err|error" "$log" | head -60
  local what=ok
  [ $rc -ne 0 ] && what="FAILED (exit $rc)"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && what="TIMED OUT after ${limit}s"
  SUMMARY+=("$(printf '%-22s %-24s %4ds' "$name" "$what" $((SECONDS - t0)))")
  return $rc
}

rc=0
echo "== ldd"
missing=0
for bin in "$T" "$X" "$NT" "$NB"; do
  [ -x "$bin" ] || { echo "missing binary: $bin"; missing=1; continue; }
  ldd "$bin" >>"$LOG/ldd.log" 2>&1
  if ldd "$bin" | grep -q "not found"; then
    echo "$bin: $(ldd "$bin" | grep "not found" | tr -s ' \t' ' ' | paste -sd ';')"
    missing=1
  fi
done
if [ $missing -ne 0 ]; then
  echo "libraries or binaries missing: stopping before the tests (see $LOG/ldd.log)"
  exit 2
fi

step cuda_ops 150 "$T" --gtest_color=no --gtest_filter='CudaOps.*:CudaCache.*' || rc=1
step cuda_model 200 "$T" --gtest_color=no --gtest_filter='CudaModel.*' || rc=1
# The fixtures' reference logits (transformers fp32) on CUDA: fp32, the bf16 defaults, FP8 activations.
step cuda_golden 150 "$T" --gtest_color=no --gtest_filter='Fixtures/CudaGolden.*:CudaGoldenFp8.*' || rc=1
step cuda_bf16 200 "$T" --gtest_color=no --gtest_filter='CudaBf16Ops.*:CudaBf16Model.*' || rc=1
# MTP speculation on cuda: greedy tokens the same with drafts, and a step with a draft against a plain one.
step cuda_speculative 150 "$T" --gtest_color=no --gtest_filter='CudaSpeculative.*' || rc=1
step nccl_test 90 "$NT" --gtest_color=no || rc=1
step gemm_bench 90 "$X" "$ITERS" || rc=1
# The model at V3's width (a 27 GB random FP8 checkpoint written to /dev/shm on every core, then loaded).
V=$B/bench/moert_v3_width_bench
if [ -x "$V" ]; then
  step v3_width 300 "$V" --backend cuda || rc=1
  grep -E "^(wrote|model:|streaming|prefill [12] x|decode batch [0-9]+ context|mla decode)" "$LOG/v3_width.log"
fi
# The host CPU's AMX tiles (the FP8-activation prefill GEMM: AMX-BF16; the q4 prefill GEMM: AMX-INT8), where
# it has them: checked against the portable reference or the int8 math and their scalar model (the first
# real runs of those kernels).
K=$B/tests/kernels/moert_kernels_test
if [ -x "$K" ]; then
  step cpu_amx 90 "$K" --gtest_color=no --gtest_filter='GemmFp8Act.*:GemmQ4Prefill.*' || rc=1
  grep -E "^avx512_bf16|^avx512_vnni|tiles not usable" "$LOG/cpu_amx.log"
fi
D=$B/bench/moert_decode_bw_bench
if [ -x "$D" ]; then  # prefill GEMMs per CPU matrix path (AMX, AVX-512-BF16, VNNI) against the fp32 kernels
  step cpu_prefill_gemm 90 "$D" --threads "$(nproc)" --mats 8 --rounds 5 --prefill-m 512 --q4-model 0 || rc=1
  grep -E "^fp8-activation|^q4 prefill|^  (fp32-panel|vnni-int8|amx-int8)" "$LOG/cpu_prefill_gemm.log"
fi
step nccl_bench 60 "$NB" "$ITERS" || rc=1

echo
echo "== summary"
printf '%-22s %-24s %5s\n' step result time
for line in "${SUMMARY[@]}"; do echo "$line"; done
exit $rc
