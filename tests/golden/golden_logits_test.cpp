// The fixtures' reference logits (Hugging Face transformers, float32, eager) reproduced by the CPU engine:
// prompt logits from one full forward, decode logits from prefill + one token at a time through the KV
// cache, and case0's hidden state entering every layer.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "golden_fixture.h"

namespace moert {
namespace {

using testing::Golden;
using testing::max_abs_diff;

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
      EXPECT_LT(
          max_abs_diff(last.data(), g.floats(k + ".prompt_logits") + (prompt.size() - 1) * g.cfg.vocab_size,
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
