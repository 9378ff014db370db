// The int8-activation q4 decode kernel (kernels/cpu/gemm_q4_int8.cpp) against a scalar reference of the same
// int8 math (x quantised per group by amax / 127, ties to even; integer code x activation sums; offsets
// through the quantised group sums) within fp32 rounding, and against the exact fp32 product within the
// bound x's rounding allows (sum_g s_g / 2 * sum |w| over g). Also how gemm_xwt routes to it: decode sizes
// when enabled, never in row-invariant mode.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu/gemm.h"
#include "cpu/gemm_q4.h"
#include "cpu/numeric_types.h"
#include "cpu/thread_pool.h"
#include "kernel_test_util.h"
#include "q4_test_util.h"

namespace moert::kernels::test {
namespace {

struct Shape {
  int64_t n, k, group;
};
// k = 32 and 1408 end on a partial 128-column step; group 128 and 64 take other lane-to-group maps.
const Shape kShapes[] = {{37, 256, 32}, {64, 640, 64},   {130, 384, 128},
                         {5, 32, 32},   {300, 1408, 32}, {48, 2048, 128}};

TEST(GemmQ4Int8, MatchesTheInt8MathAndTheExactProductWithinXsRounding) {
  if (!available()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(321);
  ThreadPool pool(2);
  for (const Shape& sh : kShapes) {
    const Q4 w = make_q4(sh.n, sh.k, sh.group, rng);
    for (int64_t m : {1, 2, 3, 4, 5, 9}) {
      const int64_t ldx = sh.k + 3, ldy = sh.n + 5;
      std::vector<float> x = randn(static_cast<size_t>(m * ldx), rng);
      for (int64_t c = 0; c < std::min<int64_t>(sh.group, sh.k); ++c)
        x[c] = 0.0f;  // a group of zeros (amax 0)
      for (int threads : {1, 2}) {
        SCOPED_TRACE(::testing::Message() << "n=" << sh.n << " k=" << sh.k << " group=" << sh.group
                                          << " m=" << m << " threads=" << threads);
        std::vector<float> y(static_cast<size_t>(m * ldy), NAN);
        ASSERT_TRUE(
            gemm_q4_decode_int8(x.data(), m, ldx, w.ref(), y.data(), ldy, threads == 1 ? nullptr : &pool));
        int bad = 0;
        for (int64_t i = 0; i < m && bad < 5; ++i) {
          for (int64_t j = 0; j < sh.n && bad < 5; ++j) {
            const Expect e = expect(w, x.data() + i * ldx, j);
            const double got = y[i * ldy + j];
            const double fp32 =
                8.0 * 1.2e-7 * std::sqrt(static_cast<double>(sh.k) + 1.0) * e.int8_mag + 1e-30;
            const double fp32_exact = 8.0 * 1.2e-7 * std::sqrt(static_cast<double>(sh.k) + 1.0) * e.exact_mag;
            if (!(std::fabs(got - e.int8) <= fp32)) {
              ADD_FAILURE() << "y[" << i << ", " << j << "] = " << got << ", int8 math " << e.int8 << " (tol "
                            << fp32 << ")";
              ++bad;
            }
            if (!(std::fabs(got - e.exact) <= e.rounding + fp32 + fp32_exact)) {
              ADD_FAILURE() << "y[" << i << ", " << j << "] = " << got << ", exact " << e.exact
                            << " (x rounding " << e.rounding << ")";
              ++bad;
            }
          }
          for (int64_t j = sh.n; j < ldy; ++j) ASSERT_TRUE(std::isnan(y[i * ldy + j]));  // not written
        }
      }
    }
  }
}

// A row slice reads its own rows' scales and offsets.
TEST(GemmQ4Int8, RowSlicesReadTheirOwnScales) {
  if (!available()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(17);
  const Q4 w = make_q4(200, 256, 32, rng);
  for (const auto& [r0, count] : {std::pair<int64_t, int64_t>{37, 32}, {1, 1}, {100, 100}, {199, 1}})
    for (int64_t m : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << "rows " << r0 << "+" << count << " m=" << m);
      const std::vector<float> x = randn(static_cast<size_t>(m * w.k), rng);
      std::vector<float> y(static_cast<size_t>(m * count));
      ASSERT_TRUE(gemm_q4_decode_int8(x.data(), m, w.k, w.ref().rows(r0, count), y.data(), count, nullptr));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < count; ++j) {
          const Expect e = expect(w, x.data() + i * w.k, r0 + j);
          ASSERT_NEAR(y[i * count + j], e.int8, 8.0 * 1.2e-7 * std::sqrt(w.k + 1.0) * e.int8_mag)
              << i << ", " << j;
        }
    }
}

// gemm_xwt takes the int8 kernel at 1-4 rows when enabled, the fp32 kernel when not (beyond 4 rows the int8
// prefill path when enabled, the fp32 panel path when not), and in row-invariant mode the same panel path
// either way (batch_invariant's bits do not depend on the switch).
TEST(GemmQ4Int8, RoutingFollowsTheSwitchAndRowInvariantModeIgnoresIt) {
  if (!available()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(5);
  ThreadPool pool(2);
  const Q4 w = make_q4(70, 1408, 32, rng);
  for (int64_t m : {1, 4, 5}) {
    SCOPED_TRACE(::testing::Message() << "m=" << m);
    const std::vector<float> x = randn(static_cast<size_t>(m * w.k), rng);
    std::vector<float> direct(static_cast<size_t>(m * w.n)), fp32(direct.size()), on(direct.size()),
        off(direct.size()), inv_on(direct.size()), inv_off(direct.size());
    {
      Int8Scope s(true);
      if (m <= kQ4DecodeRows) {
        ASSERT_TRUE(gemm_q4_decode_int8(x.data(), m, w.k, w.ref(), direct.data(), w.n, &pool));
        gemm_q4_decode(x.data(), m, w.k, w.ref(), fp32.data(), w.n, &pool);
      } else {
        ASSERT_NE(q4_prefill_path(), Q4PrefillPath::kFp32Panel);
        ASSERT_TRUE(gemm_q4_prefill(x.data(), m, w.k, w.ref(), direct.data(), w.n, &pool, q4_prefill_path()));
        gemm_q4_panel_fp32(x.data(), m, w.k, w.ref(), fp32.data(), w.n, &pool, false);
      }
      gemm_xwt(x.data(), m, w.k, w.ref(), on.data(), w.n, &pool);
      gemm_xwt(x.data(), m, w.k, w.ref(), inv_on.data(), w.n, &pool, true);
    }
    {
      Int8Scope s(false);
      gemm_xwt(x.data(), m, w.k, w.ref(), off.data(), w.n, &pool);
      gemm_xwt(x.data(), m, w.k, w.ref(), inv_off.data(), w.n, &pool, true);
    }
    int differ = 0;
    for (size_t j = 0; j < direct.size(); ++j) {
      ASSERT_EQ(on[j], direct[j]) << j;
      ASSERT_EQ(off[j], fp32[j]) << j;
      ASSERT_EQ(inv_on[j], inv_off[j]) << j;
      differ += direct[j] != fp32[j];
    }
    EXPECT_GT(differ, 0) << "the int8 kernel should round differently from the fp32 one somewhere";
  }
}

}  // namespace
}  // namespace moert::kernels::test
