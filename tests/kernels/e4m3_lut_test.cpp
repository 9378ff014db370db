// The AVX-512 VBMI e4m3 -> fp32 table lookup (cpu_vbmi()) against the widening conversion it replaces and
// the scalar reference: every byte value through dequant_row, and the small-M FP8 GEMM bit for bit with the
// lookup on and off, and within the rounding bound of the portable kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cpu/dequant.h"
#include "cpu/gemm.h"
#include "cpu/numeric_types.h"
#include "cpu/thread_pool.h"
#include "kernel_test_util.h"

namespace moert::kernels::test {
namespace {

struct VbmiScope {
  bool saved;
  explicit VbmiScope(bool on) : saved(cpu_vbmi()) { set_cpu_vbmi(on); }
  ~VbmiScope() { set_cpu_vbmi(saved); }
};

bool lookup_available() {
  return cpu_isa_supported() == CpuIsa::kAvx512 && cpu_vbmi_supported();
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// dequant_row of one row holding the 256 codes `reps` times, starting at column col0 of a longer row.
std::vector<float> dequant_all_codes(bool vbmi, float scale, int64_t col0) {
  VbmiScope v(vbmi);
  const int64_t k = 1024;
  std::vector<uint8_t> q(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) q[i] = static_cast<uint8_t>(i);
  std::vector<float> scales(8, scale);
  WeightRef w;
  w.type = DType::kF8E4M3;
  w.data = q.data();
  w.n = 1;
  w.k = k;
  w.ld = k;
  w.scale = scales.data();
  w.scale_ld = 8;
  std::vector<float> out(static_cast<size_t>(k - col0));
  dequant_row(w, 0, col0, k - col0, out.data());
  return out;
}

TEST(E4m3Lookup, EveryCodeMatchesTheWideningConversionAndTheReference) {
  if (!lookup_available()) GTEST_SKIP() << "no AVX-512 VBMI here";
  IsaScope isa(CpuIsa::kAvx512);
  for (float s : {1.0f, 3.0e-3f, 7.5f})
    for (int64_t col0 : {int64_t{0}, int64_t{5}, int64_t{64}}) {
      const std::vector<float> lut = dequant_all_codes(true, s, col0),
                               wide = dequant_all_codes(false, s, col0);
      ASSERT_EQ(lut.size(), wide.size());
      for (size_t j = 0; j < lut.size(); ++j) {
        const auto code = static_cast<uint8_t>((col0 + static_cast<int64_t>(j)) & 0xff);
        // the NaN codes 0x7f / 0xff read as +-480 in both vector conversions: compared, not referenced
        ASSERT_EQ(bits(lut[j]), bits(wide[j])) << "code " << int{code} << " scale " << s << " col0 " << col0;
        if ((code & 0x7f) == 0x7f) continue;
        const float expect = s == 1.0f ? e4m3_to_float(code) : static_cast<float>(e4m3_formula(code)) * s;
        ASSERT_EQ(bits(lut[j]), bits(expect)) << "code " << int{code} << " scale " << s;
      }
    }
}

// K values that exercise the 64-column lookup steps and each tail (32, 16, partial) after them.
TEST(E4m3Lookup, SmallMGemmIsBitIdenticalWithAndWithoutTheLookup) {
  if (!lookup_available()) GTEST_SKIP() << "no AVX-512 VBMI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(77);
  ThreadPool pool(2);
  for (int64_t k : {int64_t{64}, int64_t{100}, int64_t{1100}, int64_t{2048}, int64_t{2048 + 48 + 5}}) {
    const int64_t n = 261;
    const TestWeight w = make_weight(DType::kF8E4M3, n, k, rng, /*ld_pad=*/3);
    for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}}) {
      SCOPED_TRACE(::testing::Message() << "k=" << k << " m=" << m);
      const std::vector<float> x = randn(static_cast<size_t>(m * k), rng);
      std::vector<float> y_lut(static_cast<size_t>(m * n)), y_wide(y_lut.size()), y_port(y_lut.size());
      {
        VbmiScope v(true);
        gemm_xwt(x.data(), m, k, w.ref(), y_lut.data(), n, &pool);
      }
      {
        VbmiScope v(false);
        gemm_xwt(x.data(), m, k, w.ref(), y_wide.data(), n, &pool);
      }
      {
        IsaScope portable(CpuIsa::kPortable);
        gemm_xwt(x.data(), m, k, w.ref(), y_port.data(), n, nullptr);
      }
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          const size_t at = static_cast<size_t>(i * n + j);
          ASSERT_EQ(bits(y_lut[at]), bits(y_wide[at])) << "y[" << i << ", " << j << "]";
          double abs_sum = 0;
          for (int64_t c = 0; c < k; ++c) abs_sum += std::fabs(x[i * k + c] * w.value[j * k + c]);
          // both sum the same products in fp32, in different orders
          const double bound = 2 * 6.0 * 1.2e-7 * std::sqrt(static_cast<double>(k) + 1.0) * abs_sum + 1e-30;
          ASSERT_LE(std::fabs(static_cast<double>(y_lut[at]) - y_port[at]), bound)
              << "y[" << i << ", " << j << "]";
        }
    }
  }
}

TEST(E4m3Lookup, SwitchFollowsTheCpu) {
  VbmiScope v(true);
  EXPECT_EQ(cpu_vbmi(), cpu_vbmi_supported());
  set_cpu_vbmi(false);
  EXPECT_FALSE(cpu_vbmi());
}

}  // namespace
}  // namespace moert::kernels::test
