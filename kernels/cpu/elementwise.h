// Small element-wise kernels.
#pragma once
#include <cstdint>

namespace moert::kernels {

// out[r, i] = silu(gate[r, i]) * up[r, i]
void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows, int64_t cols,
              float* out, int64_t ldo);
// y[i] += a * x[i]
void axpy(int64_t n, float a, const float* x, float* y);
// y[i] += x[i]
void add_inplace(int64_t n, const float* x, float* y);

}  // namespace moert::kernels
