#include "norm.h"

#include <cmath>
#include <vector>

#include "dequant.h"

namespace moert::kernels {

void rmsnorm(const float* x, int64_t rows, int64_t ldx, int64_t d, const WeightRef& w, float eps, float* y,
             int64_t ldy) {
  thread_local std::vector<float> wf;
  wf.resize(d);
  dequant_row(w, 0, 0, d, wf.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / d) + eps);
    for (int64_t i = 0; i < d; ++i) yr[i] = wf[i] * (xr[i] * inv);
  }
}

}  // namespace moert::kernels
