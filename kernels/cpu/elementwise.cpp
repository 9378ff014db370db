#include "elementwise.h"

#include <cmath>

#include "dispatch.h"

namespace moert::kernels {

void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows, int64_t cols,
              float* out, int64_t ldo) {
  MOERT_DISPATCH(silu_mul, gate, ldg, up, ldu, rows, cols, out, ldo);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i) {
      const float g = gate[r * ldg + i];
      out[r * ldo + i] = g / (1.0f + std::exp(-g)) * up[r * ldu + i];
    }
}

void axpy(int64_t n, float a, const float* x, float* y) {
  MOERT_DISPATCH(axpy, n, a, x, y);
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void add_inplace(int64_t n, const float* x, float* y) {
  MOERT_DISPATCH(add_inplace, n, x, y);
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace moert::kernels
