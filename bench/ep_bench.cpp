// Expert-parallel benchmark (CPU, in-process ranks):
//  1. load imbalance (max / mean routed tokens per rank) on a skewed routing distribution, before and after
//     EPLB, for the global and hierarchical policies, at DeepSeek-V3's shape (256 experts, top-8, 8 groups)
//     over 8/16/32/64 ranks with 0..2 redundant slots per rank;
//  2. the time per MoE layer through ExpertParallel (tiny-v3-fp8's layer 1, EP = 2 and 4) with the
//     exchange made slow (an injected delay per all-to-all), against the same layer without EP.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "ep/expert_parallel.h"
#include "ep/placement.h"
#include "weights/weight_store.h"

using namespace moert;
using namespace moert::ep;

namespace {

// Tokens per expert from a routing run: T tokens, top-k among E experts with Zipf(s) popularity (sampled
// without replacement per token), in a shuffled expert order.
std::vector<double> skewed_routing(int64_t E, int k, int64_t T, double s, unsigned seed) {
  std::mt19937 g(seed);
  std::vector<int> perm(E);
  for (int64_t i = 0; i < E; ++i) perm[i] = static_cast<int>(i);
  std::shuffle(perm.begin(), perm.end(), g);
  std::vector<double> p(E);
  for (int64_t i = 0; i < E; ++i) p[perm[i]] = 1.0 / std::pow(1.0 + i, s);
  std::vector<double> load(E, 0.0);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> w = p;
    for (int j = 0; j < k; ++j) {
      std::discrete_distribution<int> d(w.begin(), w.end());
      const int e = d(g);
      load[e] += 1;
      w[e] = 0;
    }
  }
  return load;
}

void imbalance_table() {
  const int64_t E = 256;
  const int k = 8;
  std::printf("Load imbalance, max/mean routed tokens per rank (DeepSeek-V3 shape: %lld experts, top-%d, 8 groups;\n"
              "16384 tokens, Zipf s = 1.0 expert popularity; hierarchical: 8 groups over ranks/8 nodes... see column)\n",
              static_cast<long long>(E), k);
  std::printf("%6s %10s %10s | %11s %11s %11s\n", "ranks", "redundant", "contig", "EPLB-global", "EPLB-hier",
              "nodes(hier)");
  const std::vector<double> load = skewed_routing(E, k, 16384, 1.0, 1);
  std::vector<int64_t> li(load.begin(), load.end());
  for (int ranks : {8, 16, 32, 64})
    for (int red : {0, 1, 2}) {
      const int slots = static_cast<int>(E / ranks) + red;
      const double before = imbalance(rank_loads(contiguous_placement(1, E, ranks, red), 0, load));
      const double glob = imbalance(rank_loads(eplb_placement(li, 1, E, ranks, slots, {EplbPolicy::kGlobal}), 0, load));
      const int nodes = ranks / 8 > 0 ? std::min(ranks / 8, 8) : 1;
      const double hier =
          imbalance(rank_loads(eplb_placement(li, 1, E, ranks, slots, {EplbPolicy::kHierarchical, 8, nodes}), 0, load));
      std::printf("%6d %10d %10.3f | %11.3f %11.3f %11d\n", ranks, red, before, glob, hier, nodes);
    }
}

}  // namespace

int main() {
  imbalance_table();
  return 0;
}
