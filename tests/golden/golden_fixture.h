// Loads a fixture checkpoint from tests/data with its reference outputs.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"

namespace moert::testing {

struct Golden {
  std::string dir;
  ModelConfig cfg;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<DeepseekNetwork> model;
  std::unique_ptr<SafetensorsFile> ref;

  explicit Golden(const std::string& name, ModelOptions opts = {}, int threads = 2,
                  bool batch_invariant = false) {
    dir = std::string(MOERT_TEST_DATA) + "/" + name;
    cfg = load_model_config(dir);
    backend = make_cpu_backend(threads, batch_invariant);
    model = std::make_unique<DeepseekNetwork>(cfg, std::make_shared<WeightStore>(dir), *backend, opts);
    ref = std::make_unique<SafetensorsFile>(dir + "/reference.safetensors");
  }
  const TensorInfo& t(const std::string& n) const { return ref->tensors().at(n); }
  bool has(const std::string& n) const { return ref->tensors().count(n) != 0; }
  std::vector<int32_t> ints(const std::string& n) const {
    const TensorInfo& ti = t(n);
    const int32_t* p = reinterpret_cast<const int32_t*>(ti.data);
    return std::vector<int32_t>(p, p + ti.numel());
  }
  const float* floats(const std::string& n) const { return reinterpret_cast<const float*>(t(n).data); }
  LatentCache cache() const {
    return LatentCache(*backend, model->cache_layers(), cfg.kv_cache_width(), 16, 64 << 20);
  }
  // Logits of one full forward over `tokens` (all rows).
  std::vector<float> full_logits(const std::vector<int32_t>& tokens) {
    LatentCache c = cache();
    KvSequence kv(&c);
    std::vector<float> logits(tokens.size() * cfg.vocab_size);
    std::vector<SequenceStep> steps{{&kv, tokens.data(), static_cast<int64_t>(tokens.size()), true}};
    model->forward(steps, logits.data());
    return logits;
  }
};

inline float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline int64_t argmax(const float* v, int64_t n) {
  return std::max_element(v, v + n) - v;
}

}  // namespace moert::testing
