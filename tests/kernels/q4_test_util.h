// Helpers of the q4 tests (gemm_q4_test.cpp; the int8-activation ones, gemm_q4_int8_test.cpp: decode,
// gemm_q4_prefill_test.cpp: prefill): random q4 weights (random codes, positive fp16 scales and offsets of
// either sign per group) with each weight's value from the format's definition (weight_ref.h), x's int8
// form from its definition, and what a row's result must be: the int8 math exactly (double) and the exact
// fp32-weight product with the bound x's rounding allows.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/gemm_q4.h"
#include "cpu/numeric_types.h"
#include "cpu/weight_ref.h"

namespace moert::kernels::test {

struct Q4 {
  int64_t n, k, group;
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scale, min;
  WeightRef ref() const {
    WeightRef r;
    r.type = DType::kQ4;
    r.data = codes.data();
    r.n = n;
    r.k = k;
    r.ld = k;
    r.q4_scale = scale.data();
    r.q4_min = min.data();
    r.q4_ld = k / group;
    r.group = group;
    return r;
  }
  int code(int64_t row, int64_t col) const {
    const uint8_t b = codes[row * (k / 2) + (col / 32) * 16 + col % 16];
    return (col % 32) < 16 ? (b & 0x0f) : (b >> 4);
  }
  double d(int64_t row, int64_t g) const { return f16_to_float(scale[row * (k / group) + g]); }
  double m(int64_t row, int64_t g) const { return f16_to_float(min[row * (k / group) + g]); }
  double value(int64_t row, int64_t col) const {
    return d(row, col / group) * code(row, col) + m(row, col / group);
  }
};

inline Q4 make_q4(int64_t n, int64_t k, int64_t group, std::mt19937& rng) {
  Q4 t{n, k, group, {}, {}, {}};
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> d(0.001f, 0.05f), m(-0.4f, 0.1f);
  t.codes.resize(static_cast<size_t>(n * k / 2));
  for (auto& b : t.codes) b = static_cast<uint8_t>(byte(rng));
  t.scale.resize(static_cast<size_t>(n * (k / group)));
  t.min.resize(t.scale.size());
  for (auto& s : t.scale) s = float_to_f16(d(rng));
  for (auto& s : t.min) s = float_to_f16(m(rng));
  return t;
}

// x's int8 form, from the definition: per group s = amax / 127, q = round-half-even(x * (127 / amax)).
struct Q8 {
  std::vector<int> q;
  std::vector<float> s;  // per group
};
inline Q8 quantize(const float* x, int64_t k, int64_t group) {
  Q8 r{std::vector<int>(static_cast<size_t>(k)), std::vector<float>(static_cast<size_t>(k / group))};
  for (int64_t g = 0; g < k / group; ++g) {
    float a = 0.0f;
    for (int64_t c = g * group; c < (g + 1) * group; ++c) a = std::max(a, std::fabs(x[c]));
    r.s[g] = a / 127.0f;
    const float inv = a > 0.0f ? 127.0f / a : 0.0f;
    for (int64_t c = g * group; c < (g + 1) * group; ++c)
      r.q[c] = static_cast<int>(std::nearbyint(x[c] * inv));
  }
  return r;
}

struct Expect {
  double int8;       // the int8 math, exactly (double)
  double int8_mag;   // sum of |terms| it adds in fp32
  double exact;      // sum x * w
  double rounding;   // sum_g s_g / 2 * sum |w| over g: the most x's rounding can move the exact result
  double exact_mag;  // sum |x w|
};
inline Expect expect(const Q4& w, const float* x, int64_t row) {
  const Q8 q = quantize(x, w.k, w.group);
  Expect e{0, 0, 0, 0, 0};
  for (int64_t g = 0; g < w.k / w.group; ++g) {
    long long dot = 0, sum = 0;
    double wabs = 0;
    for (int64_t c = g * w.group; c < (g + 1) * w.group; ++c) {
      dot += static_cast<long long>(w.code(row, c)) * q.q[c];
      sum += q.q[c];
      const double v = w.value(row, c);
      e.exact += v * x[c];
      e.exact_mag += std::fabs(v * x[c]);
      wabs += std::fabs(v);
    }
    const double scaled_sum = static_cast<float>(q.s[g] * static_cast<float>(sum));  // S_g as fp32
    e.int8 += w.d(row, g) * q.s[g] * static_cast<double>(dot) + w.m(row, g) * scaled_sum;
    e.int8_mag +=
        std::fabs(w.d(row, g) * q.s[g] * static_cast<double>(dot)) + std::fabs(w.m(row, g) * scaled_sum);
    e.rounding += q.s[g] / 2 * wabs;
  }
  return e;
}

inline bool available() {
  return q4_int8_supported() && cpu_isa_supported() == CpuIsa::kAvx512;
}

struct Int8Scope {
  bool saved;
  explicit Int8Scope(bool on) : saved(q4_int8_enabled()) { set_q4_int8(on); }
  ~Int8Scope() { set_q4_int8(saved); }
};

// The bounds the tests assert, for a sum of k terms: fp32 summation error (8 eps sqrt(k + 1) of the terms'
// magnitudes) around the int8 math, and that plus x's rounding around the exact product.
inline double fp32_bound(const Expect& e, int64_t k) {
  return 8.0 * 1.2e-7 * std::sqrt(static_cast<double>(k) + 1.0) * e.int8_mag + 1e-30;
}
inline double exact_bound(const Expect& e, int64_t k) {
  return e.rounding + fp32_bound(e, k) + 8.0 * 1.2e-7 * std::sqrt(static_cast<double>(k) + 1.0) * e.exact_mag;
}

}  // namespace moert::kernels::test
