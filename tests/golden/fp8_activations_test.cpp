// DeepSeek's FP8 activation numerics (1x128 tiles, scale = amax / 448) against the fp32 reference: the
// agreement is measured and bounded, and the mode must really change the numbers. Measured on the trained
// moert-tiny-coder (teacher-forced on transformers' greedy continuations) and on the random fixture, whose
// untrained routers flip on small perturbations and so agree less.
#include <gtest/gtest.h>

#include <cstdio>

#include "golden_fixture.h"

namespace moert {
namespace {

struct Agreement {
  int64_t rows = 0, agree = 0;
  float worst = 0.0f;
  std::vector<float> row_max;
  void add(const float* got, const float* want, int64_t V) {
    ++rows;
    agree += testing::argmax(got, V) == testing::argmax(want, V);
    const float m = testing::max_abs_diff(got, want, V);
    worst = std::max(worst, m);
    row_max.push_back(m);
  }
  double top1() const { return static_cast<double>(agree) / rows; }
  float median() {
    std::sort(row_max.begin(), row_max.end());
    return row_max[row_max.size() / 2];
  }
};

TEST(Fp8Activations, TrainedModelAgreesWithFp32) {
  const std::string dir = MOERT_DEFAULT_MODEL_DIR;
  ModelOptions fp8;
  fp8.act_mode = ActMode::kFp8;
  auto store = std::make_shared<WeightStore>(dir);
  const ModelConfig cfg = load_model_config(dir);
  auto backend = make_cpu_backend(2);
  DeepseekNetwork m32(cfg, store, *backend, ModelOptions{}), m8(cfg, store, *backend, fp8);
  SafetensorsFile ref(dir + "/reference.safetensors");
  Agreement a;
  const int64_t V = cfg.vocab_size;
  for (int p = 0; ref.tensors().count("prompt" + std::to_string(p) + ".ids"); ++p) {
    std::vector<int32_t> ids;
    for (const char* part : {".ids", ".greedy"}) {
      const TensorInfo& t = ref.tensors().at("prompt" + std::to_string(p) + part);
      const int32_t* d = reinterpret_cast<const int32_t*>(t.data);
      ids.insert(ids.end(), d, d + t.numel());
    }
    std::vector<float> l32(ids.size() * V), l8(ids.size() * V);
    for (auto [model, out] : {std::pair{&m32, &l32}, std::pair{&m8, &l8}}) {
      LatentCache cache(*backend, model->cache_layers(), cfg.kv_cache_width(), 64, 16 << 20);
      KvSequence kv(&cache);
      std::vector<SequenceStep> steps{{&kv, ids.data(), static_cast<int64_t>(ids.size()), true}};
      model->forward(steps, out->data());
    }
    for (size_t r = 0; r < ids.size(); ++r) a.add(l8.data() + r * V, l32.data() + r * V, V);
  }
  const float median = a.median();
  std::printf(
      "fp8 vs fp32 activations, moert-tiny-coder (%lld positions): top-1 agreement %.1f%%, max abs %.3f, "
      "median per-position max abs %.3f\n",
      static_cast<long long>(a.rows), 100 * a.top1(), a.worst, median);
  EXPECT_GT(a.worst, 1e-3f) << "fp8 mode produced the fp32 numbers: activations were not quantised";
  EXPECT_GE(a.top1(), 0.95);
  EXPECT_LT(median, 0.6f);
}

TEST(Fp8Activations, RandomFixtureAgreement) {
  ModelOptions opts;
  opts.act_mode = ActMode::kFp8;
  testing::Golden g("tiny-v3-fp8", opts);
  Agreement a;
  for (int c = 0; g.has("case" + std::to_string(c) + ".prompt"); ++c) {
    const std::string k = "case" + std::to_string(c);
    const std::vector<int32_t> prompt = g.ints(k + ".prompt");
    const std::vector<float> got = g.full_logits(prompt);
    const float* want = g.floats(k + ".prompt_logits");
    for (size_t r = 0; r < prompt.size(); ++r)
      a.add(got.data() + r * g.cfg.vocab_size, want + r * g.cfg.vocab_size, g.cfg.vocab_size);
  }
  const float median = a.median();
  std::printf(
      "fp8 activations vs transformers fp32, tiny-v3-fp8 (%lld positions): top-1 agreement %.1f%%, "
      "max abs %.3f, median per-position max abs %.3f\n",
      static_cast<long long>(a.rows), 100 * a.top1(), a.worst, median);
  EXPECT_GT(a.worst, 1e-3f);
  EXPECT_GE(a.top1(), 0.6);
  EXPECT_LT(median, 1.0f);
}

TEST(Fp8Activations, BfloatCheckpointIsUnaffected) {
  // Only FP8 GEMMs quantise their activations; a bf16 checkpoint has none.
  ModelOptions opts;
  opts.act_mode = ActMode::kFp8;
  testing::Golden g("tiny-v3-bf16", opts);
  const std::vector<int32_t> prompt = g.ints("case0.prompt");
  const std::vector<float> got = g.full_logits(prompt);
  EXPECT_LT(testing::max_abs_diff(got.data(), g.floats("case0.prompt_logits"), got.size()), 2e-4f);
}

}  // namespace
}  // namespace moert
