// Portable blocked GEMM: a panel of weight rows is dequantised once into a per-thread fp32 buffer and
// reused for every row of x. (Vectorised micro-kernels live in gemm_simd.cpp when available.)
#include <algorithm>
#include <vector>

#include "dequant.h"
#include "gemm.h"

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

}  // namespace

void gemm_xwt(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy, ThreadPool* pool) {
  const int64_t panels = (w.n + kPanelRows - 1) / kPanelRows;
  parallel_for(pool, panels, 1, [&](int64_t pb, int64_t pe, int) {
    thread_local std::vector<float> panel;
    if (panel.size() < static_cast<size_t>(kPanelRows * w.k)) panel.resize(kPanelRows * w.k);
    for (int64_t p = pb; p < pe; ++p) {
      const int64_t r0 = p * kPanelRows, rows = std::min(kPanelRows, w.n - r0);
      for (int64_t r = 0; r < rows; ++r) dequant_row(w, r0 + r, 0, w.k, panel.data() + r * w.k);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < rows; ++r) y[i * ldy + r0 + r] = dot(x + i * ldx, panel.data() + r * w.k, w.k);
    }
  });
}

void gemm_xw(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy, ThreadPool* pool) {
  constexpr int64_t kCols = 128;
  const int64_t chunks = (w.k + kCols - 1) / kCols;
  parallel_for(pool, chunks, 1, [&](int64_t cb, int64_t ce, int) {
    thread_local std::vector<float> row;
    if (row.size() < static_cast<size_t>(kCols)) row.resize(kCols);
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t c0 = c * kCols, cols = std::min(kCols, w.k - c0);
      for (int64_t i = 0; i < m; ++i) std::fill(y + i * ldy + c0, y + i * ldy + c0 + cols, 0.0f);
      for (int64_t n = 0; n < w.n; ++n) {
        dequant_row(w, n, c0, cols, row.data());
        for (int64_t i = 0; i < m; ++i) {
          const float a = x[i * ldx + n];
          float* yi = y + i * ldy + c0;
          for (int64_t j = 0; j < cols; ++j) yi[j] += a * row[j];
        }
      }
    }
  });
}

}  // namespace moert::kernels
