#include "checkpoint/q4_quantize.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "cpu/numeric_types.h"
#include "util/error.h"

namespace moert {
namespace {

using kernels::f16_to_float;
using kernels::float_to_f16;

constexpr int kMaxGroup = 128;

// v clamped to [0, 15] and rounded to nearest (ties up; NaN to 0). Inline arithmetic: std::nearbyint is a
// libm call on baseline x86-64, and the search calls this ~50 times per weight.
inline uint8_t code_of(float v) {
  if (!(v > 0.0f)) return 0;
  if (v >= 15.0f) return 15;
  return static_cast<uint8_t>(v + 0.5f);
}

// The best codes for a given (d, m): nearest, clamped to 0..15.
void assign(const float* x, int g, float d, float m, uint8_t* l) {
  if (!(d > 0.0f)) {
    std::fill(l, l + g, uint8_t{0});
    return;
  }
  const float inv = 1.0f / d;
  for (int i = 0; i < g; ++i) l[i] = code_of((x[i] - m) * inv);
}

double sq_error(const float* x, int g, float d, float m, const uint8_t* l) {
  double e = 0.0;
  for (int i = 0; i < g; ++i) {
    const double r = static_cast<double>(d) * l[i] + m - x[i];
    e += r * r;
  }
  return e;
}

// The least-squares (d, m) for given codes; false when the codes are all equal (no fit) or d <= 0.
bool fit(const float* x, int g, const uint8_t* l, float& d, float& m) {
  double sl = 0, sl2 = 0, sx = 0, slx = 0;
  for (int i = 0; i < g; ++i) {
    sl += l[i];
    sl2 += static_cast<double>(l[i]) * l[i];
    sx += x[i];
    slx += static_cast<double>(l[i]) * x[i];
  }
  const double det = g * sl2 - sl * sl;
  if (!(det > 0)) return false;
  const double dd = (g * slx - sl * sx) / det, mm = (sl2 * sx - sl * slx) / det;
  if (!(dd > 0) || !std::isfinite(dd) || !std::isfinite(mm)) return false;
  d = static_cast<float>(dd);
  m = static_cast<float>(mm);
  return true;
}

struct GroupResult {
  uint16_t d, m;
};

// (d, m) rounded to fp16, the codes re-assigned for the rounded pair, and its error.
double finish(const float* x, int g, float d, float m, uint8_t* l, GroupResult& r) {
  r.d = float_to_f16(d);
  r.m = float_to_f16(m);
  const float df = f16_to_float(r.d), mf = f16_to_float(r.m);
  assign(x, g, df, mf, l);
  return sq_error(x, g, df, mf, l);
}

GroupResult quantize_group(const float* x, int g, Q4Search search, uint8_t* out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < g; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  GroupResult r{};
  if (!(hi > lo)) {  // a constant group: the offset alone
    r.d = float_to_f16(0.0f);
    r.m = float_to_f16(lo);
    std::fill(out, out + g, uint8_t{0});
    return r;
  }
  // Round to nearest over [lo, hi]: the baseline, and the answer for kNearest.
  const float d0 = (hi - lo) / 15.0f;
  const double e0 = finish(x, g, d0, lo, out, r);
  if (search == Q4Search::kNearest) return r;

  uint8_t l[kMaxGroup], best_l[kMaxGroup];
  float best_d = d0, best_m = lo;
  assign(x, g, d0, lo, best_l);
  double best = sq_error(x, g, d0, lo, best_l);
  // Candidate assignments from scales (15 + t) / (hi - lo), t in [-1.5, 1.5], each refitted.
  for (int s = 0; s <= 24; ++s) {
    const float iscale = (15.0f - 1.5f + 0.125f * static_cast<float>(s)) / (hi - lo);
    for (int i = 0; i < g; ++i) l[i] = code_of((x[i] - lo) * iscale);
    float d, m;
    if (!fit(x, g, l, d, m)) continue;
    assign(x, g, d, m, l);  // the best codes for the fitted pair (never worse than the candidate's)
    const double e = sq_error(x, g, d, m, l);
    if (e < best) {
      best = e;
      best_d = d;
      best_m = m;
      std::copy(l, l + g, best_l);
    }
  }
  // Alternate refit and re-assignment from the best (each step can only lower the error).
  for (int it = 0; it < 4; ++it) {
    float d, m;
    if (!fit(x, g, best_l, d, m)) break;
    assign(x, g, d, m, l);
    const double e = sq_error(x, g, d, m, l);
    if (!(e < best)) break;
    best = e;
    best_d = d;
    best_m = m;
    std::copy(l, l + g, best_l);
  }
  // Rounded to fp16 the search could in principle lose to the baseline: keep whichever is better.
  GroupResult rs;
  const double es = finish(x, g, best_d, best_m, l, rs);
  if (es <= e0) {
    std::copy(l, l + g, out);
    return rs;
  }
  return r;
}

void quantize_rows(const float* w, int64_t r0, int64_t r1, Q4Weight& q, Q4Search search) {
  const int64_t groups = q.k / q.group;
  uint8_t l[kMaxGroup];
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = w + r * q.k;
    uint8_t* codes = q.codes.data() + r * (q.k / 2);
    for (int64_t g = 0; g < groups; ++g) {
      const GroupResult gr = quantize_group(row + g * q.group, static_cast<int>(q.group), search, l);
      q.scale[r * groups + g] = gr.d;
      q.min[r * groups + g] = gr.m;
      for (int64_t b = 0; b < q.group; b += 32) {
        uint8_t* out = codes + (g * q.group + b) / 2;
        for (int j = 0; j < 16; ++j) out[j] = static_cast<uint8_t>(l[b + j] | (l[b + 16 + j] << 4));
      }
    }
  }
}

}  // namespace

Q4Weight quantize_q4(const float* w, int64_t n, int64_t k, int64_t group, Q4Search search, int threads) {
  if (group < 32 || group > kMaxGroup || group % 32 != 0 || k % group != 0)
    fail(ErrorCode::kInvalidArgument, "q4: " + std::to_string(k) + " columns do not split into groups of " +
                                          std::to_string(group) + " (32, 64 or 128, dividing the columns)");
  Q4Weight q;
  q.n = n;
  q.k = k;
  q.group = group;
  q.codes.resize(static_cast<size_t>(n * k / 2));
  q.scale.resize(static_cast<size_t>(n * (k / group)));
  q.min.resize(q.scale.size());
  unsigned nt =
      threads > 0 ? static_cast<unsigned>(threads) : std::max(1u, std::thread::hardware_concurrency());
  nt = static_cast<unsigned>(std::min<int64_t>(nt, std::max<int64_t>(1, n / 16)));
  std::vector<std::thread> pool;
  const int64_t per = (n + nt - 1) / nt;
  for (unsigned t = 1; t < nt; ++t)
    pool.emplace_back(
        [&, t] { quantize_rows(w, std::min(n, t * per), std::min(n, (t + 1) * per), q, search); });
  quantize_rows(w, 0, std::min(n, per), q, search);
  for (auto& th : pool) th.join();
  return q;
}

float q4_value(const Q4Weight& q, int64_t row, int64_t col) {
  const uint8_t b = q.codes[row * (q.k / 2) + (col / 32) * 16 + (col % 16)];
  const int code = (col % 32) < 16 ? (b & 15) : (b >> 4);
  const int64_t g = row * (q.k / q.group) + col / q.group;
  return f16_to_float(q.scale[g]) * static_cast<float>(code) + f16_to_float(q.min[g]);
}

}  // namespace moert
