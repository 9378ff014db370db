// The fixtures' reference logits (Hugging Face transformers, float32, eager) reproduced by the CPU engine:
// prompt logits from one full forward, decode logits from prefill + one token at a time through the KV
// cache, and case0's hidden state entering every layer.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "kv/latent_cache.h"
#include "model/deepseek_model.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"

namespace moert {
namespace {

struct Golden {
  std::string dir;
  ModelConfig cfg;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<DeepseekModel> model;
  std::unique_ptr<SafetensorsFile> ref;

  explicit Golden(const std::string& name, int threads = 2) {
    dir = std::string(MOERT_TEST_DATA) + "/" + name;
    cfg = load_model_config(dir);
    backend = make_cpu_backend(threads);
    model = std::make_unique<DeepseekModel>(cfg, std::make_shared<WeightStore>(dir), *backend, ModelOptions{});
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
  LatentCache cache() const { return LatentCache(*backend, model->cache_layers(), cfg.kv_cache_width(), 16, 64 << 20); }
};

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

constexpr float kTol = 2e-4f;

class GoldenLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenLogits, PromptLogitsMatchFullForward) {
  Golden g(GetParam());
  for (int c = 0; g.has("case" + std::to_string(c) + ".prompt"); ++c) {
    const std::string k = "case" + std::to_string(c);
    std::vector<int32_t> prompt = g.ints(k + ".prompt");
    LatentCache cache = g.cache();
    KvSequence kv(&cache);
    std::vector<float> logits(prompt.size() * g.cfg.vocab_size);
    std::vector<SequenceStep> steps{{&kv, prompt.data(), static_cast<int64_t>(prompt.size()), true}};
    g.model->forward(steps, logits.data());
    EXPECT_LT(max_abs_diff(logits.data(), g.floats(k + ".prompt_logits"), logits.size()), kTol) << k;
  }
}

TEST_P(GoldenLogits, DecodeLogitsMatchIncremental) {
  Golden g(GetParam());
  for (AttentionForm form : {AttentionForm::kAuto, AttentionForm::kExpanded, AttentionForm::kAbsorbed}) {
    g.model->set_attention_form(form);
    for (int c = 0; g.has("case" + std::to_string(c) + ".prompt"); ++c) {
      const std::string k = "case" + std::to_string(c);
      std::vector<int32_t> prompt = g.ints(k + ".prompt"), dec = g.ints(k + ".decode_inputs");
      LatentCache cache = g.cache();
      KvSequence kv(&cache);
      std::vector<float> last(g.cfg.vocab_size);
      std::vector<SequenceStep> steps{{&kv, prompt.data(), static_cast<int64_t>(prompt.size()), false}};
      g.model->forward(steps, last.data());
      EXPECT_LT(max_abs_diff(last.data(), g.floats(k + ".prompt_logits") + (prompt.size() - 1) * g.cfg.vocab_size,
                             last.size()),
                kTol)
          << k << " form " << int(form);
      const float* want = g.floats(k + ".decode_logits");
      for (size_t i = 0; i < dec.size(); ++i) {
        std::vector<SequenceStep> one{{&kv, &dec[i], 1, false}};
        g.model->forward(one, last.data());
        EXPECT_LT(max_abs_diff(last.data(), want + i * g.cfg.vocab_size, last.size()), kTol)
            << k << " decode step " << i << " form " << int(form);
      }
    }
  }
}

TEST_P(GoldenLogits, HiddenStatesOfCase0) {
  Golden g(GetParam());
  std::vector<int32_t> prompt = g.ints("case0.prompt");
  LatentCache cache = g.cache();
  KvSequence kv(&cache);
  std::vector<SequenceStep> steps{{&kv, prompt.data(), static_cast<int64_t>(prompt.size()), true}};
  std::vector<float> logits(prompt.size() * g.cfg.vocab_size), h;
  int seen = 0;
  g.model->forward(steps, logits.data(), [&](int64_t layer, const Tensor& x) {
    h.resize(x.rows * x.cols);
    g.backend->copy_to_host(x, h.data());
    const std::string name = "case0.hidden." + std::to_string(layer);
    ASSERT_TRUE(g.has(name)) << name;
    EXPECT_LT(max_abs_diff(h.data(), g.floats(name), h.size()), kTol) << name;
    ++seen;
  });
  EXPECT_EQ(seen, g.cfg.num_hidden_layers + 1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenLogits,
                         ::testing::Values("tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16", "tiny-v2lite-bf16"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace moert
