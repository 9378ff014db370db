// The int8-activation q4 prefill paths (kernels/cpu/gemm_q4_prefill.cpp: AVX-512 VNNI; gemm_q4_amx.cpp: the
// AMX-INT8 kernel on the tiles' scalar model, and on the tiles where this CPU has them) against a scalar
// reference of the same int8 math within fp32 summation rounding, and against the exact fp32-weight
// product within the bound x's int8 rounding allows (the decode int8 test's helpers). Odd shapes: m not a
// multiple of a tile's rows, n not a multiple of a panel, groups of 32, 64, 128 and 256, k ending on a
// partial 128-column step, strided x and y, row slices, 1 and 2 threads. Rows independent of m: to the bit,
// on each path; the VNNI path also equals the int8 decode kernel to the bit. How gemm_xwt routes: int8
// switch, AmxUse, row-invariant mode, unsupported group sizes. Skips (with a message) without VNNI.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "cpu/gemm.h"
#include "cpu/gemm_fp8act.h"
#include "cpu/gemm_q4.h"
#include "cpu/thread_pool.h"
#include "kernel_test_util.h"
#include "q4_test_util.h"

namespace moert::kernels::test {
namespace {

struct AmxScope {
  AmxUse saved = amx_use();
  explicit AmxScope(AmxUse use) { set_amx_use(use); }
  ~AmxScope() { set_amx_use(saved); }
};

// The int8 prefill paths this CPU and build run; empty without VNNI.
std::vector<Q4PrefillPath> int8_paths() {
  std::vector<Q4PrefillPath> p;
  if (!available()) return p;
  p.push_back(Q4PrefillPath::kVnniInt8);
  const Q4 probe = [] {
    std::mt19937 rng(1);
    return make_q4(1, 32, 32, rng);
  }();
  float x[32] = {}, y[1];
  if (gemm_q4_prefill(x, 1, 32, probe.ref(), y, 1, nullptr, Q4PrefillPath::kAmxInt8Model))
    p.push_back(Q4PrefillPath::kAmxInt8Model);
  if (amx_int8_ready()) p.push_back(Q4PrefillPath::kAmxInt8);
  return p;
}

struct Shape {
  int64_t n, k, group;
};
// n = 37, 33, 39: neither a multiple of the VNNI tile's 4 rows nor of the AMX panel's 32 (39: a last VNNI
// panel of 3 rows); k = 160, 224 and 192 end on a partial 128-column step; group 256 spans two steps.
const Shape kShapes[] = {{37, 256, 32},  {64, 640, 64}, {33, 1408, 32}, {70, 384, 128},
                         {21, 512, 256}, {39, 160, 32}, {35, 224, 32},  {33, 192, 64}};

TEST(GemmQ4Prefill, MatchesTheInt8MathAndTheExactProductWithinXsRounding) {
  const std::vector<Q4PrefillPath> paths = int8_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(4242);
  ThreadPool pool(2);
  for (const Shape& sh : kShapes) {
    const Q4 w = make_q4(sh.n, sh.k, sh.group, rng);
    for (int64_t m : {5, 7, 33, 40, 150}) {  // 40: a full and a padded AMX step of 32 rows; 150: 3 x blocks
      const int64_t ldx = sh.k + 3, ldy = sh.n + 5;
      std::vector<float> x = randn(static_cast<size_t>(m * ldx), rng);
      for (int64_t c = 0; c < sh.group; ++c) x[ldx + c] = 0.0f;  // a group of zeros (amax 0) in row 1
      x[2 * ldx + 5] = 40.0f;                                    // an outlier: its group's codes shrink
      std::vector<Expect> want;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < sh.n; ++j) want.push_back(expect(w, x.data() + i * ldx, j));
      for (Q4PrefillPath path : paths)
        for (int threads : {1, 2}) {
          SCOPED_TRACE(::testing::Message() << q4_prefill_path_name(path) << " n=" << sh.n << " k=" << sh.k
                                            << " group=" << sh.group << " m=" << m << " threads=" << threads);
          std::vector<float> y(static_cast<size_t>(m * ldy), NAN);
          ASSERT_TRUE(gemm_q4_prefill(x.data(), m, ldx, w.ref(), y.data(), ldy,
                                      threads == 1 ? nullptr : &pool, path));
          int bad = 0;
          for (int64_t i = 0; i < m && bad < 5; ++i) {
            for (int64_t j = 0; j < sh.n && bad < 5; ++j) {
              const Expect& e = want[i * sh.n + j];
              const double got = y[i * ldy + j];
              if (!(std::fabs(got - e.int8) <= fp32_bound(e, sh.k))) {
                ADD_FAILURE() << "y[" << i << ", " << j << "] = " << got << ", int8 math " << e.int8
                              << " (tol " << fp32_bound(e, sh.k) << ")";
                ++bad;
              }
              if (!(std::fabs(got - e.exact) <= exact_bound(e, sh.k))) {
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

// A row's result is the same to the bit computed alone, in a small batch or in a large one, with any
// threads (each path's arithmetic per output does not depend on the other rows, and padded rows add exact
// zeros); the VNNI path's also equals the int8 decode kernel's.
TEST(GemmQ4Prefill, RowsDoNotDependOnM) {
  const std::vector<Q4PrefillPath> paths = int8_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(99);
  ThreadPool pool(2);
  for (const Shape& sh : {Shape{45, 640, 32}, Shape{40, 512, 128}}) {
    const Q4 w = make_q4(sh.n, sh.k, sh.group, rng);
    const int64_t m = 37;
    const std::vector<float> x = randn(static_cast<size_t>(m * sh.k), rng);
    for (Q4PrefillPath path : paths) {
      SCOPED_TRACE(::testing::Message() << q4_prefill_path_name(path) << " group=" << sh.group);
      std::vector<float> all(static_cast<size_t>(m * sh.n)), part(static_cast<size_t>(6 * sh.n)),
          one(static_cast<size_t>(sh.n)), dec(one.size());
      ASSERT_TRUE(gemm_q4_prefill(x.data(), m, sh.k, w.ref(), all.data(), sh.n, &pool, path));
      ASSERT_TRUE(gemm_q4_prefill(x.data() + 30 * sh.k, 6, sh.k, w.ref(), part.data(), sh.n, nullptr, path));
      for (int64_t i = 0; i < m; ++i) {
        ASSERT_TRUE(gemm_q4_prefill(x.data() + i * sh.k, 1, sh.k, w.ref(), one.data(), sh.n, nullptr, path));
        for (int64_t j = 0; j < sh.n; ++j) {
          ASSERT_EQ(all[i * sh.n + j], one[j]) << "row " << i << ", " << j;
          if (i >= 30 && i < 36) {
            ASSERT_EQ(part[(i - 30) * sh.n + j], one[j]) << "row " << i << ", " << j;
          }
        }
        if (path == Q4PrefillPath::kVnniInt8) {
          ASSERT_TRUE(gemm_q4_decode_int8(x.data() + i * sh.k, 1, sh.k, w.ref(), dec.data(), sh.n, nullptr));
          for (int64_t j = 0; j < sh.n; ++j) ASSERT_EQ(dec[j], one[j]) << "row " << i << ", " << j;
        }
      }
    }
  }
}

// A NaN or an Inf in x gives a NaN row, as the fp32 kernels give a non-finite one, not a finite number:
// the quantiser's max would drop a NaN, and int8 has no code for either.
TEST(GemmQ4Prefill, NonFiniteXGivesNonFiniteRows) {
  const std::vector<Q4PrefillPath> paths = int8_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(7);
  const int64_t n = 20, k = 256, m = 6;
  const Q4 w = make_q4(n, k, 32, rng);
  std::vector<float> x = randn(static_cast<size_t>(m * k), rng);
  x[1 * k + 0] = NAN;        // the first column of a group
  x[3 * k + 77] = INFINITY;  // mid-group
  x[4 * k + 255] = -INFINITY;
  auto check = [&](const std::vector<float>& y, int64_t rows, const char* what) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const bool bad = i == 1 || i == 3 || i == 4;
        EXPECT_EQ(std::isfinite(y[i * n + j]), !bad)
            << what << " row " << i << ", " << j << ": " << y[i * n + j];
      }
  };
  for (Q4PrefillPath path : paths) {
    std::vector<float> y(static_cast<size_t>(m * n), 0.0f);
    ASSERT_TRUE(gemm_q4_prefill(x.data(), m, k, w.ref(), y.data(), n, nullptr, path));
    check(y, m, q4_prefill_path_name(path));
  }
  std::vector<float> y(static_cast<size_t>(m * n), 0.0f);
  ASSERT_TRUE(gemm_q4_decode_int8(x.data(), m, k, w.ref(), y.data(), n, nullptr));
  check(y, m, "decode int8");
}

// A row slice reads its own rows' codes, scales and offsets.
TEST(GemmQ4Prefill, RowSlicesReadTheirOwnRows) {
  const std::vector<Q4PrefillPath> paths = int8_paths();
  if (paths.empty()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(17);
  const Q4 w = make_q4(200, 256, 32, rng);
  const int64_t m = 9;
  const std::vector<float> x = randn(static_cast<size_t>(m * w.k), rng);
  for (Q4PrefillPath path : paths)
    for (const auto& [r0, count] : {std::pair<int64_t, int64_t>{37, 32}, {1, 1}, {100, 100}, {199, 1}}) {
      SCOPED_TRACE(::testing::Message() << q4_prefill_path_name(path) << " rows " << r0 << "+" << count);
      std::vector<float> y(static_cast<size_t>(m * count));
      ASSERT_TRUE(gemm_q4_prefill(x.data(), m, w.k, w.ref().rows(r0, count), y.data(), count, nullptr, path));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < count; ++j) {
          const Expect e = expect(w, x.data() + i * w.k, r0 + j);
          ASSERT_NEAR(y[i * count + j], e.int8, fp32_bound(e, w.k)) << i << ", " << j;
        }
    }
}

// gemm_xwt beyond kQ4DecodeRows: the int8 switch off gives the fp32 panel path; on, AmxUse picks the AMX
// kernel (kModel: the scalar model; kAuto: the tiles where ready) or VNNI (kOff, or kAuto without AMX);
// row-invariant mode is the panel path whatever the switches; a group size the int8 kernels do not take
// (96) falls back to the panel path.
TEST(GemmQ4Prefill, RoutingFollowsTheSwitches) {
  if (int8_paths().empty()) GTEST_SKIP() << "no AVX-512 VNNI here";
  IsaScope isa(CpuIsa::kAvx512);
  std::mt19937 rng(5);
  ThreadPool pool(2);
  for (const Shape& sh : {Shape{70, 1408, 32}, Shape{40, 384, 96}}) {
    const Q4 w = make_q4(sh.n, sh.k, sh.group, rng);
    const int64_t m = 11;
    const std::vector<float> x = randn(static_cast<size_t>(m * sh.k), rng);
    const size_t size = static_cast<size_t>(m * sh.n);
    auto run_xwt = [&](bool row_invariant) {
      std::vector<float> y(size);
      gemm_xwt(x.data(), m, sh.k, w.ref(), y.data(), sh.n, &pool, row_invariant);
      return y;
    };
    auto run_path = [&](Q4PrefillPath path) {
      std::vector<float> y(size);
      if (!gemm_q4_prefill(x.data(), m, sh.k, w.ref(), y.data(), sh.n, &pool, path)) y.clear();
      return y;
    };
    SCOPED_TRACE(::testing::Message() << "group " << sh.group);
    const std::vector<float> panel = run_path(Q4PrefillPath::kFp32Panel), inv = run_xwt(true);
    const bool int8_group = sh.group != 96;
    EXPECT_EQ(run_path(Q4PrefillPath::kVnniInt8).empty(), !int8_group);
    {
      Int8Scope s(false);
      AmxScope a(AmxUse::kModel);
      EXPECT_EQ(q4_prefill_path(), Q4PrefillPath::kFp32Panel);
      EXPECT_EQ(run_xwt(false), panel);
      EXPECT_EQ(run_xwt(true), inv);
    }
    Int8Scope s(true);
    for (AmxUse use : {AmxUse::kOff, AmxUse::kAuto, AmxUse::kModel}) {
      AmxScope a(use);
      const Q4PrefillPath want = use == AmxUse::kModel                      ? Q4PrefillPath::kAmxInt8Model
                                 : use == AmxUse::kAuto && amx_int8_ready() ? Q4PrefillPath::kAmxInt8
                                                                            : Q4PrefillPath::kVnniInt8;
      EXPECT_EQ(q4_prefill_path(), want) << q4_prefill_path_name(q4_prefill_path());
      const std::vector<float> direct = run_path(want);
      EXPECT_EQ(run_xwt(false), int8_group ? direct : panel) << q4_prefill_path_name(want);
      EXPECT_EQ(run_xwt(true), inv);
      if (int8_group) {
        EXPECT_NE(direct, panel) << "the int8 path should round differently somewhere";
      }
    }
  }
}

TEST(GemmQ4Prefill, ReportsThePaths) {
  const CpuMatmulFeatures& f = cpu_matmul_features();
  std::printf("avx512_vnni %d amx_int8 %d (tiles ready %d, self-check failed %d); int8 paths here:",
              f.avx512_vnni, f.amx_int8, amx_int8_ready(), amx_int8_self_check_failed());
  for (Q4PrefillPath p : int8_paths()) std::printf(" %s", q4_prefill_path_name(p));
  std::printf("; gemm_xwt takes %s\n", q4_prefill_path_name(q4_prefill_path()));
  EXPECT_FALSE(amx_int8_self_check_failed());
}

}  // namespace
}  // namespace moert::kernels::test
