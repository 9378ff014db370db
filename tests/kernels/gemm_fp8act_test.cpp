// gemm_xwt_fp8act (FP8 x FP8 on the CPU's matrix instructions) against the portable reference: x through
// act_quant_dequant, then gemm_xwt_reference. Shapes with partial 128 blocks, K odd, N not a multiple of 32,
// row slices, 1 and 2 threads; rows independent of m; on every path this CPU runs (AVX-512-BF16, the AMX
// kernel on its tile model, the AMX tiles where usable). And gemm_xwt_amx (fp32 x on the tiles, x in three
// bf16 terms) against gemm_xwt_reference on x itself. Skips (with a message) where the CPU has no
// AVX-512-BF16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cpu/act_quant.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/gemm_fp8act.h"
#include "cpu/thread_pool.h"
#include "kernel_test_util.h"

namespace moert::kernels::test {
namespace {

// Sets the matrix paths for a test and restores them.
struct MatmulScope {
  bool saved = cpu_matmul_enabled();
  AmxUse saved_amx = amx_use();
  MatmulScope(bool avx512 = true, AmxUse amx = AmxUse::kOff) {
    set_cpu_matmul(avx512);
    set_amx_use(amx);
  }
  ~MatmulScope() {
    set_cpu_matmul(saved);
    set_amx_use(saved_amx);
  }
};

// The paths this CPU can run: AVX-512-BF16, the AMX kernel on the tile model, and on the tiles themselves.
struct PathCase {
  const char* name;
  bool avx512;
  AmxUse amx;
};
// (A lowered MOERT_CPU_ISA leaves only the model: the others are AVX-512 code.)
std::vector<PathCase> paths_here() {
  std::vector<PathCase> p;
  if (!cpu_matmul_features().avx512_bf16) return p;
  const bool avx512 = cpu_isa() == CpuIsa::kAvx512;
  if (avx512) p.push_back({"avx512-bf16", true, AmxUse::kOff});
  p.push_back({"amx-model", false, AmxUse::kModel});
  if (avx512 && amx_ready()) p.push_back({"amx-bf16", false, AmxUse::kAuto});
  return p;
}

struct Case {
  int64_t m, n, k;
};

using Gemm = bool (*)(const float*, int64_t, int64_t, const WeightRef&, float*, int64_t, ThreadPool*);

// gemm on x against want (the reference on xr, the x values whose products it sums): every element within
// 1e-6 sqrt(k) sum |xr w| (fp32 sums in another order, a few units of rounding each), and the first rows
// alone give the same bits (rows independent of m).
void expect_matches(const char* name, Gemm gemm, const Case& cs, const std::vector<float>& x,
                    const std::vector<float>& xr, int64_t ldx, const TestWeight& w,
                    const std::vector<float>& want, int64_t ldy, ThreadPool* pool) {
  std::vector<float> got(cs.m * ldy, -1.0f);
  ASSERT_TRUE(gemm(x.data(), cs.m, ldx, w.ref(), got.data(), ldy, pool)) << name;
  int bad = 0;
  for (int64_t i = 0; i < cs.m && bad < 5; ++i)
    for (int64_t j = 0; j < cs.n && bad < 5; ++j) {
      double abs_acc = 0;
      for (int64_t c = 0; c < cs.k; ++c) abs_acc += std::fabs(xr[i * ldx + c] * w.value[j * cs.k + c]);
      const double tol = 1e-6 * std::sqrt(static_cast<double>(cs.k)) * abs_acc + 1e-30;
      if (!(std::fabs(got[i * ldy + j] - want[i * ldy + j]) <= tol)) {
        ADD_FAILURE() << name << " m " << cs.m << " n " << cs.n << " k " << cs.k << ": y[" << i << ", " << j
                      << "] = " << got[i * ldy + j] << ", expected " << want[i * ldy + j] << " (tol " << tol
                      << ")";
        ++bad;
      }
    }
  const int64_t few = std::min<int64_t>(cs.m, 5);
  std::vector<float> part(few * ldy, -1.0f);
  ASSERT_TRUE(gemm(x.data(), few, ldx, w.ref(), part.data(), ldy, pool));
  for (int64_t i = 0; i < few; ++i)
    EXPECT_EQ(0, std::memcmp(part.data() + i * ldy, got.data() + i * ldy, cs.n * sizeof(float)))
        << name << " row " << i;
}

TEST(GemmFp8Act, MatchesQuantisedReference) {
  if (!cpu_matmul_features().avx512_bf16) GTEST_SKIP() << "no AVX-512-BF16 on this CPU: path not tested here";
  if (!amx_ready()) std::printf("AMX tiles not usable here: their kernel runs on the tile model only\n");
  for (const PathCase& path : paths_here()) {
    MatmulScope on(path.avx512, path.amx);
    ASSERT_STREQ(path.name, cpu_matmul_path());
    std::mt19937 rng(3);
    ThreadPool pool2(2);
    // {33, 61, 257}: a last panel of 29 weight rows (the second column tile in part)
    const Case cases[] = {{17, 96, 384},  {64, 100, 300}, {130, 37, 1100}, {7, 64, 128},
                          {33, 200, 257}, {1, 40, 77},    {33, 61, 257}};
    for (const Case& cs : cases)
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
        TestWeight w = make_weight(DType::kF8E4M3, cs.n, cs.k, rng);
        std::vector<float> x = randn(static_cast<size_t>(cs.m * (cs.k + 3)), rng, 2.0f);
        const int64_t ldx = cs.k + 3, ldy = cs.n + 5;
        std::vector<float> xq = x, want(cs.m * ldy, 0.0f);
        act_quant_dequant(xq.data(), cs.m, ldx, cs.k);
        gemm_xwt_reference(xq.data(), cs.m, ldx, w.ref(), want.data(), ldy);
        expect_matches(path.name, gemm_xwt_fp8act, cs, x, xq, ldx, w, want, ldy, pool);
      }
  }
}

TEST(GemmFp8Act, RowSlicesAndFallbacks) {
  MatmulScope on(true, AmxUse::kOff);
  std::mt19937 rng(5);
  TestWeight w = make_weight(DType::kF8E4M3, 256, 384, rng);
  std::vector<float> x = randn(20 * 384, rng), y(20 * 96);
  // a slice off the 32-row grid, and non-FP8 weights, are declined (the caller falls back)
  EXPECT_FALSE(gemm_xwt_fp8act(x.data(), 20, 384, w.ref().rows(16, 96), y.data(), 96, nullptr));
  TestWeight wb = make_weight(DType::kBF16, 96, 384, rng);
  EXPECT_FALSE(gemm_xwt_fp8act(x.data(), 20, 384, wb.ref(), y.data(), 96, nullptr));
  set_cpu_matmul(false);
  EXPECT_FALSE(gemm_xwt_fp8act(x.data(), 20, 384, w.ref(), y.data(), 96, nullptr));
  EXPECT_STREQ("none", cpu_matmul_path());
  if (!cpu_matmul_features().avx512_bf16) GTEST_SKIP() << "no AVX-512-BF16 on this CPU: path not tested here";
  // a slice on the grid whose rows cross a 128-row scale block (rows 96 .. 191), on every path
  const WeightRef s = w.ref().rows(96, 96);
  std::vector<float> xq = x, want(20 * 96);
  act_quant_dequant(xq.data(), 20, 384, 384);
  gemm_xwt_reference(xq.data(), 20, 384, s, want.data(), 96);
  for (const PathCase& path : paths_here()) {
    MatmulScope p(path.avx512, path.amx);
    std::fill(y.begin(), y.end(), -1.0f);
    ASSERT_TRUE(gemm_xwt_fp8act(x.data(), 20, 384, s, y.data(), 96, nullptr)) << path.name;
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_NEAR(y[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << path.name << " " << i;
  }
}

// The AMX switch: off turns the tiles off; the model is only what it is asked for; auto is the tiles where
// they are ready, else the opt-in AVX-512-BF16 path or none.
TEST(GemmFp8Act, AmxUseSelectsThePath) {
  MatmulScope scope(false, AmxUse::kOff);
  const bool avx512 = cpu_isa() == CpuIsa::kAvx512;  // a lowered ISA turns both matrix paths off
  EXPECT_STREQ("none", cpu_matmul_path());
  set_amx_use(AmxUse::kAuto);
  EXPECT_STREQ(avx512 && amx_ready() ? "amx-bf16" : "none", cpu_matmul_path());
  set_cpu_matmul(true);
  EXPECT_STREQ(!avx512                             ? "none"
               : amx_ready()                       ? "amx-bf16"
               : cpu_matmul_features().avx512_bf16 ? "avx512-bf16"
                                                   : "none",
               cpu_matmul_path());
  set_amx_use(AmxUse::kModel);
  if (cpu_matmul_features().avx512_bf16) {
    EXPECT_STREQ("amx-model", cpu_matmul_path());
  }
}

TEST(GemmFp8Act, ReportsFeatures) {
  const CpuMatmulFeatures& f = cpu_matmul_features();
  std::printf(
      "avx512_bf16 %d avx512_vnni %d amx_tile %d amx_bf16 %d amx_int8 %d (tiles ready %d, self-check failed "
      "%d); path %s\n",
      f.avx512_bf16, f.avx512_vnni, f.amx_tile, f.amx_bf16, f.amx_int8, amx_ready(), amx_self_check_failed(),
      cpu_matmul_path());
  // Tiles the CPU has but that disagree with their model are a kernel bug to fix, not a fallback to accept.
  EXPECT_FALSE(amx_self_check_failed());
}

// fp32 activations on the tiles (gemm_xwt_amx): x split into three bf16 terms, so against the fp32
// reference only the order of the fp32 sums differs. On the tile model everywhere with AVX-512-BF16, and on
// the tiles where ready; off, or with a non-FP8 weight, it declines.
std::vector<PathCase> tile_paths_here() {
  std::vector<PathCase> p;
  for (const PathCase& c : paths_here())
    if (c.amx != AmxUse::kOff) p.push_back(c);
  return p;
}

TEST(GemmXwtAmx, MatchesTheFp32Reference) {
  if (!cpu_matmul_features().avx512_bf16) GTEST_SKIP() << "no AVX-512-BF16 on this CPU: path not tested here";
  {
    MatmulScope off(false, AmxUse::kOff);
    std::mt19937 rng(1);
    TestWeight w = make_weight(DType::kF8E4M3, 64, 256, rng), wb = make_weight(DType::kBF16, 64, 256, rng);
    std::vector<float> x = randn(20 * 256, rng), y(20 * 64);
    EXPECT_FALSE(gemm_xwt_amx(x.data(), 20, 256, w.ref(), y.data(), 64, nullptr));
    // on a tile path, a non-FP8 weight or a slice off the 32-row grid is declined
    set_amx_use(AmxUse::kModel);
    EXPECT_FALSE(gemm_xwt_amx(x.data(), 20, 256, wb.ref(), y.data(), 64, nullptr));
    EXPECT_FALSE(gemm_xwt_amx(x.data(), 20, 256, w.ref().rows(16, 32), y.data(), 64, nullptr));
  }
  for (const PathCase& path : tile_paths_here()) {
    MatmulScope on(false, path.amx);
    std::mt19937 rng(7);
    ThreadPool pool2(2);
    // x spread over many binades (so all three terms matter), K not a multiple of 128 or 32, N not of 32,
    // several panels a task and several tasks
    const Case cases[] = {{17, 96, 384}, {40, 200, 1100}, {33, 61, 257}, {64, 300, 130}, {1, 40, 77}};
    for (const Case& cs : cases)
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
        TestWeight w = make_weight(DType::kF8E4M3, cs.n, cs.k, rng);
        const int64_t ldx = cs.k + 3, ldy = cs.n + 5;
        std::vector<float> x = randn(static_cast<size_t>(cs.m * ldx), rng, 2.0f);
        std::uniform_real_distribution<float> e(-20.0f, 20.0f);
        for (float& v : x) v *= std::exp2(e(rng));
        std::vector<float> want(cs.m * ldy, 0.0f);
        gemm_xwt_reference(x.data(), cs.m, ldx, w.ref(), want.data(), ldy);
        expect_matches(path.name, gemm_xwt_amx, cs, x, x, ldx, w, want, ldy, pool);
      }
  }
}

// A term split that dropped bits would show as a relative error near 2^-9 or 2^-17 on a single product; x
// with all 24 bits set must come out within a few fp32 roundings. Non-finite x reaches y (Inf as Inf, NaN as
// NaN), as in gemm_xwt.
TEST(GemmXwtAmx, FullPrecisionProductsAndNonFiniteX) {
  if (!cpu_matmul_features().avx512_bf16) GTEST_SKIP() << "no AVX-512-BF16 on this CPU: path not tested here";
  for (const PathCase& path : tile_paths_here()) {
    MatmulScope on(false, path.amx);
    std::mt19937 rng(11);
    const int64_t m = 20, n = 32, k = 128;
    TestWeight w = make_weight(DType::kF8E4M3, n, k, rng);
    std::vector<float> x(m * k, 0.0f), y(m * n, 0.0f), want(m * n, 0.0f);
    for (int64_t i = 0; i < m; ++i) x[i * k + i] = 1.0f + std::ldexp(static_cast<float>(rng() | 1), -24);
    x[3 * k + 3] = INFINITY;
    x[5 * k + 9] = NAN;
    x[6 * k + 1] = -INFINITY;
    gemm_xwt_reference(x.data(), m, k, w.ref(), want.data(), n);
    ASSERT_TRUE(gemm_xwt_amx(x.data(), m, k, w.ref(), y.data(), n, nullptr));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const float g = y[i * n + j], r = want[i * n + j];
        if (std::isnan(r))
          EXPECT_TRUE(std::isnan(g)) << path.name << " y[" << i << ", " << j << "] = " << g;
        else if (std::isinf(r))
          EXPECT_EQ(r, g) << path.name << " y[" << i << ", " << j << "]";
        else
          EXPECT_NEAR(r, g, 4e-7 * std::fabs(r)) << path.name << " y[" << i << ", " << j << "]";
      }
  }
}

}  // namespace
}  // namespace moert::kernels::test
