// The CUDA backend (built when MOERT_HAVE_CUDA): every op of backend.h on one GPU, one stream. Weights are
// uploaded once in their stored type (FP8 with block scales, BF16, F32); activations are F32 or BF16 device
// tensors (Backend::act_dtype) from a caching pool. No CUDA types here.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace moert {

// make_cuda_backend is declared in backend.h. The environment variable MOERT_CUDA_GEMM (auto | own | lt)
// picks the FP8 GEMM path with ActMode::kFp8, and the path of bf16 activations times BF16 weights: auto uses
// cuBLASLt (the block-scaled FP8 GEMM, the BF16 GEMM) for more than 16 rows and the own small-M kernel below;
// own never uses cuBLASLt; lt uses it at every M.

// Devices the CUDA runtime sees (0 without a driver or device).
int cuda_device_count();

// Waits until the work queued by a CUDA backend is done (for timing); no-op for other backends.
void cuda_synchronize(Backend& backend);

// Counters of the GEMM paths taken since the backend was made: cuBLASLt FP8, own small-M, own tiled, cuBLASLt
// BF16 (bf16 activations times BF16 weights).
struct CudaGemmStats {
  long long lt_fp8 = 0, small_m = 0, tiled = 0, lt_fallbacks = 0, lt_bf16 = 0;
};
CudaGemmStats cuda_gemm_stats(const Backend& backend);

}  // namespace moert
