// gemm_xwt / gemm_xw / dequant_row against the textbook formula, for every stored type and instruction set,
// odd sizes (partial 128 blocks, K not a multiple of the vector width), row slices whose first row is not
// on a 128-row boundary, M in {1, 2, 3, 5, 17, 64, 130} and 1 or 2 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "cpu/dequant.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"
#include "kernel_test_util.h"

namespace moert::kernels::test {
namespace {

using Param = std::tuple<CpuIsa, DType>;

class GemmTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (static_cast<int>(std::get<0>(GetParam())) > static_cast<int>(cpu_isa_supported()))
      GTEST_SKIP() << "instruction set not supported here";
  }
};

struct Shape {
  int64_t n, k;
};
const Shape kShapes[] = {{576, 192}, {100, 100}, {37, 257}, {130, 512}, {5, 16}, {64, 1100}};
const int64_t kMs[] = {1, 2, 3, 5, 17, 64, 130};

// |err| <= c * eps * sqrt(K) * sum |x w| (plus the fp32 rounding of the result)
double bound(double sum_abs, int64_t k) {
  return 6.0 * 1.2e-7 * std::sqrt(static_cast<double>(k) + 1.0) * sum_abs + 1e-30;
}

// Checks y [m, rows] (ldy) = x [m, k] (ldx) @ value[row_begin .. row_begin + rows]^T.
void check_xwt(const std::vector<float>& x, int64_t m, int64_t ldx, const TestWeight& w, int64_t row_begin,
               int64_t rows, const std::vector<float>& y, int64_t ldy) {
  int bad = 0;
  for (int64_t i = 0; i < m && bad < 5; ++i)
    for (int64_t j = 0; j < rows && bad < 5; ++j) {
      double acc = 0, abs_acc = 0;
      for (int64_t c = 0; c < w.k; ++c) {
        const double t = static_cast<double>(x[i * ldx + c]) * w.value[(row_begin + j) * w.k + c];
        acc += t;
        abs_acc += std::fabs(t);
      }
      const double got = y[i * ldy + j];
      if (!(std::fabs(got - acc) <= bound(abs_acc, w.k))) {
        ADD_FAILURE() << "y[" << i << ", " << j << "] = " << got << ", expected " << acc << " (bound "
                      << bound(abs_acc, w.k) << ")";
        ++bad;
      }
    }
}

TEST_P(GemmTest, XwtMatchesFormula) {
  const auto [isa, type] = GetParam();
  IsaScope scope(isa);
  std::mt19937 rng(1234 + static_cast<int>(type));
  ThreadPool pool(2);
  for (const Shape& sh : kShapes) {
    const TestWeight w = make_weight(type, sh.n, sh.k, rng, /*ld_pad=*/3);
    for (int64_t m : kMs) {
      const int64_t ldx = sh.k + 5, ldy = sh.n + 7;
      const std::vector<float> x = randn(static_cast<size_t>(m * ldx), rng);
      for (int threads : {1, 2}) {
        SCOPED_TRACE(::testing::Message() << type_name(type) << " n=" << sh.n << " k=" << sh.k << " m=" << m
                                          << " threads=" << threads);
        std::vector<float> y(static_cast<size_t>(m * ldy), NAN);
        gemm_xwt(x.data(), m, ldx, w.ref(), y.data(), ldy, threads == 1 ? nullptr : &pool);
        check_xwt(x, m, ldx, w, 0, sh.n, y, ldy);
        // columns between n and ldy are not written
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = sh.n; j < ldy; ++j) ASSERT_TRUE(std::isnan(y[i * ldy + j]));
      }
    }
  }
}

TEST_P(GemmTest, XwtRowSlices) {
  const auto [isa, type] = GetParam();
  IsaScope scope(isa);
  std::mt19937 rng(99 + static_cast<int>(type));
  ThreadPool pool(2);
  const TestWeight w = make_weight(type, 512, 192, rng);
  const struct {
    int64_t r0, count;
  } slices[] = {{37, 128}, {128, 128}, {200, 100}, {101, 300}, {383, 129}, {0, 1}};
  for (const auto& s : slices)
    for (int64_t m : {int64_t{1}, int64_t{3}, int64_t{17}, int64_t{64}})
      for (int threads : {1, 2}) {
        SCOPED_TRACE(::testing::Message() << type_name(type) << " rows " << s.r0 << "+" << s.count
                                          << " m=" << m << " threads=" << threads);
        const std::vector<float> x = randn(static_cast<size_t>(m * w.k), rng);
        std::vector<float> y(static_cast<size_t>(m * s.count));
        gemm_xwt(x.data(), m, w.k, w.ref().rows(s.r0, s.count), y.data(), s.count,
                 threads == 1 ? nullptr : &pool);
        check_xwt(x, m, w.k, w, s.r0, s.count, y, s.count);
      }
}

