// MTP speculative decoding: the acceptance rule keeps the model's distribution (a statistical test over many
// seeds), and the engine with the trained MTP module (tests/data/moert-tiny-coder-mtp: the shipped model plus
// its module) emits transformers' greedy tokens with drafts on, alone, in batches, with chunked prefill,
// the prefix cache, chained drafts, stop tokens, max_tokens and cancellation, while most steps keep a draft.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "engine/speculative.h"
#include "engine_fixture.h"

namespace moert {
namespace {

using namespace moert::testing;

// Pearson's chi-square of counts against probabilities (cells with expectation >= 5).
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& p, int64_t n, int* dof) {
  double x2 = 0;
  *dof = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * static_cast<double>(n);
    if (e < 5) continue;
    x2 += (counts[i] - e) * (counts[i] - e) / e;
    ++*dof;
  }
  return x2;
}

TEST(AcceptDrafts, GreedyKeepsDraftsWhileTheyAreTheArgmax) {
  const int64_t V = 5;
  // Row j's argmax: 3, 1, 4.
  const std::vector<float> logits = {0, 1, 2, 9, 0, /**/ 0, 8, 1, 1, 1, /**/ 0, 0, 0, 0, 7};
  SamplingParams greedy;
  SamplingRng rng(1);
  EXPECT_EQ(accept_drafts(logits.data(), V, {3, 1}, greedy, rng, nullptr), (std::vector<int32_t>{3, 1, 4}));
  EXPECT_EQ(accept_drafts(logits.data(), V, {3, 2}, greedy, rng, nullptr), (std::vector<int32_t>{3, 1}));
  EXPECT_EQ(accept_drafts(logits.data(), V, {0, 1}, greedy, rng, nullptr), (std::vector<int32_t>{3}));
  EXPECT_EQ(accept_drafts(logits.data(), V, {}, greedy, rng, nullptr), (std::vector<int32_t>{3}));
}

// Whatever the drafts, the first emitted token follows row 0's distribution and, given the first draft was
// kept, the second follows row 1's: speculative sampling changes the cost, not the distribution.
TEST(AcceptDrafts, SampledTokensKeepTheModelsDistributionOverManySeeds) {
  const int64_t V = 6, N = 40000;
  const std::vector<float> logits = {0.5f, 1.5f,  -1.0f, 2.0f, 0.0f, 1.0f,  //
                                     1.0f, -0.5f, 2.5f,  0.0f, 1.2f, 0.3f,  //
                                     0.0f, 0.0f,  1.0f,  1.0f, 2.0f, -2.0f};
  SamplingParams p;
  p.temperature = 0.8;
  p.top_k = 5;  // one token is filtered out: the residual must not bring it back
  std::vector<double> p0, p1;
  sampling_distribution(logits.data(), V, p, nullptr, &p0);
  sampling_distribution(logits.data() + V, V, p, nullptr, &p1);
  for (const std::vector<int32_t>& drafts :
       {std::vector<int32_t>{3, 2}, std::vector<int32_t>{2, 5}, std::vector<int32_t>{4, 1}}) {
    std::vector<int64_t> first(V, 0), second(V, 0);
    int64_t kept = 0;
    for (int64_t s = 0; s < N; ++s) {
      SamplingRng rng(static_cast<uint64_t>(s) * 7919 + 13);
      const std::vector<int32_t> out = accept_drafts(logits.data(), V, drafts, p, rng, nullptr);
      ASSERT_FALSE(out.empty());
      ASSERT_LE(out.size(), drafts.size() + 1);
      for (size_t j = 0; j + 1 < out.size(); ++j) ASSERT_EQ(out[j], drafts[j]);  // only drafts are kept
      ++first[out[0]];
      if (out[0] == drafts[0]) {
        ++kept;
        ++second[out[1]];
      }
    }
    // The filtered-out token never appears.
    for (int64_t t = 0; t < V; ++t)
      if (p0[t] == 0) {
        EXPECT_EQ(first[t], 0) << "token " << t;
      }
    int dof = 0;
    const double x0 = chi_square(first, p0, N, &dof);
    // 5 degrees of freedom at most: 30 is beyond the 0.9999 quantile (25.7); seeds are fixed, so no flakes.
    EXPECT_LT(x0, 30.0) << "first token, drafts " << drafts[0] << "," << drafts[1] << " dof " << dof;
    EXPECT_NEAR(static_cast<double>(kept) / N, p0[drafts[0]], 0.01);  // acceptance = p(draft)
    const double x1 = chi_square(second, p1, kept, &dof);
    EXPECT_LT(x1, 30.0) << "second token, drafts " << drafts[0] << "," << drafts[1];
  }
}

std::shared_ptr<ModelInstance> load_mtp(bool speculative, int64_t drafts = 1, bool prefix = true) {
  LoadOptions o;
  o.threads = 2;
  o.kv_cache_bytes = 64 << 20;
  o.batch_invariant = true;
  o.speculative = speculative ? "on" : "off";
  o.draft_tokens = drafts;
  o.prefix_cache = prefix;
  return ModelInstance::load(std::string(MOERT_TEST_DATA) + "/moert-tiny-coder-mtp", o);
}

