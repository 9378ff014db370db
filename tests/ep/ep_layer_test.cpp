// One MoE layer's routed experts through ExpertParallel (R in-process ranks, each with its own tokens)
// against Backend::moe_experts over the union of the tokens in one process: bit for bit with the exact
// combine, within 2 g_K sum_i |w_i y_i| per element with partial sums (expert_parallel.h). Enough tokens
// that every expert call stays in the same GEMM kernel class in both runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "ep/expert_parallel.h"
#include "golden_fixture.h"

namespace moert {
namespace {

using testing::Golden;

struct Tokens {
  std::vector<float> x, w;
  std::vector<int32_t> ids;
};

TEST(EpLayer, ExchangeMatchesSingleProcessSum) {
  Golden g("tiny-v3-fp8", {}, 1);
  const int64_t layer = 1, E = g.cfg.n_routed_experts, K = g.cfg.num_experts_per_tok, H = g.cfg.hidden_size;
  const LayerWeights& L = g.model->weights().layers[layer];
  ASSERT_TRUE(L.moe);
  const int64_t Tr = 48;
  for (int R : {2, 4})
    for (int redundant : {0, 1})
      for (ep::CombineMode mode : {ep::CombineMode::kExact, ep::CombineMode::kPartialSums}) {
        std::mt19937 rng(R * 10 + redundant);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::uniform_real_distribution<float> ud(0.05f, 1.0f);
        std::vector<Tokens> tok(R);
        for (auto& t : tok) {
          for (int64_t i = 0; i < Tr; ++i) {
            std::vector<int32_t> all(E);
            for (int64_t e = 0; e < E; ++e) all[e] = static_cast<int32_t>(e);
            std::shuffle(all.begin(), all.end(), rng);
            for (int64_t s = 0; s < K; ++s) {
              t.ids.push_back(all[s]);
              t.w.push_back(ud(rng));
            }
            for (int64_t h = 0; h < H; ++h) t.x.push_back(nd(rng));
          }
        }
        // Single process over the union.
        Backend& b = *g.backend;
        const int64_t T = Tr * R;
        std::vector<float> ux, uw;
        std::vector<int32_t> uid;
        for (auto& t : tok) {
          ux.insert(ux.end(), t.x.begin(), t.x.end());
          uw.insert(uw.end(), t.w.begin(), t.w.end());
          uid.insert(uid.end(), t.ids.begin(), t.ids.end());
        }
        Tensor X = b.empty(DType::kF32, T, H), I = b.empty(DType::kI32, T, K), W = b.empty(DType::kF32, T, K),
               Y = b.empty(DType::kF32, T, H);
        b.copy_from_host(ux.data(), X);
        b.copy_from_host_i32(uid.data(), I);
        b.copy_from_host(uw.data(), W);
        std::vector<const ExpertWeights*> ex(E);
        for (int64_t e = 0; e < E; ++e) ex[e] = &L.experts[e];
        b.moe_experts(X, I, W, ex, Y, ActMode::kF32);
        std::vector<float> want(T * H);
        b.copy_to_host(Y, want.data());
        // sum_i |w_i y_i| per element, for the partial-sum bound.
        std::vector<float> absum(T * H, 0.0f);
        {
          std::vector<float> ones(T, 1.0f), y1(T * H);
          for (int64_t s = 0; s < K; ++s) {
            std::vector<int32_t> col(T);
            for (int64_t i = 0; i < T; ++i) col[i] = uid[i * K + s];
            Tensor I1 = b.empty(DType::kI32, T, 1), W1 = b.empty(DType::kF32, T, 1), Y1 = b.empty(DType::kF32, T, H);
            b.copy_from_host_i32(col.data(), I1);
            b.copy_from_host(ones.data(), W1);
            b.moe_experts(X, I1, W1, ex, Y1, ActMode::kF32);
            b.copy_to_host(Y1, y1.data());
            for (int64_t i = 0; i < T; ++i)
              for (int64_t h = 0; h < H; ++h) absum[i * H + h] += std::fabs(uw[i * K + s] * y1[i * H + h]);
          }
        }
        // EP.
        auto tr = ep::make_in_process_group(R);
        ep::Placement p = ep::contiguous_placement(g.model->cache_layers(), E, R, redundant);
        std::vector<std::vector<float>> got(R, std::vector<float>(Tr * H));
        std::vector<std::string> err(R);
        std::vector<std::thread> th;
        for (int r = 0; r < R; ++r)
          th.emplace_back([&, r] {
            try {
              auto be = make_cpu_backend(1);
              ep::EpOptions eo;
              eo.combine = mode;
              ep::ExpertParallel epx(tr[r], *be, p, eo);
              Tensor x = be->empty(DType::kF32, Tr, H), i = be->empty(DType::kI32, Tr, K),
                     w = be->empty(DType::kF32, Tr, K), y = be->empty(DType::kF32, Tr, H);
              be->copy_from_host(tok[r].x.data(), x);
              be->copy_from_host_i32(tok[r].ids.data(), i);
              be->copy_from_host(tok[r].w.data(), w);
              ep::run_collective(*tr[r], [&] { epx.routed_experts(layer, L, x, i, w, y, ActMode::kF32); });
              be->copy_to_host(y, got[r].data());
            } catch (const std::exception& e) {
              err[r] = e.what();
            }
          });
        for (auto& t : th) t.join();
        const double u = std::ldexp(1.0, -24), gK = K * u / (1 - K * u);
        int64_t over = 0, differ = 0;
        double worst = 0;
        for (int r = 0; r < R; ++r) {
          ASSERT_EQ(err[r], "");
          const float* w0 = want.data() + r * Tr * H;
          differ += std::memcmp(got[r].data(), w0, Tr * H * sizeof(float)) != 0;
          for (int64_t k = 0; k < Tr * H; ++k) {
            const double d = std::fabs(double(got[r][k]) - w0[k]), bound = 2 * gK * absum[r * Tr * H + k];
            worst = std::max(worst, bound > 0 ? d / bound : d);
            over += d > bound;
          }
        }
        std::printf("[ep] layer exchange R=%d redundant=%d %s: %s, worst |diff| / (2 g_K sum|w y|) = %.3f\n", R,
                    redundant, mode == ep::CombineMode::kExact ? "exact" : "partial",
                    differ ? "differs" : "bit-exact", worst);
        if (mode == ep::CombineMode::kExact) EXPECT_EQ(differ, 0);
        EXPECT_EQ(over, 0);
      }
}

}  // namespace
}  // namespace moert
