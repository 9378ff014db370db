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
#include "kv/latent_cache.h"
#include "model/deepseek_model.h"
#include "weights/weight_store.h"

namespace moert {

struct LoadOptions {
  int threads = 0;
  std::string device = "cpu";
  ActMode act_mode = ActMode::kF32;
  int64_t kv_cache_bytes = 256ll << 20;
  int64_t max_batch = 16;
  AttentionForm attention = AttentionForm::kAuto;
  bool load_mtp = true;
  int64_t page_rows = 64;
};

// Load progress: fraction in [0, 1] and a stage name; return false to cancel (load throws kCancelled).
using ProgressFn = std::function<bool(double fraction, const char* stage)>;

class LoadedModel {
 public:
  static std::shared_ptr<LoadedModel> load(const std::string& dir, const LoadOptions& opts,
                                           const ProgressFn& progress = nullptr);

  const ModelConfig& config() const { return cfg_; }
  DeepseekModel& model() { return *model_; }
  LatentCache& cache() { return *cache_; }
  std::mutex& step_mutex() { return step_mu_; }
  const LoadOptions& options() const { return opts_; }
  const std::string& dir() const { return dir_; }

 private:
  LoadedModel() = default;
  std::string dir_;
  LoadOptions opts_;
  ModelConfig cfg_;
  std::shared_ptr<WeightStore> store_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<DeepseekModel> model_;
  std::unique_ptr<LatentCache> cache_;
  std::mutex step_mu_;
};

}  // namespace moert
