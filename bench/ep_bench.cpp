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

#include "config/model_config.h"
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
              "16384 tokens, Zipf s = 1.0 expert popularity; hierarchical: the 8 groups over the nodes column, ranks/nodes each)\n",
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

// Time per MoE layer (routed experts of tiny-v3-fp8's layer 1) with R in-process ranks, each T tokens,
// every all-to-all delayed by `delay`: the batch in one go, against two microbatches (halves) whose
// exchanges run on separate groups, one half on a helper thread, so one half's dispatch/combine is in
// flight while the other computes.
struct Half {
  std::unique_ptr<Backend> b;
  std::unique_ptr<ExpertParallel> ep;
  Tensor x, ids, w, y;
};

void overlap_timing(int R, int64_t T, std::chrono::microseconds delay, int iters) {
  const std::string dir = std::string(MOERT_TEST_DATA) + "/tiny-v3-fp8";
  const ModelConfig cfg = load_model_config(dir);
  auto store = std::make_shared<WeightStore>(dir);
  auto bw = make_cpu_backend(1);
  DeepseekModel model(cfg, store, *bw, {});
  const LayerWeights& L = model.weights().layers[1];
  const int64_t E = cfg.n_routed_experts, K = cfg.num_experts_per_tok, H = cfg.hidden_size;
  Placement p = contiguous_placement(model.cache_layers(), E, R);
  InProcessOptions io;
  io.delay = delay;
  auto ga = make_in_process_group(R, io), gb = make_in_process_group(R, io), gf = make_in_process_group(R, io);
  auto make = [&](std::shared_ptr<Transport> t, int64_t n, unsigned seed) {
    Half h;
    h.b = make_cpu_backend(1);
    h.ep = std::make_unique<ExpertParallel>(t, *h.b, p);
    std::mt19937 g(seed);
    std::normal_distribution<float> nd;
    std::vector<float> x(n * H), w(n * K, 0.5f);
    std::vector<int32_t> id(n * K);
    for (auto& v : x) v = nd(g);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t s = 0; s < K; ++s) id[i * K + s] = static_cast<int32_t>((i * 7 + s * 5 + seed) % E);
    h.x = h.b->empty(DType::kF32, n, H);
    h.ids = h.b->empty(DType::kI32, n, K);
    h.w = h.b->empty(DType::kF32, n, K);
    h.y = h.b->empty(DType::kF32, n, H);
    h.b->copy_from_host(x.data(), h.x);
    h.b->copy_from_host_i32(id.data(), h.ids);
    h.b->copy_from_host(w.data(), h.w);
    return h;
  };
  std::vector<Half> full(R), a(R), b(R);
  for (int r = 0; r < R; ++r) {
    full[r] = make(gf[r], T, r);
    a[r] = make(ga[r], T / 2, r);
    b[r] = make(gb[r], T - T / 2, r + 100);
  }
  auto run = [&](bool overlap) {
    std::vector<std::thread> th;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < R; ++r)
      th.emplace_back([&, r] {
        for (int it = 0; it < iters; ++it) {
          if (!overlap) {
            Half& h = full[r];
            h.ep->routed_experts(1, L, h.x, h.ids, h.w, h.y, ActMode::kF32);
          } else {
            std::thread helper([&] { a[r].ep->routed_experts(1, L, a[r].x, a[r].ids, a[r].w, a[r].y, ActMode::kF32); });
            b[r].ep->routed_experts(1, L, b[r].x, b[r].ids, b[r].w, b[r].y, ActMode::kF32);
            helper.join();
          }
        }
      });
    for (auto& t : th) t.join();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  };
  run(false);
  const double one = run(false), two = run(true);
  std::printf("%4d %6lld %9.1f | %12.2f %16.2f %8.2fx\n", R, static_cast<long long>(T), delay.count() / 1000.0, one,
              two, one / two);
}

}  // namespace

int main() {
  imbalance_table();
  std::printf("\nTime per MoE layer (routed experts, tiny-v3-fp8 layer 1, in-process ranks, 2 all-to-alls per layer "
              "each delayed):\n");
  std::printf("%4s %6s %9s | %12s %16s %9s\n", "EP", "tok/rk", "delay ms", "one batch ms", "2 microbatch ms",
              "speed-up");
  for (int R : {2, 4})
    for (int64_t T : {64, 256})
      for (int d : {0, 2000, 5000}) overlap_timing(R, T, std::chrono::microseconds(d), 10);
  return 0;
}
