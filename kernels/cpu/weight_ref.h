// How a kernel sees a weight matrix: row-major [n, k] of some storage type, read in place (for example
// from a memory-mapped checkpoint). FP8 weights carry one fp32 scale per 128x128 block (DeepSeek's
// `weight_scale_inv`, multiplied to dequantise). Q4 weights (moert_q4, docs/DESIGN.md "Weights") are
// 4-bit codes q in 0..15, two per byte, with an fp16 scale d and offset m per group of `group` columns of a
// row: w = d * q + m. Within each 32 columns c0 .. c0 + 31, byte c0 / 2 + j holds column c0 + j in its low
// nibble and column c0 + 16 + j in its high nibble (j < 16), so 16 bytes unpack into two runs of 16.
#pragma once
#include <cstdint>

#include "common/dtype.h"

namespace moert::kernels {

struct WeightRef {
  DType type = DType::kF32;
  const void* data = nullptr;    // element (0, 0)
  int64_t n = 0, k = 0;          // rows (outputs), columns (inputs)
  int64_t ld = 0;                // elements between rows (q4: columns, i.e. 2 * bytes)
  const float* scale = nullptr;  // fp8: [ceil((row0 + n) / 128), scale_ld]
  int64_t scale_ld = 0;
  int64_t row0 = 0;  // the row of `data` within the scale grid (a row slice of a larger weight)
  // q4 only: fp16 bits [n, q4_ld] of each row's group scales and offsets; `group` columns per group.
  const uint16_t* q4_scale = nullptr;
  const uint16_t* q4_min = nullptr;
  int64_t q4_ld = 0;
  int64_t group = 0;

  // Rows [r, r + count) of this weight.
  WeightRef rows(int64_t r, int64_t count) const {
    WeightRef w = *this;
    w.n = count;
    w.row0 = row0 + r;
    if (type == DType::kQ4) {
      w.data = static_cast<const uint8_t*>(data) + r * (ld / 2);
      w.q4_scale = q4_scale + r * q4_ld;
      w.q4_min = q4_min + r * q4_ld;
      return w;
    }
    w.data = static_cast<const uint8_t*>(data) + r * ld * elem_size();
    return w;
  }
  // Bytes per element (0 for q4: half a byte; its kernels index by group instead).
  int elem_size() const { return static_cast<int>(dtype_size(type)); }
  float block_scale(int64_t row, int64_t col) const {
    return scale[((row0 + row) >> 7) * scale_ld + (col >> 7)];
  }
};

}  // namespace moert::kernels
