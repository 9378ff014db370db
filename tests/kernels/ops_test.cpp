// Element-wise ops, RMSNorm, RoPE and activation quantisation against their formulas, on every ISA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cpu/act_quant.h"
#include "cpu/elementwise.h"
#include "cpu/norm.h"
#include "cpu/numeric_types.h"
#include "cpu/rope.h"
#include "kernel_test_util.h"

namespace moert::kernels::test {
namespace {

class OpsTest : public ::testing::TestWithParam<CpuIsa> {
 protected:
  void SetUp() override {
    if (static_cast<int>(GetParam()) > static_cast<int>(cpu_isa_supported())) GTEST_SKIP();
  }
};

TEST_P(OpsTest, RmsNorm) {
  IsaScope scope(GetParam());
  std::mt19937 rng(21);
  for (DType type : {DType::kF32, DType::kBF16, DType::kF16})
    for (int64_t d : {int64_t{1}, int64_t{7}, int64_t{100}, int64_t{384}, int64_t{512}, int64_t{1000}})
      for (int64_t rows : {int64_t{1}, int64_t{3}, int64_t{17}}) {
        SCOPED_TRACE(::testing::Message() << type_name(type) << " d=" << d << " rows=" << rows);
        const TestWeight w = make_weight(type, 1, d, rng);
        const int64_t ldx = d + 3, ldy = d + 1;
        const auto x = randn(rows * ldx, rng, 3.0f);
        std::vector<float> y(rows * ldy, NAN);
        const float eps = 1e-6f;
        rmsnorm(x.data(), rows, ldx, d, w.ref(), eps, y.data(), ldy);
        for (int64_t r = 0; r < rows; ++r) {
          double ss = 0;
          for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x[r * ldx + i]) * x[r * ldx + i];
          const double inv = 1.0 / std::sqrt(ss / d + eps);
          for (int64_t i = 0; i < d; ++i) {
            const double expect = w.value[i] * (x[r * ldx + i] * inv);
            ASSERT_NEAR(y[r * ldy + i], expect, 4e-6 * std::fabs(expect) + 1e-30) << r << "," << i;
          }
          if (ldy > d) {
            ASSERT_TRUE(std::isnan(y[r * ldy + d]));
          }
        }
        // in place
        std::vector<float> z(x);
        rmsnorm(z.data(), rows, ldx, d, w.ref(), eps, z.data(), ldx);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = 0; i < d; ++i) ASSERT_EQ(z[r * ldx + i], y[r * ldy + i]);
      }
}

TEST_P(OpsTest, SiluMul) {
  IsaScope scope(GetParam());
  std::mt19937 rng(22);
  for (int64_t cols : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{256}, int64_t{1025}}) {
    const int64_t rows = 3, ldg = cols + 1, ldu = cols + 2, ldo = cols + 3;
    auto g = randn(rows * ldg, rng, 4.0f);
    const auto u = randn(rows * ldu, rng);
    // the extremes too
    const float special[] = {-100.0f, -88.0f, -87.5f, -30.0f, 30.0f, 87.5f, 88.5f, 100.0f, 1e-7f, -1e-7f};
    for (int i = 0; i < 10 && i < cols; ++i) g[i] = special[i];
    std::vector<float> o(rows * ldo, NAN);
    silu_mul(g.data(), ldg, u.data(), ldu, rows, cols, o.data(), ldo);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i) {
        const double gv = g[r * ldg + i];
        const double expect = gv / (1.0 + std::exp(-gv)) * u[r * ldu + i];
        ASSERT_NEAR(o[r * ldo + i], expect, 1e-6 * std::fabs(expect) + 1e-37) << "g=" << gv;
      }
  }
}

TEST_P(OpsTest, AxpyAndAdd) {
  IsaScope scope(GetParam());
  std::mt19937 rng(23);
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{384}, int64_t{1001}}) {
    const auto x = randn(n, rng);
    auto y = randn(n, rng);
    auto y0 = y;
    axpy(n, 0.37f, x.data(), y.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], y0[i] + 0.37f * x[i], 1e-6 * (1 + std::fabs(y0[i])));
    y0 = y;
    add_inplace(n, x.data(), y.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y0[i] + x[i]);
  }
}

