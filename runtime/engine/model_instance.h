// A model ready to serve: config, mapped weights, a backend, the graph and the shared KV-cache budget.
// Immutable after load apart from the cache pool (internally locked) and the step lock, which serialises
// forward passes on the backend.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "backend/backend.h"
#include "config/model_config.h"
#include "ep/expert_parallel.h"
#include "kv/kv_image.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "weights/weight_store.h"

namespace moert {

struct LoadOptions {
  int threads = 0;
  std::string device = "cpu";
  bool batch_invariant = false;  // CPU: a sequence's logits do not depend on its batch (see make_cpu_backend)
  ActMode act_mode = ActMode::kF32;
  int64_t kv_cache_bytes = 256ll << 20;
  int64_t max_batch = 16;
  AttentionForm attention = AttentionForm::kAuto;
  bool load_mtp = true;
  // Scan every weight for NaN/Inf (and FP8 NaN bytes, bad scales) at load: Error(kFormat) instead of
  // garbage logits later. Reads every byte of the checkpoint once (bench/RESULTS.md has the cost).
  bool check_weights = true;
  int64_t page_rows = 64;
  // Requests sharing a prompt prefix reuse its cached KV pages (LatentCache's prefix cache).
  bool prefix_cache = true;
  // Speculative decoding with the MTP module: "on" (when the checkpoint has it and it is loaded; not with
  // expert parallelism), "auto" ("on" on cuda, off on the cpu, where it does not pay) or "off";
  // draft_tokens drafts per step (1-3, chained through the module).
  std::string speculative = "auto";
  int64_t draft_tokens = 1;
  bool cuda_graphs = true;
  // Activations between ops (Backend::act_dtype): "auto" (bf16 on cuda, fp32 on the cpu), "fp32" or "bf16"
  // (cuda only).
  std::string activation_dtype = "auto";
  std::string kv_cache_dtype =
      "auto";  // "auto" (bf16 on cuda, fp32 on the cpu), "fp32" or "bf16" (cuda only)  // decode steps as
               // CUDA graphs (ModelOptions::graphs); no effect on the CPU
  // Expert parallelism (runtime/ep): the routed experts spread over ep_size ranks, one rank per process
  // (ep_transport "mpi": every process of MPI_COMM_WORLD; MPI initialised here when the host has not;
  // "nccl": GPU ranks, one GPU each, NCCL's id over MPI when ep_size > 1).
  // "inproc" is a one-rank in-process group (the EP code path in one process); "none" (default when
  // ep_size is 1): no EP, the default single-process path.
  int ep_size = 1;
  std::string ep_transport;   // "" = "mpi" when ep_size > 1, else "none"
  int ep_redundant = 0;       // redundant expert slots per rank
  int64_t eplb_interval = 0;  // engine steps between EPLB re-placements (0 = never)
  // Two-microbatch overlap of the exchange with compute (same on every rank): 1 on, 0 off, -1 auto: on
  // unless every rank is on one host (Transport::single_host), where exchanges are about as fast as memory
  // and the split batch costs more than it hides (bench/RESULTS.md).
  int ep_overlap = -1;
  int ep_max_ranks_per_token = 0;  // prefer replicas on ranks a token already uses, up to this many (0 = off)
  int64_t ep_timeout_ms = 60000;   // every exchange wait
  bool operator==(const LoadOptions&) const = default;
};

// Load progress: fraction in [0, 1] and a stage name; return false to cancel (load throws kCancelled).
using ProgressFn = std::function<bool(double fraction, const char* stage)>;

class ModelInstance {
 public:
  static std::shared_ptr<ModelInstance> load(const std::string& dir, const LoadOptions& opts,
                                             const ProgressFn& progress = nullptr);

  const ModelConfig& config() const { return cfg_; }
  DeepseekNetwork& network() { return *model_; }
  LatentCache& cache() { return *cache_; }
  std::mutex& step_mutex() { return step_mu_; }
  const LoadOptions& options() const { return opts_; }
  const Backend& backend() const { return *backend_; }
  const std::string& dir() const { return dir_; }
  // The expert-parallel context, or null without EP. With EP every forward is collective: every rank
  // must run it (with or without tokens), in the same order.
  ep::ExpertParallel* ep() { return ep_.get(); }
  const ep::ExpertParallel* ep() const { return ep_.get(); }
  // Logits outside the engine (sessions, moert_model_logits): Error(kUnsupported) with EP over more than
  // one rank, where every forward is a collective the engine schedules.
  void require_direct_forward() const;
  // The KV image shape of this checkpoint (kv/kv_image.h): its fingerprint (config, and every tensor's
  // name, dtype, shape and first and last bytes: computed once, on first use), the main layers, the cache
  // width, the vocabulary and the context length.
  KvImageShape kv_image_shape();

 private:
  ModelInstance() = default;
  std::string dir_;
  LoadOptions opts_;
  ModelConfig cfg_;
  std::shared_ptr<WeightStore> store_;
  std::unique_ptr<Backend> backend_;
  std::shared_ptr<ep::ExpertParallel> ep_;
  std::unique_ptr<DeepseekNetwork> model_;
  std::unique_ptr<LatentCache> cache_;
  std::mutex step_mu_;
  std::once_flag fingerprint_once_;
  uint64_t fingerprint_ = 0;
};

}  // namespace moert
