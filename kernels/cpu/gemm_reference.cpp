#include "gemm.h"
#include "gemm_q4.h"
#include "numeric_types.h"

namespace moert::kernels {

float weight_at(const WeightRef& w, int64_t row, int64_t col) {
  const int64_t i = row * w.ld + col;
  switch (w.type) {
    case DType::kF32:
      return static_cast<const float*>(w.data)[i];
    case DType::kBF16:
      return bf16_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kF16:
      return f16_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kF8E4M3:
      return e4m3_to_float(static_cast<const uint8_t*>(w.data)[i]) * w.block_scale(row, col);
    case DType::kQ4:
      return q4_weight_at(w, row, col);
    default:  // not a weight type
      break;
  }
  return 0.0f;
}

void gemm_xwt_reference(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < w.n; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < w.k; ++k) acc += static_cast<double>(x[i * ldx + k]) * weight_at(w, j, k);
      y[i * ldy + j] = static_cast<float>(acc);
    }
}

void gemm_xw_reference(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < w.k; ++k) {
      double acc = 0.0;
      for (int64_t j = 0; j < w.n; ++j) acc += static_cast<double>(x[i * ldx + j]) * weight_at(w, j, k);
      y[i * ldy + k] = static_cast<float>(acc);
    }
}

}  // namespace moert::kernels
