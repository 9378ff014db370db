// How a kernel sees a weight matrix: row-major [n, k] of some storage type, read in place (for example
// from a memory-mapped checkpoint). FP8 weights carry one fp32 scale per 128x128 block (DeepSeek's
// `weight_scale_inv`, multiplied to dequantise).
#pragma once
#include <cstdint>

#include "common/dtype.h"

namespace moert::kernels {

struct WeightRef {
  DType type = DType::kF32;
  const void* data = nullptr;    // element (0, 0)
  int64_t n = 0, k = 0;          // rows (outputs), columns (inputs)
  int64_t ld = 0;                // elements between rows
  const float* scale = nullptr;  // fp8: [ceil((row0 + n) / 128), scale_ld]
  int64_t scale_ld = 0;
  int64_t row0 = 0;  // the row of `data` within the scale grid (a row slice of a larger weight)

  // Rows [r, r + count) of this weight.
  WeightRef rows(int64_t r, int64_t count) const {
    WeightRef w = *this;
    w.data = static_cast<const uint8_t*>(data) + r * ld * elem_size();
    w.n = count;
    w.row0 = row0 + r;
    return w;
  }
  int elem_size() const { return static_cast<int>(dtype_size(type)); }
  float block_scale(int64_t row, int64_t col) const {
    return scale[((row0 + row) >> 7) * scale_ld + (col >> 7)];
  }
};

}  // namespace moert::kernels
