// The q4 GEMM (kernels/cpu/gemm_q4) against the scalar reference (gemm_xwt_reference, whose weight_at reads
// one code by the packing's definition), on every instruction set: the decode kernel at 1-4 rows (and
// driven at more), the panel path at larger m and in row-invariant mode, row slices, 1 and 2 threads, group
// sizes 32, 64 and 128. Also fp16 rounding (the quantiser stores its scales through it).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu/dequant.h"
#include "cpu/gemm.h"
#include "cpu/gemm_q4.h"
#include "cpu/numeric_types.h"
#include "cpu/thread_pool.h"
#include "kernel_test_util.h"
#include "q4_test_util.h"

namespace moert::kernels::test {
namespace {

// y [m, rows] against the double-precision formula over rows row0 .. row0 + rows; the bound scales with
// sum |x| (|d q| + |m|), the magnitudes the kernel sums (scale and offset parts apart).
void check(const std::vector<float>& x, int64_t m, int64_t ldx, const Q4& w, int64_t row0, int64_t rows,
           const std::vector<float>& y, int64_t ldy) {
  int bad = 0;
  for (int64_t i = 0; i < m && bad < 5; ++i)
    for (int64_t j = 0; j < rows && bad < 5; ++j) {
      double acc = 0, mag = 0;
      for (int64_t c = 0; c < w.k; ++c) {
        const double v = w.value(row0 + j, c);
        const int64_t g = (row0 + j) * (w.k / w.group) + c / w.group;
        acc += x[i * ldx + c] * v;
        mag += std::fabs(x[i * ldx + c]) *
               (std::fabs(v - f16_to_float(w.min[g])) + std::fabs(f16_to_float(w.min[g])));
      }
      const double tol = 10.0 * 1.2e-7 * std::sqrt(static_cast<double>(w.k) + 1.0) * mag + 1e-30;
      if (!(std::fabs(y[i * ldy + j] - acc) <= tol)) {
        ADD_FAILURE() << "y[" << i << ", " << j << "] = " << y[i * ldy + j] << ", expected " << acc
                      << " (tol " << tol << ")";
        ++bad;
      }
    }
}

// The fp32 kernels: the int8-activation one (gemm_q4_int8_test.cpp, its own bounds) is switched off.
class GemmQ4 : public ::testing::TestWithParam<CpuIsa> {
 protected:
  void SetUp() override {
    if (static_cast<int>(GetParam()) > static_cast<int>(cpu_isa_supported()))
      GTEST_SKIP() << "instruction set not supported here";
    set_q4_int8(false);
  }
  void TearDown() override { set_q4_int8(int8_was_); }
  bool int8_was_ = q4_int8_enabled();
};

struct Shape {
  int64_t n, k, group;
};
const Shape kShapes[] = {{37, 256, 32}, {64, 512, 64}, {130, 384, 128}, {5, 32, 32}, {300, 1408, 32}};

TEST_P(GemmQ4, XwtMatchesFormula) {
  IsaScope scope(GetParam());
  std::mt19937 rng(4242);
  ThreadPool pool(2);
  for (const Shape& sh : kShapes) {
    const Q4 w = make_q4(sh.n, sh.k, sh.group, rng);
    for (int64_t m : {1, 2, 3, 4, 5, 17, 64}) {
      const int64_t ldx = sh.k + 3, ldy = sh.n + 5;
      const std::vector<float> x = randn(static_cast<size_t>(m * ldx), rng);
      for (int threads : {1, 2})
        for (bool invariant : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "n=" << sh.n << " k=" << sh.k << " group=" << sh.group << " m="
                                            << m << " threads=" << threads << " invariant=" << invariant);
          std::vector<float> y(static_cast<size_t>(m * ldy), NAN);
          gemm_xwt(x.data(), m, ldx, w.ref(), y.data(), ldy, threads == 1 ? nullptr : &pool, invariant);
          check(x, m, ldx, w, 0, sh.n, y, ldy);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = sh.n; j < ldy; ++j) ASSERT_TRUE(std::isnan(y[i * ldy + j]));  // not written
        }
    }
  }
}