TEST_P(GemmTest, XwMatchesFormula) {
  const auto [isa, type] = GetParam();
  IsaScope scope(isa);
  std::mt19937 rng(777 + static_cast<int>(type));
  ThreadPool pool(2);
  // W [n, k]: y[m, k] = sum_n x[m, n] W[n, k]; MLA uses [128, 512] slices of kv_b at rows h * 256.
  const TestWeight full = make_weight(type, 700, 512, rng, 2);
  const struct {
    int64_t r0, n, k;  // k: use the first k columns (a narrower view)
  } cases[] = {{0, 128, 512}, {256, 128, 512}, {37, 128, 512}, {300, 100, 200}, {5, 3, 100}, {129, 257, 75}};
  for (const auto& cs : cases)
    for (int64_t m : kMs)
      for (int threads : {1, 2}) {
        SCOPED_TRACE(::testing::Message() << type_name(type) << " rows " << cs.r0 << "+" << cs.n
                                          << " k=" << cs.k << " m=" << m << " threads=" << threads);
        WeightRef r = full.ref().rows(cs.r0, cs.n);
        r.k = cs.k;
        const int64_t ldx = cs.n + 1, ldy = cs.k + 3;
        const std::vector<float> x = randn(static_cast<size_t>(m * ldx), rng);
        std::vector<float> y(static_cast<size_t>(m * ldy), NAN);
        gemm_xw(x.data(), m, ldx, r, y.data(), ldy, threads == 1 ? nullptr : &pool);
        int bad = 0;
        for (int64_t i = 0; i < m && bad < 5; ++i) {
          for (int64_t c = 0; c < cs.k && bad < 5; ++c) {
            double acc = 0, abs_acc = 0;
            for (int64_t j = 0; j < cs.n; ++j) {
              const double t = static_cast<double>(x[i * ldx + j]) * full.value[(cs.r0 + j) * full.k + c];
              acc += t;
              abs_acc += std::fabs(t);
            }
            if (!(std::fabs(y[i * ldy + c] - acc) <= bound(abs_acc, cs.n))) {
              ADD_FAILURE() << "y[" << i << ", " << c << "] = " << y[i * ldy + c] << ", expected " << acc;
              ++bad;
            }
          }
          for (int64_t c = cs.k; c < ldy; ++c) ASSERT_TRUE(std::isnan(y[i * ldy + c]));
        }
      }
}

// Dequantisation is exact: q.float() * scale in fp32, bit for bit, at any column offset.
TEST_P(GemmTest, DequantRowIsExact) {
  const auto [isa, type] = GetParam();
  IsaScope scope(isa);
  std::mt19937 rng(5 + static_cast<int>(type));
  const TestWeight full = make_weight(type, 300, 333, rng, 1);
  for (int64_t r0 : {int64_t{0}, int64_t{37}, int64_t{128}})
    for (int64_t row : {int64_t{0}, int64_t{90}, int64_t{150}}) {
      const WeightRef w = full.ref().rows(r0, 150 + 1);
      for (int64_t col0 : {int64_t{0}, int64_t{1}, int64_t{17}, int64_t{127}, int64_t{128}, int64_t{200}})
        for (int64_t count : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{33}, int64_t{133}}) {
          if (col0 + count > full.k) continue;
          std::vector<float> out(count + 1, 12345.0f);
          dequant_row(w, row, col0, count, out.data());
          for (int64_t j = 0; j < count; ++j)
            ASSERT_EQ(out[j], static_cast<float>(full.value[(r0 + row) * full.k + col0 + j]))
                << "row " << r0 + row << " col " << col0 + j;
          ASSERT_EQ(out[count], 12345.0f);
          ASSERT_EQ(weight_at(w, row, col0), out[0]);
        }
    }
}

// All 256 fp8 codes (NaN codes excepted) through dequant_row, with a scale that keeps subnormal products
// exact.
TEST(Fp8Dequant, AllCodesEveryIsa) {
  for (CpuIsa isa : isas()) {
    SCOPED_TRACE(cpu_isa_name(isa));
    IsaScope scope(isa);
    std::vector<uint8_t> q(256);
    for (int i = 0; i < 256; ++i) q[i] = static_cast<uint8_t>(i);
    for (float s : {1.0f, 0.0078125f, 3.0e-3f, 7.5f}) {
      float scale[2] = {s, s * 2};
      WeightRef w;
      w.type = DType::kF8E4M3;
      w.data = q.data();
      w.n = 1;
      w.k = 256;
      w.ld = 256;
      w.scale = scale;
      w.scale_ld = 2;
      std::vector<float> out(256);
      dequant_row(w, 0, 0, 256, out.data());
      for (int i = 0; i < 256; ++i) {
        if ((i & 0x7f) == 0x7f) continue;
        const float expect = static_cast<float>(e4m3_formula(static_cast<uint8_t>(i))) * scale[i >> 7];
        ASSERT_EQ(out[i], expect) << "code " << i << " scale " << s;
      }
    }
  }
}

std::string name(const ::testing::TestParamInfo<Param>& info) {
  return isa_param_name(std::get<0>(info.param)) + "_" + type_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, GemmTest,
    ::testing::Combine(::testing::Values(CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512),
                       ::testing::Values(DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3)),
    name);

}  // namespace
}  // namespace moert::kernels::test
