// Both attention forms against a naive softmax in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cpu/attention.h"
#include "cpu/thread_pool.h"
#include "kernel_test_util.h"

namespace moert::kernels::test {
namespace {

class AttentionTest : public ::testing::TestWithParam<CpuIsa> {
 protected:
  void SetUp() override {
    if (static_cast<int>(GetParam()) > static_cast<int>(cpu_isa_supported())) GTEST_SKIP();
  }
};

// out = softmax(scores * scale) . values for one query, in double
void naive_softmax(const std::vector<double>& scores, double scale, std::vector<double>& p) {
  p.resize(scores.size());
  if (scores.empty()) return;
  double mx = -INFINITY;
  for (double s : scores) mx = std::max(mx, s * scale);
  double sum = 0;
  for (size_t j = 0; j < scores.size(); ++j) sum += (p[j] = std::exp(scores[j] * scale - mx));
  for (double& v : p) v /= sum;
}

TEST_P(AttentionTest, ExpandedMatchesNaive) {
  IsaScope scope(GetParam());
  std::mt19937 rng(11);
  ThreadPool pool(2);
  const struct {
    int64_t t, s, heads, dqk, dv, pos0;
  } cases[] = {{1, 1, 1, 16, 16, 0},    {7, 7, 2, 24, 20, 0},    {37, 37, 3, 192, 128, 0},
               {30, 50, 2, 40, 33, 20}, {5, 100, 4, 64, 64, 95}, {70, 70, 1, 192, 128, 0}};
  for (const auto& cs : cases)
    for (int threads : {1, 2}) {
      SCOPED_TRACE(::testing::Message() << "t=" << cs.t << " s=" << cs.s << " heads=" << cs.heads
                                        << " dqk=" << cs.dqk << " dv=" << cs.dv << " threads=" << threads);
      const int64_t ldq = cs.heads * cs.dqk + 3, ldk = cs.heads * cs.dqk + 1, ldv = cs.heads * cs.dv + 2,
                    ldo = cs.heads * cs.dv + 5;
      const auto q = randn(cs.t * ldq, rng), k = randn(cs.s * ldk, rng), v = randn(cs.s * ldv, rng);
      std::vector<int32_t> pos(cs.t);
      for (int64_t i = 0; i < cs.t; ++i) pos[i] = static_cast<int32_t>(cs.pos0 + i);
      const float scale = 1.0f / std::sqrt(static_cast<float>(cs.dqk));
      std::vector<float> out(cs.t * ldo, NAN);
      attention_expanded(q.data(), cs.t, ldq, k.data(), ldk, v.data(), ldv, cs.s, cs.heads, cs.dqk, cs.dv,
                         pos.data(), scale, out.data(), ldo, threads == 1 ? nullptr : &pool);
      std::vector<double> sc, p;
      int bad = 0;
      for (int64_t i = 0; i < cs.t; ++i)
        for (int64_t h = 0; h < cs.heads; ++h) {
          const int64_t n = std::min<int64_t>(cs.s, pos[i] + 1);
          sc.assign(n, 0.0);
          for (int64_t j = 0; j < n; ++j)
            for (int64_t d = 0; d < cs.dqk; ++d)
              sc[j] += static_cast<double>(q[i * ldq + h * cs.dqk + d]) * k[j * ldk + h * cs.dqk + d];
          naive_softmax(sc, scale, p);
          for (int64_t c = 0; c < cs.dv; ++c) {
            double o = 0;
            for (int64_t j = 0; j < n; ++j) o += p[j] * v[j * ldv + h * cs.dv + c];
            const float got = out[i * ldo + h * cs.dv + c];
            if (!(std::fabs(got - o) <= 2e-5 * (1 + std::fabs(o))) && bad++ < 5)
              ADD_FAILURE() << "out[" << i << ", " << h << ", " << c << "] = " << got << " expected " << o;
          }
        }
    }
}

TEST_P(AttentionTest, LatentMatchesNaive) {
  IsaScope scope(GetParam());
  std::mt19937 rng(12);
  ThreadPool pool(2);
  const struct {
    int64_t t, heads, lat, rope, page_rows, ctx;
  } cases[] = {{1, 4, 512, 64, 64, 1}, {1, 4, 512, 64, 64, 300}, {2, 3, 512, 64, 16, 77},
               {3, 1, 100, 20, 8, 40}, {1, 5, 72, 8, 4, 13},     {4, 2, 512, 64, 64, 129}};
  for (const auto& cs : cases)
    for (int threads : {1, 2}) {
      SCOPED_TRACE(::testing::Message()
                   << "t=" << cs.t << " heads=" << cs.heads << " lat=" << cs.lat << " rope=" << cs.rope
                   << " ctx=" << cs.ctx << " threads=" << threads);
      const int64_t width = cs.lat + cs.rope, pages = (cs.ctx + cs.page_rows - 1) / cs.page_rows;
      const int64_t page_stride = cs.page_rows * width + 7;
      auto pool_data = randn((pages + 1) * page_stride, rng);
      std::vector<int32_t> table(pages);
      for (int64_t i = 0; i < pages; ++i)
        table[i] = static_cast<int32_t>(pages - i);  // shuffled, page 0 unused
      PagedRows rows{pool_data.data(), table.data(), cs.page_rows, page_stride};
      const int64_t rope_stride = cs.rope + 2, ldql = cs.heads * cs.lat + 1,
                    ldqr = cs.heads * rope_stride + 3, ldo = cs.heads * cs.lat + 4;
      const auto ql = randn(cs.t * ldql, rng, 0.2f), qr = randn(cs.t * ldqr, rng, 0.2f);
      std::vector<int32_t> pos(cs.t);
      for (int64_t i = 0; i < cs.t; ++i) pos[i] = static_cast<int32_t>(cs.ctx - cs.t + i);
      const float scale = 0.0721f;
      std::vector<float> out(cs.t * ldo, NAN);
      attention_latent(ql.data(), ldql, qr.data(), ldqr, rope_stride, cs.t, &rows, nullptr, cs.lat, cs.rope,
                       cs.heads, pos.data(), scale, out.data(), ldo, threads == 1 ? nullptr : &pool);
      std::vector<double> sc, p;
      int bad = 0;
      for (int64_t i = 0; i < cs.t; ++i)
        for (int64_t h = 0; h < cs.heads; ++h) {
          const int64_t n = pos[i] + 1;
          sc.assign(n, 0.0);
          for (int64_t j = 0; j < n; ++j) {
            const float* row =
                pool_data.data() + table[j / cs.page_rows] * page_stride + (j % cs.page_rows) * width;
            for (int64_t d = 0; d < cs.lat; ++d)
              sc[j] += static_cast<double>(ql[i * ldql + h * cs.lat + d]) * row[d];
            for (int64_t d = 0; d < cs.rope; ++d)
              sc[j] += static_cast<double>(qr[i * ldqr + h * rope_stride + d]) * row[cs.lat + d];
          }
          naive_softmax(sc, scale, p);
          for (int64_t c = 0; c < cs.lat; ++c) {
            double o = 0;
            for (int64_t j = 0; j < n; ++j)
              o += p[j] * pool_data[table[j / cs.page_rows] * page_stride + (j % cs.page_rows) * width + c];
            const float got = out[i * ldo + h * cs.lat + c];
            if (!(std::fabs(got - o) <= 2e-5 * (1 + std::fabs(o))) && bad++ < 5)
              ADD_FAILURE() << "out[" << i << ", " << h << ", " << c << "] = " << got << " expected " << o;
          }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, AttentionTest,
                         ::testing::Values(CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512),
                         [](const auto& info) { return isa_param_name(info.param); });

}  // namespace
}  // namespace moert::kernels::test