// The decode kernel by itself at every m (the public path sends m > 4 to the panels).
TEST_P(GemmQ4, DecodeKernelMatchesFormulaAtAnyRows) {
  IsaScope scope(GetParam());
  std::mt19937 rng(77);
  ThreadPool pool(2);
  const Q4 w = make_q4(100, 640, 64, rng);
  for (int64_t m : {1, 4, 5, 9}) {
    SCOPED_TRACE(::testing::Message() << "m=" << m);
    const std::vector<float> x = randn(static_cast<size_t>(m * w.k), rng);
    std::vector<float> y(static_cast<size_t>(m * w.n));
    gemm_q4_decode(x.data(), m, w.k, w.ref(), y.data(), w.n, &pool);
    check(x, m, w.k, w, 0, w.n, y, w.n);
  }
}

TEST_P(GemmQ4, RowSlicesReadTheirOwnScales) {
  IsaScope scope(GetParam());
  std::mt19937 rng(5);
  const Q4 w = make_q4(200, 256, 32, rng);
  for (const auto& [r0, count] : {std::pair<int64_t, int64_t>{37, 32}, {1, 1}, {100, 100}, {199, 1}})
    for (int64_t m : {1, 3, 8}) {
      SCOPED_TRACE(::testing::Message() << "rows " << r0 << "+" << count << " m=" << m);
      const std::vector<float> x = randn(static_cast<size_t>(m * w.k), rng);
      std::vector<float> y(static_cast<size_t>(m * count));
      gemm_xwt(x.data(), m, w.k, w.ref().rows(r0, count), y.data(), count, nullptr);
      check(x, m, w.k, w, r0, count, y, count);
    }
}

// Row-invariant mode: a row's result is the same bits whatever m (as batch_invariant needs).
TEST_P(GemmQ4, RowInvariantResultsDoNotDependOnRows) {
  IsaScope scope(GetParam());
  std::mt19937 rng(9);
  ThreadPool pool(2);
  const Q4 w = make_q4(70, 384, 128, rng);
  const std::vector<float> x = randn(static_cast<size_t>(17 * w.k), rng);
  std::vector<float> one(static_cast<size_t>(w.n)), many(static_cast<size_t>(17 * w.n));
  gemm_xwt(x.data(), 1, w.k, w.ref(), one.data(), w.n, &pool, true);
  gemm_xwt(x.data(), 17, w.k, w.ref(), many.data(), w.n, &pool, true);
  for (int64_t j = 0; j < w.n; ++j) ASSERT_EQ(one[j], many[j]) << j;
}

// dequant_row (the panel path's and any caller's) gives d * q + m for every column span.
TEST_P(GemmQ4, DequantRowIsTheFormula) {
  IsaScope scope(GetParam());
  std::mt19937 rng(11);
  const Q4 w = make_q4(3, 256, 64, rng);
  std::vector<float> out(256);
  for (const auto& [c0, count] : {std::pair<int64_t, int64_t>{0, 256}, {5, 100}, {31, 2}, {32, 64}, {255, 1}})
    for (int64_t r = 0; r < w.n; ++r) {
      dequant_row(w.ref(), r, c0, count, out.data());
      for (int64_t j = 0; j < count; ++j)
        ASSERT_NEAR(out[j], w.value(r, c0 + j), 1e-6 * (1 + std::fabs(w.value(r, c0 + j))))
            << "row " << r << " col " << c0 + j;
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemmQ4,
                         ::testing::Values(CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512),
                         [](const ::testing::TestParamInfo<CpuIsa>& i) { return isa_param_name(i.param); });

// float_to_f16 rounds to nearest even: every finite fp16 value comes back exactly, midpoints go to the
// even neighbour, overflow gives infinity, NaN stays NaN.
TEST(Float16, RoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t b = static_cast<uint16_t>(h);
    if ((b & 0x7c00) == 0x7c00) continue;
    ASSERT_EQ(float_to_f16(f16_to_float(b)), b) << std::hex << h;
    if ((b & 0x7fff) == 0x7bff) continue;  // the largest finite: its upper midpoint rounds to infinity
    const float lo = f16_to_float(b), hi = f16_to_float(static_cast<uint16_t>(b + 1));
    if ((b & 0x8000) || std::isinf(hi)) continue;
    const float mid = 0.5f * (lo + hi);  // exact in fp32
    ASSERT_EQ(float_to_f16(mid), (b & 1) ? b + 1 : b) << std::hex << h;
  }
  EXPECT_EQ(float_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_f16(1e-9f), 0x0000);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_f16(NAN) & 0x7c00, 0x7c00);
  EXPECT_NE(float_to_f16(NAN) & 0x03ff, 0);
}

}  // namespace
}  // namespace moert::kernels::test