// The straightforward formula: scale = amax / 448 per row and 128-column tile, q = e4m3(x / scale).
TEST_P(OpsTest, ActQuant) {
  IsaScope scope(GetParam());
  std::mt19937 rng(24);
  for (int64_t cols : {int64_t{1}, int64_t{100}, int64_t{128}, int64_t{300}, int64_t{512}}) {
    const int64_t rows = 5, ldx = cols + 3, ldq = cols + 1, tiles = (cols + 127) / 128;
    auto x = randn(rows * ldx, rng, 2.0f);
    for (int64_t i = 0; i < std::min<int64_t>(cols, 8); ++i) x[i] *= 1e-4f;  // subnormal codes appear too
    std::vector<uint8_t> q(rows * ldq);
    std::vector<float> sc(rows * tiles);
    act_quant(x.data(), rows, ldx, cols, q.data(), ldq, sc.data());
    std::vector<float> xd(x);
    act_quant_dequant(xd.data(), rows, ldx, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t c0 = t * 128, n = std::min<int64_t>(128, cols - c0);
        float amax = 0;
        for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[r * ldx + c0 + i]));
        const float s = amax / 448.0f;
        ASSERT_EQ(sc[r * tiles + t], s);
        for (int64_t i = 0; i < n; ++i) {
          const uint8_t code = float_to_e4m3(x[r * ldx + c0 + i] / s);
          ASSERT_EQ(q[r * ldq + c0 + i], code);
          ASSERT_EQ(xd[r * ldx + c0 + i], e4m3_to_float(code) * s) << "x=" << x[r * ldx + c0 + i];
        }
      }
    // columns past `cols` untouched
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = cols; c < ldx; ++c) ASSERT_EQ(xd[r * ldx + c], x[r * ldx + c]);
  }
}

// act_quant_dequant on values placed exactly on and next to rounding boundaries (ties to even, subnormals).
TEST_P(OpsTest, ActQuantDequantBoundaries) {
  IsaScope scope(GetParam());
  std::vector<float> x(128);
  x[0] = 448.0f;  // amax: scale 1
  int i = 1;
  for (int c = 0; c < 0x7e && i + 3 < 128; c += 3) {
    const double lo = e4m3_formula(static_cast<uint8_t>(c)), hi = e4m3_formula(static_cast<uint8_t>(c + 1));
    const float mid = static_cast<float>((lo + hi) / 2);
    x[i++] = mid;
    x[i++] = -std::nextafter(mid, 0.0f);
    x[i++] = std::nextafter(mid, 1000.0f);
  }
  while (i < 128) x[i++] = 1.0f;
  std::vector<float> y(x);
  act_quant_dequant(y.data(), 1, 128, 128);
  for (int j = 0; j < 128; ++j) ASSERT_EQ(y[j], e4m3_to_float(float_to_e4m3(x[j]))) << x[j];
}

TEST_P(OpsTest, Rope) {
  IsaScope scope(GetParam());
  std::mt19937 rng(25);
  const int64_t rows = 6, heads = 3, dim = 64, head_stride = 70, ldx = heads * head_stride + 2;
  std::vector<float> inv_freq(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / dim);
  auto x = randn(rows * ldx, rng);
  const auto x0 = x;
  const std::vector<int32_t> pos = {0, 1, 5, 100, 4095, 16000};
  const float af = 1.2f;
  rope_interleaved(x.data(), rows, ldx, heads, head_stride, dim, pos.data(), inv_freq.data(), af);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < dim / 2; ++i) {
        const float angle = static_cast<float>(pos[r]) * inv_freq[i];
        const double c = std::cos(static_cast<double>(angle)) * af,
                     s = std::sin(static_cast<double>(angle)) * af;
        const double a = x0[r * ldx + h * head_stride + 2 * i], b = x0[r * ldx + h * head_stride + 2 * i + 1];
        ASSERT_NEAR(x[r * ldx + h * head_stride + 2 * i], a * c - b * s,
                    2e-6 * (std::fabs(a) + std::fabs(b)) * af);
        ASSERT_NEAR(x[r * ldx + h * head_stride + 2 * i + 1], b * c + a * s,
                    2e-6 * (std::fabs(a) + std::fabs(b)) * af);
      }
      for (int64_t i = dim; i < head_stride; ++i)
        ASSERT_EQ(x[r * ldx + h * head_stride + i], x0[r * ldx + h * head_stride + i]);
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, OpsTest,
                         ::testing::Values(CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512),
                         [](const auto& info) { return isa_param_name(info.param); });

}  // namespace
}  // namespace moert::kernels::test
