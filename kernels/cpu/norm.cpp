#include "norm.h"

#include <cmath>

#include "dequant.h"
#include "dispatch.h"
#include "scratch.h"

namespace moert::kernels {
namespace {

void rmsnorm_portable(const float* x, int64_t rows, int64_t ldx, int64_t d, const float* wf, float eps,
                      float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / d) + eps);
    for (int64_t i = 0; i < d; ++i) yr[i] = wf[i] * (xr[i] * inv);
  }
}

}  // namespace

void rmsnorm(const float* x, int64_t rows, int64_t ldx, int64_t d, const WeightRef& w, float eps, float* y,
             int64_t ldy) {
  if (rows <= 0 || d <= 0) return;
  const float* wf;
  if (w.type == DType::kF32) {
    wf = static_cast<const float*>(w.data);
  } else {
    float* buf = tls_scratch(3, static_cast<size_t>(d));
    dequant_row(w, 0, 0, d, buf);
    wf = buf;
  }
  MOERT_DISPATCH(rmsnorm_rows, x, rows, ldx, d, wf, eps, y, ldy);
  rmsnorm_portable(x, rows, ldx, d, wf, eps, y, ldy);
}

}  // namespace moert::kernels
