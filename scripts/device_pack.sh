#!/usr/bin/env bash
# For a session with a lent GPU: copies what scripts/gpu_check.sh runs from BUILD_DIR (a Release build with
# MOERT_CUDA=ON for sm_90a) into device-pack/ (ignored by git), stripped, in BUILD_DIR's layout, and says what
# the device tool must carry. The golden-logits tests read the V3 fixtures from tests/data, which
# scripts/device_tree.sh slim stops sending: carry them by name.
#   scripts/device_pack.sh BUILD_DIR
#   then: run(command="bash scripts/gpu_check.sh device-pack", carry=[device-pack, tests/data/tiny-v3-fp8,
#         tests/data/tiny-v3-bf16])
# Measured 2026-12-02: the slim tree ~9 MB, device-pack 19 MB, the two V3 fixtures 24 MB: 52 MB of the 64 MiB.
# The V2 fixtures (12.5 and 9.5 MB) do not all fit besides; their golden tests then skip, saying so.
set -euo pipefail
B=${1:?usage: scripts/device_pack.sh BUILD_DIR}
cd "$(git rev-parse --show-toplevel)"
rm -rf device-pack
for f in tests/cuda/moert_cuda_test tests/cuda/moert_cuda_bench tests/cuda/moert_nccl_test \
         tests/cuda/moert_nccl_bench bench/moert_v3_width_bench tests/kernels/moert_kernels_test \
         bench/moert_decode_bw_bench; do
  if [ -x "$B/$f" ]; then
    mkdir -p "device-pack/$(dirname "$f")"
    strip -o "device-pack/$f" "$B/$f"
  else
    echo "not built: $B/$f"
  fi
done
# The CUDA provider library, for binaries that load it rather than link the backend in.
find "$B/runtime" -maxdepth 1 -name 'libmoert_cuda.so*' -exec cp -P {} device-pack/ \; 2>/dev/null || true
du -b -s device-pack tests/data/tiny-v3-fp8 tests/data/tiny-v3-bf16 tests/data/tiny-v2-bf16 \
  tests/data/tiny-v2lite-bf16 2>/dev/null
echo "the tree that travels: $(scripts/device_tree.sh status | sed 's/^travels: //') plus the carried paths"
