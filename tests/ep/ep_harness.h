// In-process expert-parallel ranks over one fixture: each rank its own backend, model (binding only its
// experts), KV cache and share of the prompts; all ranks step together (prefill, then decode).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ep/expert_parallel.h"
#include "golden_fixture.h"

namespace moert::testing {

struct EpRank {
  std::unique_ptr<Backend> backend;
  std::shared_ptr<ep::ExpertParallel> ep;
  std::unique_ptr<DeepseekNetwork> model;
  std::unique_ptr<LatentCache> cache;
};

struct EpGroup {
  ModelConfig cfg;
  std::vector<std::shared_ptr<ep::Transport>> transports;
  std::vector<EpRank> ranks;

  // wrap (optional) replaces rank r's transport, e.g. with one that fails on purpose.
  using Wrap = std::function<std::shared_ptr<ep::Transport>(int, std::shared_ptr<ep::Transport>)>;

  EpGroup(const std::string& dir, int n, int redundant, ep::EpOptions eo = {}, ep::InProcessOptions io = {},
          ModelOptions mo = {}, const Wrap& wrap = nullptr, bool batch_invariant = false) {
    cfg = load_model_config(dir);
    auto store = std::make_shared<WeightStore>(dir);
    transports = ep::make_in_process_group(n, io);
    if (wrap)
      for (int r = 0; r < n; ++r) transports[r] = wrap(r, transports[r]);
    const int64_t layers = cfg.num_hidden_layers + (mo.load_mtp ? cfg.num_nextn_predict_layers : 0);
    ep::Placement p = ep::contiguous_placement(layers, cfg.n_routed_experts, n, redundant);
    ranks.resize(n);
    for (int r = 0; r < n; ++r) {
      EpRank& k = ranks[r];
      k.backend = make_cpu_backend(1, batch_invariant);
      k.ep = std::make_shared<ep::ExpertParallel>(transports[r], *k.backend, p, eo);
      ModelOptions o = mo;
      o.moe_hook = k.ep;
      o.bind_expert = k.ep->bind_filter();
      k.model = std::make_unique<DeepseekNetwork>(cfg, store, *k.backend, o);
      k.cache = std::make_unique<LatentCache>(*k.backend, k.model->cache_layers(), cfg.kv_cache_width(), 16,
                                              64 << 20);
    }
  }

  // Runs fn(rank) on one thread per rank, each inside run_collective; returns each rank's error ("" if none).
  std::vector<std::string> run(const std::function<void(int)>& fn) {
    std::vector<std::string> err(ranks.size());
    std::vector<std::thread> th;
    for (size_t r = 0; r < ranks.size(); ++r)
      th.emplace_back([&, r] {
        try {
          ep::run_collective(*transports[r], [&] { fn(static_cast<int>(r)); });
        } catch (const std::exception& e) {
          err[r] = e.what();
          if (err[r].empty()) err[r] = "?";
        }
      });
    for (auto& t : th) t.join();
    return err;
  }
};

}  // namespace moert::testing
