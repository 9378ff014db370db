// Expert-parallel benchmark (CPU, in-process ranks):
//  1. load imbalance (max / mean routed tokens per rank) on a skewed routing distribution, before and after
//     EPLB, for the global and hierarchical policies, at DeepSeek-V3's shape (256 experts, top-8, 8 groups)
//     over 8/16/32/64 ranks with 0..2 redundant slots per rank;
//  2. the time per MoE layer through the model's forward with EP = 2 in-process ranks over an emulated slow
//     link, with the two-microbatch overlap off and on, in prefill and in decode;
//  3. the same with the rows moved between the ranks' tensors and carried inside the host messages.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "checkpoint/random_checkpoint.h"
#include "config/model_config.h"
#include "ep/expert_parallel.h"
#include "ep/placement.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
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
  std::printf(
      "Load imbalance, max/mean routed tokens per rank (DeepSeek-V3 shape: %lld experts, top-%d, 8 groups;\n"
      "16384 tokens, Zipf s = 1.0 expert popularity; hierarchical: the 8 groups over the nodes column, "
      "ranks/nodes each)\n",
      static_cast<long long>(E), k);
  std::printf("%6s %10s %10s | %11s %11s %11s\n", "ranks", "redundant", "contig", "EPLB-global", "EPLB-hier",
              "nodes(hier)");
  const std::vector<double> load = skewed_routing(E, k, 16384, 1.0, 1);
  std::vector<int64_t> li(load.begin(), load.end());
  for (int ranks : {8, 16, 32, 64})
    for (int red : {0, 1, 2}) {
      const int slots = static_cast<int>(E / ranks) + red;
      const double before = imbalance(rank_loads(contiguous_placement(1, E, ranks, red), 0, load));
      const double glob =
          imbalance(rank_loads(eplb_placement(li, 1, E, ranks, slots, {EplbPolicy::kGlobal}), 0, load));
      const int nodes = ranks / 8 > 0 ? std::min(ranks / 8, 8) : 1;
      const double hier = imbalance(
          rank_loads(eplb_placement(li, 1, E, ranks, slots, {EplbPolicy::kHierarchical, 8, nodes}), 0, load));
      std::printf("%6d %10d %10.3f | %11.3f %11.3f %11d\n", ranks, red, before, glob, hier, nodes);
    }
}

// Time per MoE layer through DeepseekNetwork::forward with R in-process ranks (each its own batch, KV cache
// and 1-thread CPU backend) over a slow link (latency + bytes / bandwidth per all-to-all, each rank sleeping
// for what it sends), with the two-microbatch overlap off and on. The model is a random DeepSeek-V3-shaped
// checkpoint whose every layer is MoE (a small vocabulary keeps embedding and lm_head negligible), so the
// time per MoE layer is the forward's time over the layer count. Median over `iters` forwards on rank 0.
struct BenchRank {
  std::unique_ptr<Backend> backend;
  std::shared_ptr<ExpertParallel> ep;
  std::unique_ptr<DeepseekNetwork> model;
  std::unique_ptr<LatentCache> cache;
  std::vector<KvSequence> kv;
  std::vector<std::vector<int32_t>> tokens;
};

struct Scenario {
  const char* name;
  int64_t seqs, new_tokens, context;  // per rank: seqs sequences of new_tokens after context cached ones
};

double forward_ms(const std::string& dir, int R, const Scenario& sc, bool overlap,
                  std::chrono::microseconds latency, double bytes_per_second, int iters,
                  bool rows_in_messages = false) {
  const ModelConfig cfg = load_model_config(dir);
  auto store = std::make_shared<WeightStore>(dir);
  InProcessOptions io;
  io.delay = latency;
  io.bytes_per_second = bytes_per_second;
  io.rows_in_messages = rows_in_messages;
  auto group = make_in_process_group(R, io);
  const Placement p = contiguous_placement(cfg.num_hidden_layers, cfg.n_routed_experts, R);
  EpOptions eo;
  eo.overlap = overlap;
  std::vector<BenchRank> ranks(R);
  for (int r = 0; r < R; ++r) {
    BenchRank& k = ranks[r];
    k.backend = make_cpu_backend(1);
    k.ep = std::make_shared<ExpertParallel>(group[r], *k.backend, p, eo);
    ModelOptions mo;
    mo.load_mtp = false;
    mo.moe_hook = k.ep;
    mo.bind_expert = k.ep->bind_filter();
    k.model = std::make_unique<DeepseekNetwork>(cfg, store, *k.backend, mo);
    k.cache = std::make_unique<LatentCache>(*k.backend, k.model->cache_layers(), cfg.kv_cache_width(), 64,
                                            1ll << 30);
    std::mt19937 g(r + 1);
    for (int64_t s = 0; s < sc.seqs; ++s) {
      k.kv.emplace_back(k.cache.get());
      std::vector<int32_t> t(sc.context + sc.new_tokens);
      for (auto& v : t) v = static_cast<int32_t>(g() % cfg.vocab_size);
      k.tokens.push_back(std::move(t));
    }
  }
  std::vector<std::vector<double>> ms(R);
  std::vector<std::thread> th;
  for (int r = 0; r < R; ++r)
    th.emplace_back([&, r] {
      BenchRank& k = ranks[r];
      run_collective(*group[r], [&] {
        if (sc.context > 0) {  // the cached context, once
          std::vector<SequenceStep> steps;
          for (int64_t s = 0; s < sc.seqs; ++s)
            steps.push_back({&k.kv[s], k.tokens[s].data(), sc.context, false});
          k.model->forward(steps, nullptr);
        }
        for (int it = 0; it <= iters; ++it) {
          std::vector<SequenceStep> steps;
          for (int64_t s = 0; s < sc.seqs; ++s)
            steps.push_back({&k.kv[s], k.tokens[s].data() + sc.context, sc.new_tokens, false});
          const auto t0 = std::chrono::steady_clock::now();
          k.model->forward(steps, nullptr);
          const double t =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          if (it > 0) ms[r].push_back(t);  // the first is a warm-up
          for (auto& kv : k.kv) kv.truncate(sc.context);
        }
      });
    });
  for (auto& t : th) t.join();
  std::sort(ms[0].begin(), ms[0].end());
  return ms[0][ms[0].size() / 2] / static_cast<double>(cfg.num_hidden_layers);
}