TEST(SpeculativeEngine, GreedyTokensAreTransformersWithDraftsOn) {
  const Reference ref = load_reference();  // the same main model: transformers' greedy tokens
  for (int64_t drafts : {1, 2, 3}) {
    Engine engine(load_mtp(true, drafts), nullptr);
    ASSERT_TRUE(engine.speculative());
    int64_t drafted = 0, accepted = 0, forwards = 0, generated = 0;
    for (size_t i = 0; i < ref.prompts.size(); ++i) {
      auto r = engine.submit(ref.prompts[i], greedy(static_cast<int64_t>(ref.greedy[i].size())));
      Collected c = drain(*r);
      EXPECT_EQ(c.tokens, ref.greedy[i]) << "prompt " << i << ", " << drafts << " drafts";
      EXPECT_EQ(c.finish, FinishReason::kLength);
      const Usage u = r->usage();
      drafted += u.draft_tokens;
      accepted += u.accepted_drafts;
      forwards += u.decode_forwards;
      generated += u.generated_tokens;
    }
    std::printf("[spec] %lld drafts: %lld of %lld accepted, %.2f tokens per forward\n",
                static_cast<long long>(drafts), static_cast<long long>(accepted),
                static_cast<long long>(drafted),
                static_cast<double>(generated - static_cast<int64_t>(ref.prompts.size())) / forwards);
    EXPECT_GT(drafted, 0);
    EXPECT_GT(accepted, drafted / 5);  // the trained module's drafts are often right
    // Every token after each prompt's first came from a forward that kept accepted_drafts extra.
    EXPECT_EQ(generated - static_cast<int64_t>(ref.prompts.size()), forwards + accepted);
  }
}

TEST(SpeculativeEngine, ConcurrentChunkedAndPrefixCachedStreamsKeepTheTokens) {
  const Reference ref = load_reference();
  auto model = load_mtp(true, 2);
  Engine engine(model, nullptr);
  engine.set_prefill_chunk(5);
  for (int round = 0; round < 2; ++round) {  // the second round's prompts come from the prefix cache
    std::vector<std::vector<int32_t>> got(8);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
      threads.emplace_back([&, t] {
        got[t] =
            drain(*engine.submit(ref.prompts[t % 4], greedy(static_cast<int64_t>(ref.greedy[t % 4].size()))))
                .tokens;
      });
    for (auto& th : threads) th.join();
    for (int t = 0; t < 8; ++t) EXPECT_EQ(got[t], ref.greedy[t % 4]) << "round " << round << " stream " << t;
  }
  EXPECT_EQ(model->cache().free_pages(), model->cache().total_pages());  // nothing leaked
}

TEST(SpeculativeEngine, StopTokensMaxTokensAndCancelEndWhereTheyWould) {
  const Reference ref = load_reference();
  auto model = load_mtp(true, 3);
  Engine engine(model, nullptr);
  const auto& g = ref.greedy[1];
  for (int64_t n : {1, 2, 5, 7}) {  // max_tokens may fall inside a step's accepted drafts
    Collected c = drain(*engine.submit(ref.prompts[1], greedy(n)));
    EXPECT_EQ(c.tokens, std::vector<int32_t>(g.begin(), g.begin() + n)) << "max_tokens " << n;
    EXPECT_EQ(c.finish, FinishReason::kLength);
  }
  GenerationParams q = greedy(48);
  q.stop_token_ids = {g[6]};
  Collected d = drain(*engine.submit(ref.prompts[1], q));
  const size_t first = std::find(g.begin(), g.end(), g[6]) - g.begin();
  EXPECT_EQ(d.tokens, std::vector<int32_t>(g.begin(), g.begin() + first + 1));
  EXPECT_EQ(d.finish, FinishReason::kStop);
  auto r = engine.submit(ref.prompts[0], greedy(100000));
  StreamEvent ev;
  ASSERT_EQ(r->next(&ev, std::chrono::seconds(60)), RequestStream::Next::kEvent);
  r->cancel();
  EXPECT_EQ(drain(*r).finish, FinishReason::kCancelled);
  EXPECT_EQ(model->cache().free_pages(), model->cache().total_pages());
}

TEST(SpeculativeEngine, SeededSamplingIsReproducibleWhateverTheBatch) {
  const Reference ref = load_reference();
  Engine engine(load_mtp(true), nullptr);
  GenerationParams p = greedy(40);
  p.sampling.temperature = 0.7;
  p.sampling.top_p = 0.95;
  p.sampling.seed = 4321;
  auto alone = engine.submit(ref.prompts[2], p);
  const std::vector<int32_t> a = drain(*alone).tokens;
  EXPECT_GT(alone->usage().draft_tokens, 0);
  std::vector<std::shared_ptr<RequestStream>> noise;
  for (int i = 0; i < 4; ++i) noise.push_back(engine.submit(ref.prompts[i], greedy(30)));
  const std::vector<int32_t> b = drain(*engine.submit(ref.prompts[2], p)).tokens;
  for (auto& n : noise) drain(*n);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 40u);
}

TEST(SpeculativeEngine, OffOrPenalisedRequestsDecodeWithoutDrafts) {
  const Reference ref = load_reference();
  Engine off(load_mtp(false), nullptr);
  EXPECT_FALSE(off.speculative());
  {
    // "auto" is off on the CPU (a step with a draft costs about twice a plain one there), on on cuda.
    LoadOptions o;
    o.threads = 2;
    o.speculative = "auto";
    Engine cpu_auto(ModelInstance::load(std::string(MOERT_TEST_DATA) + "/moert-tiny-coder-mtp", o), nullptr);
    EXPECT_FALSE(cpu_auto.speculative());
  }
  auto r = off.submit(ref.prompts[0], greedy(16));
  EXPECT_EQ(drain(*r).tokens, std::vector<int32_t>(ref.greedy[0].begin(), ref.greedy[0].begin() + 16));
  EXPECT_EQ(r->usage().draft_tokens, 0);
  Engine on(load_mtp(true), nullptr);
  GenerationParams p = greedy(16);
  p.sampling.repetition_penalty = 1.3;
  auto pen = on.submit(ref.prompts[0], p);
  drain(*pen);
  EXPECT_EQ(pen->usage().draft_tokens, 0);
  EXPECT_EQ(pen->usage().decode_forwards, 15);
}

}  // namespace
}  // namespace moert
