// One MoE layer's routed experts through ExpertParallel (R in-process ranks, each with its own tokens)
// against the model's routed_experts (model/moe_ffn.h) over the union of the tokens in one process: bit for
// bit with the exact combine, within 2 g_K sum_i |w_i y_i| per element with partial sums (expert_parallel.h).
// Enough tokens that every expert call stays in the same GEMM kernel class in both runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "ep/expert_parallel.h"
#include "golden_fixture.h"
#include "model/moe_ffn.h"

namespace moert {
namespace {

using testing::Golden;

struct Tokens {
  std::vector<float> x, w;
  std::vector<int32_t> ids;
};

// Each rank's tokens through ExpertParallel::routed_experts for one layer, one thread per rank.
struct LayerRun {
  std::vector<std::vector<float>> out;  // per rank [Tr, H]
  std::vector<std::string> err;
  std::vector<int64_t> work, over_limit;  // per rank: pairs computed in `layer`, tokens over the rank limit
};

LayerRun run_layer(const LayerWeights& L, int64_t layer, int64_t H, int64_t K, const ep::Placement& p,
                   const std::vector<Tokens>& tok, const ep::EpOptions& eo, bool rows_in_messages = false) {
  const int R = static_cast<int>(tok.size());
  ep::InProcessOptions io;
  io.rows_in_messages = rows_in_messages;
  auto tr = ep::make_in_process_group(R, io);
  LayerRun run;
  run.out.resize(R);
  run.err.resize(R);
  run.work.assign(R, 0);
  run.over_limit.assign(R, 0);
  std::vector<std::thread> th;
  for (int r = 0; r < R; ++r)
    th.emplace_back([&, r] {
      try {
        const int64_t Tr = static_cast<int64_t>(tok[r].ids.size()) / K;
        auto be = make_cpu_backend(1);
        ep::ExpertParallel epx(tr[r], *be, p, eo);
        Tensor x = be->empty(DType::kF32, Tr, H), i = be->empty(DType::kI32, Tr, K),
               w = be->empty(DType::kF32, Tr, K), y = be->empty(DType::kF32, Tr, H);
        be->copy_from_host(tok[r].x.data(), x);
        be->copy_from_host_i32(tok[r].ids.data(), i);
        be->copy_from_host(tok[r].w.data(), w);
        ep::run_collective(*tr[r], [&] { epx.routed_experts(layer, L, x, i, w, y, ActMode::kF32); });
        run.out[r].resize(Tr * H);
        be->copy_to_host(y, run.out[r].data());
        run.work[r] = epx.local_work()[layer];
        run.over_limit[r] = epx.over_limit_tokens();
      } catch (const std::exception& e) {
        run.err[r] = e.what();
      }
    });
  for (auto& t : th) t.join();
  return run;
}

TEST(EpLayer, ExchangeMatchesSingleProcessSum) {
  Golden g("tiny-v3-fp8", {}, 1);
  const int64_t layer = 1, E = g.cfg.n_routed_experts, K = g.cfg.num_experts_per_tok, H = g.cfg.hidden_size;
  const LayerWeights& L = g.model->weights().layers[layer];
  ASSERT_TRUE(L.moe);
  // Enough tokens that every expert's rows, and every replica's share of a redundant expert's, stay above
  // 16: the CPU GEMM's row classes are 1-4, 5-16 and more (the AMX tiles, where the CPU has them), and the
  // exact mode is bit-exact only within one class.
  const int64_t Tr = 96;
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
        ExpertSet ex;
        for (int64_t e = 0; e < E; ++e) ex.experts.push_back(&L.experts[e]);
        routed_experts(b, ex, X, I, W, Y, ActMode::kF32);
        std::vector<float> want(T * H);
        b.copy_to_host(Y, want.data());
        // sum_i |w_i y_i| per element, for the partial-sum bound.
        std::vector<float> absum(T * H, 0.0f);
        {
          std::vector<float> ones(T, 1.0f), y1(T * H);
          for (int64_t s = 0; s < K; ++s) {
            std::vector<int32_t> col(T);
            for (int64_t i = 0; i < T; ++i) col[i] = uid[i * K + s];
            Tensor I1 = b.empty(DType::kI32, T, 1), W1 = b.empty(DType::kF32, T, 1),
                   Y1 = b.empty(DType::kF32, T, H);
            b.copy_from_host_i32(col.data(), I1);
            b.copy_from_host(ones.data(), W1);
            routed_experts(b, ex, X, I1, W1, Y1, ActMode::kF32);
            b.copy_to_host(Y1, y1.data());
            for (int64_t i = 0; i < T; ++i)
              for (int64_t h = 0; h < H; ++h) absum[i * H + h] += std::fabs(uw[i * K + s] * y1[i * H + h]);
          }
        }
        // EP, the rows exchanged between the ranks' tensors and carried in the host messages (as MPI does).
        for (bool in_messages : {false, true}) {
          ep::EpOptions eo;
          eo.combine = mode;
          const LayerRun run =
              run_layer(L, layer, H, K, ep::contiguous_placement(g.model->cache_layers(), E, R, redundant),
                        tok, eo, in_messages);
          const std::vector<std::vector<float>>& got = run.out;
          const std::vector<std::string>& err = run.err;
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
          std::printf(
              "[ep] layer exchange R=%d redundant=%d %s, rows %s: %s, worst |diff| / (2 g_K sum|w y|) = "
              "%.3f\n",
              R, redundant, mode == ep::CombineMode::kExact ? "exact" : "partial",
              in_messages ? "in messages" : "direct", differ ? "differs" : "bit-exact", worst);
          if (mode == ep::CombineMode::kExact) {
            EXPECT_EQ(differ, 0);
          }
          EXPECT_EQ(over, 0);
        }
      }
}

// DeepSeek's limit on the ranks (nodes) a token's experts span: with max_ranks_per_token = M a replica on
// a rank the token already uses is preferred, tokens still spanning more than M ranks are counted, and with
// strict_rank_limit they fail every rank.
Tokens tokens_on(const std::vector<int32_t>& experts, int64_t T, int64_t H, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tokens t;
  for (int64_t i = 0; i < T; ++i) {
    t.ids.insert(t.ids.end(), experts.begin(), experts.end());
    for (size_t s = 0; s < experts.size(); ++s) t.w.push_back(0.25f + 0.1f * static_cast<float>(s));
    for (int64_t h = 0; h < H; ++h) t.x.push_back(nd(rng));
  }
  return t;
}

TEST(EpLayer, RankLimitPrefersReplicasOnRanksAlreadyUsed) {
  Golden g("tiny-v3-fp8", {}, 1);
  const int64_t layer = 1, E = g.cfg.n_routed_experts, K = g.cfg.num_experts_per_tok, H = g.cfg.hidden_size;
  ASSERT_EQ(K, 4);
  const LayerWeights& L = g.model->weights().layers[layer];
  // Two ranks: rank 0 holds 0 .. E/2-1 and a replica of E/2, rank 1 holds E/2 .. E-1 and a replica of 0.
  const ep::Placement p = ep::contiguous_placement(g.model->cache_layers(), E, 2, 1);
  ASSERT_EQ(p.replicas(layer, E / 2), (std::vector<int>{0, 1}));
  const int32_t h = static_cast<int32_t>(E / 2);
  const int64_t Tr = 24;
  // Rank 0's tokens use E/2 (replicated) and three experts only rank 0 holds; rank 1's stay on rank 1.
  const std::vector<Tokens> tok{tokens_on({h, 1, 2, 3}, Tr, H, 1),
                                tokens_on({h + 1, h + 2, h + 3, h + 4}, Tr, H, 2)};
  for (int limit : {0, 1}) {
    ep::EpOptions eo;
    eo.max_ranks_per_token = limit;
    const LayerRun run = run_layer(L, layer, H, K, p, tok, eo);
    for (int r = 0; r < 2; ++r) ASSERT_EQ(run.err[r], "") << "rank " << r;
    // The same sums as one process either way.
    for (int r = 0; r < 2; ++r) {
      Backend& b = *g.backend;
      Tensor X = b.empty(DType::kF32, Tr, H), I = b.empty(DType::kI32, Tr, K),
             W = b.empty(DType::kF32, Tr, K), Y = b.empty(DType::kF32, Tr, H);
      b.copy_from_host(tok[r].x.data(), X);
      b.copy_from_host_i32(tok[r].ids.data(), I);
      b.copy_from_host(tok[r].w.data(), W);
      ExpertSet ex;
      for (int64_t e = 0; e < E; ++e) ex.experts.push_back(&L.experts[e]);
      routed_experts(b, ex, X, I, W, Y, ActMode::kF32);
      std::vector<float> want(Tr * H);
      b.copy_to_host(Y, want.data());
      EXPECT_LT(testing::max_abs_diff(run.out[r].data(), want.data(), Tr * H), 1e-5f) << "rank " << r;
    }
    if (limit == 1) {
      // Every token stays on its own rank: each rank computes exactly its own K pairs per token.
      EXPECT_EQ(run.work[0], Tr * K);
      EXPECT_EQ(run.work[1], Tr * K);
      EXPECT_EQ(run.over_limit[0] + run.over_limit[1], 0);
    } else {
      // Without the limit the replicas split E/2's tokens between the ranks: half go to rank 1.
      EXPECT_EQ(run.work[0], Tr * K - Tr / 2);
      EXPECT_EQ(run.work[0] + run.work[1], 2 * Tr * K);
    }
    std::printf("[ep] rank limit %d: pairs computed per rank %lld / %lld (own tokens' pairs %lld each)\n",
                limit, static_cast<long long>(run.work[0]), static_cast<long long>(run.work[1]),
                static_cast<long long>(Tr * K));
  }
}

TEST(EpLayer, TokensOverTheRankLimitAreCountedOrFail) {
  Golden g("tiny-v3-fp8", {}, 1);
  const int64_t layer = 1, E = g.cfg.n_routed_experts, K = g.cfg.num_experts_per_tok, H = g.cfg.hidden_size;
  const LayerWeights& L = g.model->weights().layers[layer];
  const ep::Placement p = ep::contiguous_placement(g.model->cache_layers(), E, 2, 0);
  const int32_t last = static_cast<int32_t>(E - 1);
  const int64_t Tr = 8;
  // Rank 0's tokens need rank 1 too (expert E-1 has one replica, there); rank 1's stay home.
  const std::vector<Tokens> tok{tokens_on({0, 1, 2, last}, Tr, H, 3),
                                tokens_on({last, last - 1, last - 2, last - 3}, Tr, H, 4)};
  ep::EpOptions eo;
  eo.max_ranks_per_token = 1;
  LayerRun run = run_layer(L, layer, H, K, p, tok, eo);
  ASSERT_EQ(run.err[0], "");
  ASSERT_EQ(run.err[1], "");
  EXPECT_EQ(run.over_limit[0], Tr);
  EXPECT_EQ(run.over_limit[1], 0);
  eo.strict_rank_limit = true;
  run = run_layer(L, layer, H, K, p, tok, eo);
  EXPECT_NE(run.err[0].find("span 2 ranks, more than 1"), std::string::npos) << run.err[0];
  EXPECT_NE(run.err[1].find("rank 0 failed"), std::string::npos) << run.err[1];
}

}  // namespace
}  // namespace moert
