// The MTP module (layer num_hidden_layers): shapes and wiring of its draft logits.
#include <gtest/gtest.h>

#include "checkpoint/random_checkpoint.h"
#include "golden_fixture.h"
#include "util/error.h"

#include <cstdio>
#include <filesystem>

namespace moert {
namespace {

using testing::Golden;

TEST(Mtp, LoadsAndDraftsWithCausalWiring) {
  Golden g("tiny-v3-fp8");
  ASSERT_EQ(g.model->weights().mtp.size(), 1u);
  EXPECT_EQ(g.model->cache_layers(), g.cfg.num_hidden_layers + 1);
  const std::vector<int32_t> prompt = g.ints("case1.prompt");
  const int64_t T = static_cast<int64_t>(prompt.size()), H = g.cfg.hidden_size, V = g.cfg.vocab_size;
  LatentCache cache = g.cache();
  KvSequence kv(&cache);
  std::vector<float> logits(T * V), hidden;
  std::vector<SequenceStep> steps{{&kv, prompt.data(), T, true}};
  g.model->forward(steps, logits.data(), nullptr, &hidden);
  ASSERT_EQ(hidden.size(), static_cast<size_t>(T * H));

  // Draft for positions 0..T-2: h_i with t_{i+1}, all at once.
  const int64_t n = T - 1;
  std::vector<float> draft(n * V);
  g.model->mtp_draft(kv, 0, hidden.data(), prompt.data() + 1, n, draft.data());
  for (float v : draft) ASSERT_TRUE(std::isfinite(v));
  // The drafts are a distribution different from the main head's.
  EXPECT_GT(testing::max_abs_diff(draft.data(), logits.data() + V, n * V), 1e-3f);

  // Causal: drafting the first half alone gives the same rows.
  LatentCache cache2 = g.cache();
  KvSequence kv2(&cache2);
  std::vector<SequenceStep> steps2{{&kv2, prompt.data(), T, true}};
  g.model->forward(steps2, logits.data());
  const int64_t half = n / 2;
  std::vector<float> part(half * V);
  g.model->mtp_draft(kv2, 0, hidden.data(), prompt.data() + 1, half, part.data());
  EXPECT_LT(testing::max_abs_diff(part.data(), draft.data(), half * V), 1e-4f);
  // ... and then the rest incrementally, one position at a time, over the MTP layer's cache.
  std::vector<float> one(V);
  for (int64_t i = half; i < n; ++i) {
    g.model->mtp_draft(kv2, i, hidden.data() + i * H, prompt.data() + 1 + i, 1, one.data());
    EXPECT_LT(testing::max_abs_diff(one.data(), draft.data() + i * V, V), 1e-4f) << "position " << i;
  }

  // Wiring: the draft at position i depends on the next token t_{i+1}.
  std::vector<int32_t> other(prompt.begin() + 1, prompt.end());
  other[n - 1] = (other[n - 1] + 1) % static_cast<int32_t>(V);
  std::vector<float> changed(V);
  g.model->mtp_draft(kv2, n - 1, hidden.data() + (n - 1) * H, other.data() + n - 1, 1, changed.data());
  EXPECT_GT(testing::max_abs_diff(changed.data(), draft.data() + (n - 1) * V, V), 1e-4f);

  EXPECT_THROW(g.model->mtp_draft(kv2, T, hidden.data(), prompt.data(), 1, one.data()), Error);
}

// Against an independent torch implementation (tests/data/tiny-v3-fp8/mtp_reference.safetensors, made by
// shared/gpu/mtp_torch.py): the module is fed the main model's hidden state AFTER the final norm (as vLLM
// and SGLang do), which is what forward's on_hidden sees at layer num_hidden_layers, and its draft logits
// match within 1e-4 for every case.
// One checkpoint's MTP logits against its mtp_reference.safetensors (prompts from there, or from the
// checkpoint's reference.safetensors).
void expect_mtp_matches_reference(const std::string& name) {
  Golden g(name);
  SafetensorsFile mref(g.dir + "/mtp_reference.safetensors");
  const int64_t H = g.cfg.hidden_size, V = g.cfg.vocab_size;
  for (int c = 0; mref.tensors().count("case" + std::to_string(c) + ".mtp_logits"); ++c) {
    const std::string k = "case" + std::to_string(c);
    std::vector<int32_t> prompt;
    if (mref.tensors().count(k + ".prompt")) {
      const TensorInfo& t = mref.tensors().at(k + ".prompt");
      const int32_t* d = reinterpret_cast<const int32_t*>(t.data);
      prompt.assign(d, d + t.numel());
    } else {
      prompt = g.ints(k + ".prompt");
    }
    const int64_t T = static_cast<int64_t>(prompt.size()), n = T - 1;
    const float* want_h = reinterpret_cast<const float*>(mref.tensors().at(k + ".mtp_hidden").data);
    const float* want_l = reinterpret_cast<const float*>(mref.tensors().at(k + ".mtp_logits").data);
    LatentCache cache = g.cache();
    KvSequence kv(&cache);
    std::vector<float> post(T * H);
    std::vector<SequenceStep> steps{{&kv, prompt.data(), T, false}};
    g.model->forward(steps, nullptr, [&](int64_t layer, const Tensor& x) {
      if (layer == g.cfg.num_hidden_layers) g.backend->copy_to_host(x, post.data());
    });
    EXPECT_LT(testing::max_abs_diff(post.data(), want_h, n * H), 1e-4f)
        << name << " " << k << ": the post-norm hidden";
    std::vector<float> draft(n * V);
    g.model->mtp_draft(kv, 0, post.data(), prompt.data() + 1, n, draft.data());
    const float err = testing::max_abs_diff(draft.data(), want_l, n * V);
    std::printf("%s %s: MTP logits max abs diff %.3g over %lld positions\n", name.c_str(), k.c_str(), err,
                (long long)n);
    EXPECT_LT(err, 1e-4f) << name << " " << k;
  }
}

TEST(Mtp, MatchesTheTorchReferenceFedThePostNormHidden) {
  expect_mtp_matches_reference("tiny-v3-fp8");
}

// The default model with its trained module (tests/data/moert-tiny-coder-mtp, from shared/models).
TEST(Mtp, TrainedModuleMatchesItsTorchReference) {
  expect_mtp_matches_reference("moert-tiny-coder-mtp");
}

// Released checkpoints store the module's output head (and V3's its embedding) as copies of the model's: one
// binding serves both. A head of its own (a random checkpoint's) stays its own.
TEST(Mtp, SharesTheModelsHeadAndEmbeddingWhenTheCheckpointCopiesThem) {
  for (const char* name : {"moert-tiny-coder-mtp", "tiny-v3-fp8"}) {
    Golden g(name);
    const ModelWeights& w = g.model->weights();
    ASSERT_EQ(w.mtp.size(), 1u) << name;
    EXPECT_EQ(w.mtp[0].head.w.data, w.lm_head.w.data) << name;
    EXPECT_EQ(w.mtp[0].embed.data, w.embed.data) << name;
  }
  const std::string dir = ::testing::TempDir() + "moert_mtp_own_head";
  RandomCheckpointSpec spec;
  spec.vocab = 512, spec.hidden = 128, spec.intermediate = 256, spec.moe_intermediate = 64;
  spec.layers = 2, spec.heads = 2, spec.q_lora = 64, spec.kv_lora = 64, spec.nope = 32, spec.rope = 16;
  spec.vdim = 32, spec.experts = 4, spec.top_k = 2, spec.n_group = 1, spec.topk_group = 1, spec.shared = 1;
  spec.mtp = 1;
  write_random_checkpoint(dir, spec);
  auto backend = make_cpu_backend(1);
  DeepseekNetwork m(load_model_config(dir), std::make_shared<WeightStore>(dir), *backend, ModelOptions{});
  ASSERT_EQ(m.weights().mtp.size(), 1u);
  EXPECT_NE(m.weights().mtp[0].head.w.data, m.weights().lm_head.w.data);
  std::filesystem::remove_all(dir);
}

TEST(Mtp, AbsentModuleIsAnError) {
  Golden g("tiny-v3-bf16");
  EXPECT_TRUE(g.model->weights().mtp.empty());
  LatentCache cache = g.cache();
  KvSequence kv(&cache);
  std::vector<float> h(g.cfg.hidden_size), out(g.cfg.vocab_size);
  int32_t t = 1;
  EXPECT_THROW(g.model->mtp_draft(kv, 0, h.data(), &t, 1, out.data()), Error);
}

}  // namespace
}  // namespace moert