void overlap_table(const std::string& dir) {
  std::printf(
      "\nTime per MoE layer, two-microbatch overlap off/on (random V3-shaped model, all layers MoE, EP = 2 "
      "in-process ranks, 1 thread each, slow link = 50 us + bytes/bandwidth per all-to-all; best of 3 "
      "alternating runs of the median of 5 forwards):\n");
  std::printf("%-26s %10s | %9s %9s %8s\n", "scenario (per rank)", "link MB/s", "off ms", "on ms", "off/on");
  const Scenario scenarios[] = {{"prefill 2 x 64 tokens", 2, 64, 0}, {"decode 64 seqs, ctx 128", 64, 1, 128}};
  for (const Scenario& sc : scenarios)
    for (double mbps : {0.0, 200.0, 50.0}) {
      const auto lat = std::chrono::microseconds(mbps > 0 ? 50 : 0);
      double off = 1e30, on = 1e30;
      for (int round = 0; round < 3; ++round) {  // alternating, so drifting machine load hits both
        off = std::min(off, forward_ms(dir, 2, sc, false, lat, mbps * 1e6, 5));
        on = std::min(on, forward_ms(dir, 2, sc, true, lat, mbps * 1e6, 5));
      }
      std::printf("%-26s %10s | %9.2f %9.2f %7.2fx\n", sc.name,
                  mbps > 0 ? std::to_string(int(mbps)).c_str() : "inf", off, on, off / on);
    }
}

// The rows moved between the ranks' tensors (Transport::all_to_all_rows: a control round, then one copy)
// against carried inside the host messages (as over MPI: packed, copied twice more, one round).
void rows_table(const std::string& dir) {
  std::printf(
      "\nTime per MoE layer, rows between tensors vs in the host messages (same model, EP = 2, overlap off, "
      "free link; best of 3 alternating runs of the median of 5 forwards):\n");
  std::printf("%-26s | %12s %12s %8s\n", "scenario (per rank)", "direct ms", "messages ms", "msg/dir");
  const Scenario scenarios[] = {{"prefill 2 x 64 tokens", 2, 64, 0}, {"decode 64 seqs, ctx 128", 64, 1, 128}};
  for (const Scenario& sc : scenarios) {
    double direct = 1e30, msgs = 1e30;
    for (int round = 0; round < 3; ++round) {
      direct = std::min(direct, forward_ms(dir, 2, sc, false, {}, 0, 5, false));
      msgs = std::min(msgs, forward_ms(dir, 2, sc, false, {}, 0, 5, true));
    }
    std::printf("%-26s | %12.2f %12.2f %7.2fx\n", sc.name, direct, msgs, msgs / direct);
  }
}

}  // namespace

int main(int argc, char** argv) {
  imbalance_table();
  // The overlap model: written once (or given as argv[1]).
  std::string dir = argc > 1 ? argv[1] : "/tmp/moert-ep-bench-model";
  if (argc <= 1 && !std::ifstream(dir + "/config.json")) {
    RandomCheckpointSpec spec;
    spec.vocab = 2048;
    spec.hidden = 1024;
    spec.moe_intermediate = 512;
    spec.layers = 4;
    spec.dense_layers = 0;
    spec.heads = 8;
    spec.q_lora = 384;
    spec.kv_lora = 256;
    spec.nope = 64;
    spec.rope = 32;
    spec.vdim = 64;
    spec.experts = 32;
    spec.top_k = 4;
    spec.n_group = 4;
    spec.topk_group = 2;
    spec.shared = 1;
    write_random_checkpoint(dir, spec);
  }
  overlap_table(dir);
  rows_table(dir);
  return 0;
}
