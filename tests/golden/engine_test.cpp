// The generation engine on the shipped trained model: transformers' greedy continuations reproduced,
// concurrency (continuous batching) giving the same tokens as one request at a time, chunked prefill,
// cancellation, the shared KV budget, seeded sampling, and stop strings across token boundaries.
#include <gtest/gtest.h>

#include <thread>

#include "engine_fixture.h"
#include "util/error.h"

namespace moert {
namespace {

using namespace moert::testing;
using namespace std::chrono_literals;

TEST(Engine, ReproducesReferenceGreedyContinuations) {
  Reference ref = load_reference();
  auto model = load();
  Engine engine(model, nullptr);
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    auto r = engine.submit(ref.prompts[i], greedy(static_cast<int64_t>(ref.greedy[i].size())));
    Collected c = drain(*r);
    EXPECT_EQ(c.tokens, ref.greedy[i]) << "prompt " << i;
    EXPECT_EQ(c.finish, FinishReason::kLength);
    Usage u = r->usage();
    EXPECT_EQ(u.prompt_tokens, static_cast<int64_t>(ref.prompts[i].size()));
    EXPECT_EQ(u.generated_tokens, static_cast<int64_t>(ref.greedy[i].size()));
    EXPECT_GT(u.tokens_per_second, 0.0);
  }
}

// Eight streams at once (each reference prompt twice) each give the reference's greedy tokens.
void expect_eight_concurrent_streams(Engine& engine, const Reference& ref) {
  std::vector<std::vector<int32_t>> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      auto r = engine.submit(ref.prompts[t % 4], greedy(static_cast<int64_t>(ref.greedy[t % 4].size())));
      got[t] = drain(*r).tokens;
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(got[t], ref.greedy[t % 4]) << "stream " << t;
}

TEST(Engine, EightConcurrentStreamsMatchOneAtATime) {
  Reference ref = load_reference();
  auto model = load();
  Engine engine(model, nullptr);
  expect_eight_concurrent_streams(engine, ref);
}

// The expert-parallel engine loop in one process (a one-rank in-process group), with the two-microbatch
// overlap cutting every step's batch in two (prompts straddle the cut, chunked prefill mixes with decode),
// a redundant slot and EPLB every 4 steps: eight concurrent streams still give transformers' tokens.
TEST(Engine, ExpertParallelPathWithOverlapKeepsTheTokens) {
  Reference ref = load_reference();
  LoadOptions o;
  o.threads = 2;
  o.kv_cache_bytes = 64 << 20;
  o.ep_transport = "inproc";
  o.ep_overlap = 1;  // forced: auto is off for in-process ranks
  o.ep_redundant = 1;
  o.eplb_interval = 4;
  auto model = ModelInstance::load(MOERT_DEFAULT_MODEL_DIR, o);
  ASSERT_NE(model->ep(), nullptr);
  ASSERT_TRUE(model->ep()->two_microbatches());
  Engine engine(model, nullptr);
  engine.set_prefill_chunk(5);
  expect_eight_concurrent_streams(engine, ref);
}

TEST(Engine, ChunkedPrefillGivesTheSameTokens) {
  Reference ref = load_reference();
  auto model = load();
  Engine engine(model, nullptr);
  engine.set_prefill_chunk(3);  // every prompt spans several steps, interleaved with other requests
  auto a = engine.submit(ref.prompts[1], greedy(48));
  auto b = engine.submit(ref.prompts[3], greedy(48));
  EXPECT_EQ(drain(*a).tokens, ref.greedy[1]);
  EXPECT_EQ(drain(*b).tokens, ref.greedy[3]);
}

TEST(Engine, CancelFromAnotherThread) {
  Reference ref = load_reference();
  auto model = load();
  Engine engine(model, nullptr);
  auto r = engine.submit(ref.prompts[0], greedy(100000));
  auto other = engine.submit(ref.prompts[2], greedy(48));
  StreamEvent ev;
  ASSERT_EQ(r->next(&ev, 60s), RequestStream::Next::kEvent);
  std::thread([&] { r->cancel(); }).join();
  Collected rest = drain(*r);
  EXPECT_EQ(rest.finish, FinishReason::kCancelled);
  EXPECT_LT(rest.tokens.size(), 1000u);
  EXPECT_EQ(r->next(&ev, 1s), RequestStream::Next::kDone);
  EXPECT_EQ(drain(*other).tokens, ref.greedy[2]);  // the other stream is unaffected
}

TEST(Engine, RequestLargerThanKvBudgetFailsAlone) {
  Reference ref = load_reference();
  // 4 layers x 576 floats x 4 bytes x 64 tokens per page: budget of 3 pages = 192 tokens.
  auto model = load(3 * 64 * 4 * 576 * 4);
  Engine engine(model, nullptr);
  std::vector<int32_t> huge(400, 17);
  auto big = engine.submit(huge, greedy(4));
  auto ok = engine.submit(ref.prompts[0], greedy(48));
  Collected c = drain(*big);
  EXPECT_EQ(c.finish, FinishReason::kError);
  EXPECT_NE(big->error().find("KV cache"), std::string::npos) << big->error();
  EXPECT_EQ(drain(*ok).tokens, ref.greedy[0]);
}

TEST(Engine, SeededSamplingIsReproducibleWhateverTheBatch) {
  Reference ref = load_reference();
  auto model = load();
  Engine engine(model, nullptr);
  GenerationParams p;
  p.max_tokens = 32;
  p.ignore_eos = true;
  p.sampling.temperature = 0.9;
  p.sampling.top_k = 40;
  p.sampling.top_p = 0.95;
  p.sampling.seed = 1234;
  auto alone = drain(*engine.submit(ref.prompts[0], p)).tokens;
  // Same request while three others run.
  std::vector<std::shared_ptr<RequestStream>> noise;
  for (int i = 1; i < 4; ++i) noise.push_back(engine.submit(ref.prompts[i], greedy(40)));
  auto crowded = drain(*engine.submit(ref.prompts[0], p)).tokens;
  for (auto& n : noise) drain(*n);
  EXPECT_EQ(alone, crowded);
  p.sampling.seed = 99;
  auto other_seed = drain(*engine.submit(ref.prompts[0], p)).tokens;
  EXPECT_NE(alone, other_seed);
}

// A decoder for tests: token t is the text "<t>" split at a fixed place so stop strings straddle tokens.
class FakeDecoder : public TokenTextDecoder {
 public:
  std::string push(int32_t t) override { return "[" + std::to_string(t) + "]"; }
  std::string flush() override { return ""; }
};

TEST(Engine, StopStringsAcrossTokenBoundaries) {
  Reference ref = load_reference();
  auto model = load();
  Engine engine(model, [] { return std::make_unique<FakeDecoder>(); });
  const auto& g = ref.greedy[0];
  // A stop string spanning the end of token 2's text and the start of token 3's.
  const std::string stop = std::to_string(g[2]) + "][" + std::to_string(g[3]).substr(0, 1);
  GenerationParams p = greedy(48);
  p.stop_strings = {stop};
  Collected c = drain(*engine.submit(ref.prompts[0], p));
  EXPECT_EQ(c.finish, FinishReason::kStop);
  EXPECT_EQ(c.tokens.size(), 4u);
  EXPECT_EQ(c.text, "[" + std::to_string(g[0]) + "][" + std::to_string(g[1]) + "][");
  // Stop token ids end the stream on that token.
  GenerationParams q = greedy(48);
  q.stop_token_ids = {g[5]};
  Collected d = drain(*engine.submit(ref.prompts[0], q));
  EXPECT_EQ(d.finish, FinishReason::kStop);
  EXPECT_EQ(d.tokens.back(), g[5]);
}

TEST(Engine, RejectsBadPrompts) {
  auto model = load();
  Engine engine(model, nullptr);
  EXPECT_THROW(engine.submit({}, greedy(1)), Error);
  EXPECT_THROW(engine.submit({1, 999999}, greedy(1)), Error);
}

}  // namespace
}  // namespace moert
