// MoE routing against a brute-force reference: every subset of groups is tried, experts sorted in full.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cpu/moe_routing.h"
#include "kernel_test_util.h"

namespace moert::kernels::test {
namespace {

struct Routed {
  std::vector<int32_t> ids;
  std::vector<double> weights;
};

Routed brute_force(const float* l, const RoutingParams& p, const float* bias) {
  const int64_t E = p.experts, per = E / p.n_group;
  std::vector<double> scores(E), choice(E);
  if (p.sigmoid) {
    for (int64_t e = 0; e < E; ++e) scores[e] = 1.0 / (1.0 + std::exp(-static_cast<double>(l[e])));
  } else {
    double mx = -INFINITY, sum = 0;
    for (int64_t e = 0; e < E; ++e) mx = std::max(mx, static_cast<double>(l[e]));
    for (int64_t e = 0; e < E; ++e) sum += std::exp(l[e] - mx);
    for (int64_t e = 0; e < E; ++e) scores[e] = std::exp(l[e] - mx) / sum;
  }
  for (int64_t e = 0; e < E; ++e) choice[e] = scores[e] + (bias ? bias[e] : 0.0);
  if (p.grouped && p.n_group > 1) {
    std::vector<double> gs(p.n_group);
    for (int64_t g = 0; g < p.n_group; ++g) {
      std::vector<double> v(choice.begin() + g * per, choice.begin() + (g + 1) * per);
      std::sort(v.rbegin(), v.rend());
      gs[g] = p.group_sum_top2 ? v[0] + v[1] : v[0];
    }
    // every subset of topk_group groups; keep the one with the largest total
    double best = -INFINITY;
    uint32_t best_mask = 0;
    for (uint32_t mask = 0; mask < (1u << p.n_group); ++mask) {
      if (__builtin_popcount(mask) != p.topk_group) continue;
      double tot = 0;
      for (int64_t g = 0; g < p.n_group; ++g)
        if (mask >> g & 1) tot += gs[g];
      if (tot > best) {
        best = tot;
        best_mask = mask;
      }
    }
    for (int64_t e = 0; e < E; ++e)
      if (!(best_mask >> (e / per) & 1)) choice[e] = 0.0;  // masked_fill(0.0), as the reference does
  }
  std::vector<int32_t> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return choice[a] > choice[b]; });
  Routed r;
  r.ids.assign(order.begin(), order.begin() + p.top_k);
  double sum = 0;
  for (int32_t id : r.ids) sum += scores[id];
  for (int32_t id : r.ids) {
    double w = scores[id];
    if (p.normalize) w /= (sum + 1e-20);
    if (!p.normalize || !p.scale_only_unnormalized) w *= p.routed_scale;
    r.weights.push_back(w);
  }
  return r;
}

void run(const RoutingParams& p, const float* bias, std::mt19937& rng, int tokens) {
  const auto logits = randn(static_cast<size_t>(tokens * p.experts), rng, 2.0f);
  std::vector<int32_t> ids(tokens * p.top_k);
  std::vector<float> w(tokens * p.top_k);
  route_topk(logits.data(), tokens, p, bias, ids.data(), w.data());
  for (int t = 0; t < tokens; ++t) {
    const Routed r = brute_force(logits.data() + t * p.experts, p, bias);
    for (int64_t i = 0; i < p.top_k; ++i) {
      ASSERT_EQ(ids[t * p.top_k + i], r.ids[i]) << "token " << t << " slot " << i;
      ASSERT_NEAR(w[t * p.top_k + i], r.weights[i], 2e-6 * (1 + r.weights[i]))
          << "token " << t << " slot " << i;
    }
  }
}

TEST(Routing, SigmoidNoauxTcWithBias) {
  std::mt19937 rng(31);
  for (auto [E, k, ng, kg] : {std::tuple{16, 4, 4, 2}, std::tuple{64, 6, 8, 3}, std::tuple{256, 8, 8, 4}}) {
    const auto bias = randn(E, rng, 0.05f);
    RoutingParams p;
    p.experts = E;
    p.top_k = k;
    p.n_group = ng;
    p.topk_group = kg;
    p.sigmoid = true;
    p.group_sum_top2 = true;
    p.grouped = true;
    p.normalize = true;
    p.routed_scale = 2.5f;
    SCOPED_TRACE(E);
    run(p, bias.data(), rng, 50);
    run(p, nullptr, rng, 20);
  }
}

TEST(Routing, SoftmaxGreedy) {
  std::mt19937 rng(32);
  for (bool norm : {false, true}) {
    RoutingParams p;
    p.experts = 64;
    p.top_k = 6;
    p.sigmoid = false;
    p.grouped = false;
    p.normalize = norm;
    p.routed_scale = 16.0f;
    p.scale_only_unnormalized = true;
    run(p, nullptr, rng, 40);
  }
}

TEST(Routing, GroupLimitedGreedy) {
  std::mt19937 rng(33);
  RoutingParams p;
  p.experts = 160;
  p.top_k = 6;
  p.n_group = 8;
  p.topk_group = 3;
  p.sigmoid = false;
  p.group_sum_top2 = false;
  p.grouped = true;
  p.normalize = false;
  p.routed_scale = 16.0f;
  p.scale_only_unnormalized = true;
  run(p, nullptr, rng, 40);
}

}  // namespace
}  // namespace moert::kernels::test
