#include "act_quant.h"

#include <algorithm>
#include <cmath>

#include "dispatch.h"
#include "numeric_types.h"

namespace moert::kernels {
namespace {

float tile_scale(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax / 448.0f;
}

}  // namespace

void act_quant(const float* x, int64_t rows, int64_t ldx, int64_t cols, uint8_t* q, int64_t ldq,
               float* scales) {
  const int64_t tiles = (cols + 127) / 128;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t c0 = t * 128, n = std::min<int64_t>(128, cols - c0);
      const float* xr = x + r * ldx + c0;
      const float s = tile_scale(xr, n);
      scales[r * tiles + t] = s;
      for (int64_t i = 0; i < n; ++i) q[r * ldq + c0 + i] = s == 0.0f ? 0 : float_to_e4m3(xr[i] / s);
    }
}

void act_quant_dequant(float* x, int64_t rows, int64_t ldx, int64_t cols) {
  MOERT_DISPATCH(act_quant_dequant, x, rows, ldx, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += 128) {
      const int64_t n = std::min<int64_t>(128, cols - c0);
      float* xr = x + r * ldx + c0;
      const float s = tile_scale(xr, n);
      for (int64_t i = 0; i < n; ++i) xr[i] = s == 0.0f ? 0.0f : e4m3_to_float(float_to_e4m3(xr[i] / s)) * s;
    }
}

}  // namespace moert::kernels
