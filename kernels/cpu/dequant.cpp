#include "dequant.h"

#include <algorithm>
#include <cstring>

#include "dispatch.h"
#include "gemm_q4.h"
#include "numeric_types.h"

namespace moert::kernels {
namespace {

struct E4m3Table {
  float v[256];
  E4m3Table() {
    for (int i = 0; i < 256; ++i) v[i] = e4m3_to_float(static_cast<uint8_t>(i));
  }
};
const E4m3Table kE4m3;

}  // namespace

void dequant_row(const WeightRef& w, int64_t row, int64_t col0, int64_t count, float* out) {
  if (count <= 0) return;
  if (w.type == DType::kQ4) return dequant_q4_row(w, row, col0, count, out);
  MOERT_DISPATCH(dequant_row, w, row, col0, count, out);
  const int64_t base = row * w.ld + col0;
  switch (w.type) {
    case DType::kF32:
      std::memcpy(out, static_cast<const float*>(w.data) + base, count * sizeof(float));
      return;
    case DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + base;
      for (int64_t j = 0; j < count; ++j) out[j] = bf16_to_float(p[j]);
      return;
    }
    case DType::kF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + base;
      for (int64_t j = 0; j < count; ++j) out[j] = f16_to_float(p[j]);
      return;
    }
    case DType::kF8E4M3: {
      const uint8_t* p = static_cast<const uint8_t*>(w.data) + base;
      const float* srow = w.scale + ((w.row0 + row) >> 7) * w.scale_ld;
      int64_t j = 0;
      while (j < count) {
        const int64_t col = col0 + j;
        const int64_t end = std::min<int64_t>(count, j + (128 - (col & 127)));
        const float s = srow[col >> 7];
        for (; j < end; ++j) out[j] = kE4m3.v[p[j]] * s;
      }
      return;
    }
    case DType::kQ4:  // routed above
    default:          // not a weight type: the backends' op checks let none through
      return;
  }
}

}  // namespace moert::kernels
