// x @ W^T and x @ W with the weight dequantised on the fly. The vectorised versions (simd_impl.inc) are
// chosen at run time: small M (<= 4 with AVX-512, <= 2 with AVX2) reads the stored weights directly, the
// fp8 block scales folded into a scaled copy of x, in 1-4 x 4 dot-product tiles; larger M dequantises
// 32-row panels exactly, packs them transposed into a per-thread buffer and runs a 12 x 32 (AVX2: 6 x 16)
// broadcast micro-kernel; threads split N (and M when there are few panels). x @ W walks column chunks of
// 64 with 6 x 64 register tiles. The portable version below is the fallback for CPUs without AVX2.
#include <algorithm>

#include "dequant.h"
#include "dispatch.h"
#include "gemm.h"
#include "gemm_q4.h"
#include "scratch.h"

namespace moert::kernels {
namespace {

constexpr int64_t kPanelRows = 16;

inline float dot(const float* a, const float* b, int64_t k) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < k; ++i) r += a[i] * b[i];
  return r;
}

struct Args {
  const float* x;
  int64_t m, ldx;
  const WeightRef* w;
  float* y;
  int64_t ldy;
};

void xwt_panels(const Args& a, int64_t pb, int64_t pe) {
  const WeightRef& w = *a.w;
  float* panel = tls_scratch(1, static_cast<size_t>(kPanelRows * w.k));
  for (int64_t p = pb; p < pe; ++p) {
    const int64_t r0 = p * kPanelRows, rows = std::min(kPanelRows, w.n - r0);
    for (int64_t r = 0; r < rows; ++r) dequant_row(w, r0 + r, 0, w.k, panel + r * w.k);
    for (int64_t i = 0; i < a.m; ++i)
      for (int64_t r = 0; r < rows; ++r) a.y[i * a.ldy + r0 + r] = dot(a.x + i * a.ldx, panel + r * w.k, w.k);
  }
}

void xw_chunks(const Args& a, int64_t cb, int64_t ce) {
  constexpr int64_t kCols = 128;
  const WeightRef& w = *a.w;
  float* row = tls_scratch(1, kCols);
  for (int64_t c = cb; c < ce; ++c) {
    const int64_t c0 = c * kCols, cols = std::min(kCols, w.k - c0);
    for (int64_t i = 0; i < a.m; ++i) std::fill(a.y + i * a.ldy + c0, a.y + i * a.ldy + c0 + cols, 0.0f);
    for (int64_t n = 0; n < w.n; ++n) {
      dequant_row(w, n, c0, cols, row);
      for (int64_t i = 0; i < a.m; ++i) {
        const float xv = a.x[i * a.ldx + n];
        float* yi = a.y + i * a.ldy + c0;
        for (int64_t j = 0; j < cols; ++j) yi[j] += xv * row[j];
      }
    }
  }
}

}  // namespace

void gemm_xwt(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
              ThreadPool* pool, bool row_invariant) {
  if (w.type == DType::kQ4) return gemm_q4_xwt(x, m, ldx, w, y, ldy, pool, row_invariant);
  MOERT_DISPATCH(gemm_xwt, x, m, ldx, w, y, ldy, pool, row_invariant);
  (void)row_invariant;  // the portable path is one dot product per (row, column) at every m
  if (m <= 0) return;
  const Args a{x, m, ldx, &w, y, ldy};
  const Args* ap = &a;
  const int64_t panels = (w.n + kPanelRows - 1) / kPanelRows;
  parallel_for(pool, panels, 1, [ap](int64_t pb, int64_t pe, int) { xwt_panels(*ap, pb, pe); });
}

void gemm_xw(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
             ThreadPool* pool) {
  MOERT_DISPATCH(gemm_xw, x, m, ldx, w, y, ldy, pool);
  if (m <= 0) return;
  const Args a{x, m, ldx, &w, y, ldy};
  const Args* ap = &a;
  parallel_for(pool, (w.k + 127) / 128, 1, [ap](int64_t cb, int64_t ce, int) { xw_chunks(*ap, cb, ce); });
}

}  // namespace moert::kernels
