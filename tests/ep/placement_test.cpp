// Placement and EPLB: every expert placed, replicas on distinct ranks, slot counts respected, and a skewed
// load evened out (max/mean tokens per rank printed before and after).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "ep/placement.h"
#include "util/error.h"

namespace moert::ep {
namespace {

void expect_valid(const Placement& p) {
  EXPECT_NO_THROW(p.validate());
  for (int64_t l = 0; l < p.num_layers(); ++l) {
    EXPECT_EQ(static_cast<int64_t>(p.layers[l].size()), static_cast<int64_t>(p.ranks) * p.slots_per_rank);
    for (int64_t e = 0; e < p.experts; ++e) {
      const std::vector<int> r = p.replicas(l, e);
      EXPECT_GE(r.size(), 1u) << "expert " << e;
      for (size_t i = 1; i < r.size(); ++i) EXPECT_LT(r[i - 1], r[i]);
    }
  }
}

// Zipf-like skew: load of expert e ~ 1 / (1 + rank_of_e)^s, in a shuffled order.
std::vector<double> skewed(int64_t E, double s, unsigned seed) {
  std::vector<int> perm(E);
  for (int64_t i = 0; i < E; ++i) perm[i] = static_cast<int>(i);
  std::mt19937 g(seed);
  std::shuffle(perm.begin(), perm.end(), g);
  std::vector<double> w(E);
  for (int64_t i = 0; i < E; ++i) w[perm[i]] = std::floor(100000.0 / std::pow(1.0 + i, s));
  return w;
}

TEST(Placement, Contiguous) {
  Placement p = contiguous_placement(3, 16, 4);
  expect_valid(p);
  EXPECT_EQ(p.slots_per_rank, 4);
  EXPECT_EQ(p.replicas(0, 5), std::vector<int>{1});
  EXPECT_TRUE(p.holds(2, 3, 15));
  Placement q = contiguous_placement(1, 16, 4, 2);
  expect_valid(q);
  EXPECT_EQ(q.slots_per_rank, 6);
  EXPECT_EQ(q.replicas(0, 4), (std::vector<int>{0, 1}));  // rank 0's redundant slots hold rank 1's first two
  Placement u = contiguous_placement(1, 10, 4);           // uneven: the last rank has empty slots
  expect_valid(u);
  EXPECT_EQ(u.slot(0, 3, 0), 9);
  EXPECT_EQ(u.slot(0, 3, 1), -1);
}

TEST(Placement, ValidateCatchesMistakes) {
  Placement p = contiguous_placement(1, 8, 2);
  p.layers[0][1] = 0;  // expert 0 twice on rank 0, expert 1 nowhere
  EXPECT_THROW(p.validate(), Error);
  p = contiguous_placement(1, 8, 2);
  p.layers[0][7] = -1;  // expert 7 nowhere
  EXPECT_THROW(p.validate(), Error);
  p = contiguous_placement(1, 8, 2);
  p.layers[0].pop_back();
  EXPECT_THROW(p.validate(), Error);
}

TEST(Eplb, BalancedPackingAndReplication) {
  std::vector<double> w{10, 1, 7, 3, 3, 6, 2, 8};
  std::vector<int> pack, idx;
  balanced_packing(w, 4, pack, idx);
  std::vector<int> cnt(4, 0);
  std::vector<double> load(4, 0);
  for (size_t i = 0; i < w.size(); ++i) {
    ++cnt[pack[i]];
    load[pack[i]] += w[i];
  }
  for (int c : cnt) EXPECT_EQ(c, 2);
  EXPECT_LE(*std::max_element(load.begin(), load.end()) - *std::min_element(load.begin(), load.end()), 3.0);
  std::vector<int32_t> p2l;
  std::vector<int> c;
  replicate_experts({100, 10, 10, 10}, 8, 4, p2l, c);
  EXPECT_EQ(c[0], 4);  // capped at 4 replicas
  EXPECT_EQ(p2l.size(), 8u);
  replicate_experts({100, 10, 10, 10}, 6, 4, p2l, c);
  EXPECT_EQ(c, (std::vector<int>{3, 1, 1, 1}));
}

TEST(Eplb, EveryPolicyPlacesEveryExpertOnDistinctRanks) {
  for (unsigned seed = 0; seed < 20; ++seed)
    for (int ranks : {2, 4, 8})
      for (int extra : {0, 1, 2}) {
        const int64_t E = 32;
        const int slots = static_cast<int>(E / ranks) + extra;
        std::vector<double> w = skewed(E, 1.0 + 0.1 * seed, seed);
        std::vector<int64_t> wl(w.begin(), w.end());
        Placement g = eplb_placement(wl, 1, E, ranks, slots, {EplbPolicy::kGlobal});
        expect_valid(g);
        for (int nodes : {1, 2}) {
          if (ranks % nodes) continue;
          Placement h = eplb_placement(wl, 1, E, ranks, slots, {EplbPolicy::kHierarchical, 8, nodes});
          expect_valid(h);
          // Groups stay on their node: each expert's replicas on one node.
          for (int64_t e = 0; e < E; ++e) {
            std::vector<int> r = h.replicas(0, e);
            for (int x : r) EXPECT_EQ(x / (ranks / nodes), r[0] / (ranks / nodes));
          }
        }
        int full = 0;  // with redundant slots, all slots used
        for (int32_t e : g.layers[0]) full += e >= 0;
        EXPECT_EQ(full, ranks * slots);
      }
}

TEST(Eplb, EvensOutASkewedLoad) {
  const int64_t E = 64;
  const int ranks = 8;
  std::vector<double> w = skewed(E, 1.2, 7);
  std::vector<int64_t> wl(w.begin(), w.end());
  const double before = imbalance(rank_loads(contiguous_placement(1, E, ranks), 0, w));
  const double nored = imbalance(rank_loads(eplb_placement(wl, 1, E, ranks, 8, {EplbPolicy::kGlobal}), 0, w));
  const double global =
      imbalance(rank_loads(eplb_placement(wl, 1, E, ranks, 10, {EplbPolicy::kGlobal}), 0, w));
  const double hier =
      imbalance(rank_loads(eplb_placement(wl, 1, E, ranks, 10, {EplbPolicy::kHierarchical, 8, 2}), 0, w));
  std::printf(
      "[ep] skewed load (Zipf s=1.2, 64 experts, 8 ranks): max/mean tokens per rank: contiguous %.3f, "
      "EPLB packing only %.3f, EPLB global +16 replicas %.3f, hierarchical (8 groups, 2 nodes) %.3f\n",
      before, nored, global, hier);
  EXPECT_GT(before, 1.5);
  EXPECT_LT(nored, before);
  EXPECT_LT(global, 1.1);
  EXPECT_LT(hier, before);
}

}  // namespace
}  // namespace moert::ep
