// The prefix cache: the radix tree of page blocks, the cache's shared pages (reference counts, the copy of
// a page matched in part, eviction that never takes a running sequence's pages), logits with and without
// it bit for bit (batch_invariant), and the engine reusing prompts: alone, concurrently, with chunked
// prefill, under eviction pressure and with the expert-parallel loop.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>

#include "engine_fixture.h"
#include "kv/prefix_tree.h"
#include "util/error.h"

namespace moert {
namespace {

using namespace moert::testing;

std::vector<int32_t> iota_tokens(int64_t n, int32_t from) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = from + static_cast<int32_t>(i);
  return t;
}

TEST(PrefixTree, MatchesWholeBlocksThenPartOfOne) {
  PrefixTree tree(4);
  const std::vector<int32_t> a = iota_tokens(12, 100);
  EXPECT_EQ(tree.insert(a.data(), {7, 8, 9}, 3), (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ(tree.nodes(), 3);
  // The same blocks again (another sequence's duplicate pages): the tree keeps its own.
  EXPECT_TRUE(tree.insert(a.data(), {1, 2, 3}, 3).empty());

  std::vector<int32_t> q = a;
  q[10] = 5;  // diverges inside the third block
  PrefixTree::Match m = tree.match(q.data(), static_cast<int64_t>(q.size()));
  EXPECT_EQ(m.tokens, 10);
  EXPECT_EQ(m.full_pages, 2);
  EXPECT_EQ(m.pages, (std::vector<int32_t>{7, 8, 9}));
  // At most n tokens.
  m = tree.match(a.data(), 6);
  EXPECT_EQ(m.tokens, 6);
  EXPECT_EQ(m.pages, (std::vector<int32_t>{7, 8}));
  // Nothing in common.
  const std::vector<int32_t> other = iota_tokens(8, 500);
  EXPECT_EQ(tree.match(other.data(), 8).tokens, 0);
}

TEST(PrefixTree, EvictsTheLeastRecentlyUsedFreePageWithWhatHangsBelowIt) {
  PrefixTree tree(2);
  const std::vector<int32_t> a = iota_tokens(6, 10), b = iota_tokens(4, 50);
  tree.insert(a.data(), {1, 2, 3}, 3);
  tree.insert(b.data(), {4, 5}, 2);
  tree.match(a.data(), 6);  // a's chain is now the more recent
  std::vector<int32_t> dropped = tree.evict_one([](int32_t) { return true; });
  EXPECT_EQ(dropped, (std::vector<int32_t>{5, 4}));  // b's root block with its child
  // A page somebody else holds is never a victim.
  dropped = tree.evict_one([](int32_t p) { return p != 1; });
  EXPECT_EQ(dropped, (std::vector<int32_t>{3, 2}));  // page 2 (the oldest free one) with page 3 below it
  EXPECT_EQ(tree.nodes(), 1);
  EXPECT_TRUE(tree.evict_one([](int32_t p) { return p != 1; }).empty());
}

struct CacheFixture {
  std::unique_ptr<Backend> backend = make_cpu_backend(1, false);
  // 2 layers x 8 floats, 4 tokens a page, 6 pages.
  LatentCache cache{*backend, 2, 8, 4, 6 * 2 * 8 * 4 * 4};
  CacheFixture() { cache.set_prefix_cache(true); }
  float* row(int32_t page, int64_t layer, int64_t r) {
    const LatentPool p = cache.layer(layer);
    return p.pool.ptr<float>() + page * p.page_stride + r * p.width;
  }
  // Writes recognisable values into every row a sequence holds.
  void fill(const KvSequence& s, float base) {
    for (size_t i = 0; i < s.pages().size(); ++i)
      for (int64_t l = 0; l < 2; ++l)
        for (int64_t r = 0; r < 4; ++r)
          for (int64_t c = 0; c < 8; ++c)
            row(s.pages()[i], l, r)[c] = base + i * 100 + l * 10 + r + c * 0.01f;
  }
};

TEST(LatentCachePrefix, SharesWholePagesAndCopiesAPartlyMatchedOne) {
  CacheFixture f;
  const std::vector<int32_t> t = iota_tokens(12, 1);
  KvSequence a(&f.cache);
  a.reserve(12);
  a.advance(12);
  f.fill(a, 1.0f);
  f.cache.publish(a, t.data());
  EXPECT_EQ(f.cache.cached_pages(), 3);
  EXPECT_EQ(f.cache.free_pages(), 3);  // a holds its 3 pages (the cache's references do not count twice)

  std::vector<int32_t> q = t;
  q[9] = 999;
  KvSequence b(&f.cache);
  EXPECT_EQ(f.cache.attach_prefix(b, q.data(), 11), 9);
  ASSERT_EQ(b.pages().size(), 3u);
  EXPECT_EQ(b.pages()[0], a.pages()[0]);
  EXPECT_EQ(b.pages()[1], a.pages()[1]);
  EXPECT_NE(b.pages()[2], a.pages()[2]);  // its own copy: b writes token 9 there next
  EXPECT_EQ(b.length(), 9);
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t r = 0; r < 4; ++r)
      EXPECT_EQ(std::memcmp(f.row(b.pages()[2], l, r), f.row(a.pages()[2], l, r), 8 * sizeof(float)), 0);
  EXPECT_EQ(f.cache.free_pages(), 2);

  // A sequence that truncates into a shared page and writes again gets a private copy first.
  KvSequence c(&f.cache);
  EXPECT_EQ(f.cache.attach_prefix(c, t.data(), 8), 8);
  c.truncate(6);
  const int32_t shared = c.pages()[1];
  c.reserve(1);
  EXPECT_NE(c.pages()[1], shared);
  EXPECT_EQ(c.pages()[0], a.pages()[0]);
}

TEST(LatentCachePrefix, EvictionReclaimsOnlyPagesNobodyRuns) {
  CacheFixture f;
  const std::vector<int32_t> t = iota_tokens(8, 1), u = iota_tokens(8, 50);
  {
    KvSequence a(&f.cache);
    a.reserve(8);
    a.advance(8);
    f.cache.publish(a, t.data());
  }  // a ended: its two pages are the cache's alone
  KvSequence b(&f.cache);
  b.reserve(8);
  b.advance(8);
  f.cache.publish(b, u.data());  // b runs on
  EXPECT_EQ(f.cache.free_pages(), 4);
  // Four pages wanted: the two free ones and the two the cache alone holds; b's stay b's.
  KvSequence c(&f.cache);
  c.reserve(16);
  EXPECT_EQ(c.pages().size(), 4u);
  for (int32_t p : c.pages())
    for (int32_t q : b.pages()) EXPECT_NE(p, q);
  EXPECT_EQ(f.cache.cached_pages(), 2);  // t's blocks evicted, u's kept (b still holds them)
  KvSequence d(&f.cache);
  EXPECT_THROW(d.reserve(1), Error);  // nothing left: b's pages are not taken
  KvSequence e(&f.cache);
  EXPECT_EQ(f.cache.attach_prefix(e, u.data(), 8), 8);  // u still reusable
}

// Logits of the suffix after an attached prefix equal a fresh forward's, bit for bit (batch_invariant).
TEST(PrefixCacheLogits, SuffixAfterACachedPrefixIsBitIdentical) {
  Golden g("tiny-v3-fp8", {}, 2, /*batch_invariant=*/true);
  LatentCache cache = g.cache();  // 16 tokens a page
  cache.set_prefix_cache(true);
  std::mt19937 rng(7);
  std::vector<int32_t> first(48);  // three whole pages
  for (auto& t : first) t = static_cast<int32_t>(rng() % g.cfg.vocab_size);
  {
    KvSequence kv(&cache);
    // In two chunks, as chunked prefill would.
    std::vector<SequenceStep> s1{{&kv, first.data(), 20, false, true}};
    g.model->forward(s1, nullptr);
    std::vector<SequenceStep> s2{{&kv, first.data() + 20, 28, false}};
    std::vector<float> unused(g.cfg.vocab_size);
    g.model->forward(s2, unused.data());
    cache.publish(kv, first.data());
  }
  std::vector<int32_t> second(first.begin(), first.begin() + 37);
  for (int i = 0; i < 9; ++i) second.push_back(static_cast<int32_t>(rng() % g.cfg.vocab_size));
  const int64_t n = static_cast<int64_t>(second.size());

  KvSequence warm(&cache);
  const int64_t got = cache.attach_prefix(warm, second.data(), n - 1);
  ASSERT_EQ(got, 37);  // two whole pages and 5 tokens of the third
  std::vector<float> with(static_cast<size_t>((n - got) * g.cfg.vocab_size));
  std::vector<SequenceStep> ws{{&warm, second.data() + got, n - got, true}};
  g.model->forward(ws, with.data());

  const std::vector<float> cold = g.full_logits(second);
  EXPECT_EQ(std::memcmp(with.data(), cold.data() + got * g.cfg.vocab_size, with.size() * sizeof(float)), 0)
      << "max diff " << max_abs_diff(with.data(), cold.data() + got * g.cfg.vocab_size, with.size());
}

// Engine requests on the shipped model with small pages, with and without the prefix cache.
std::shared_ptr<ModelInstance> load_model(bool prefix, int64_t kv_bytes = 64 << 20, bool ep = false) {
  LoadOptions o;
  o.threads = 2;
  o.kv_cache_bytes = kv_bytes;
  o.page_rows = 16;
  o.batch_invariant = true;
  o.prefix_cache = prefix;
  if (ep) o.ep_transport = "inproc";
  return ModelInstance::load(MOERT_DEFAULT_MODEL_DIR, o);
}

GenerationParams sampled(int64_t n, uint64_t seed) {
  GenerationParams p = greedy(n);
  p.sampling.temperature = 1.0;  // sampled tokens depend on every bit of the logits
  p.sampling.seed = seed;
  return p;
}

// Prompts that share a long prefix (every reference prompt) and end differently.
std::vector<std::vector<int32_t>> shared_prefix_prompts(const Reference& ref) {
  std::vector<int32_t> prefix;
  for (const auto& p : ref.prompts) prefix.insert(prefix.end(), p.begin(), p.end());
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    std::vector<int32_t> p = prefix;
    p.insert(p.end(), ref.prompts[i].begin(), ref.prompts[i].begin() + 1 + i);
    out.push_back(p);
  }
  out.push_back(prefix);
  out.push_back(prefix);  // the very same prompt twice
  return out;
}

std::vector<std::vector<int32_t>> run_each(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                           std::vector<int64_t>* cached = nullptr) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto r = engine.submit(prompts[i], sampled(12, 100 + i));
    out.push_back(drain(*r).tokens);
    if (cached) cached->push_back(r->usage().cached_prompt_tokens);
  }
  return out;
}

TEST(PrefixCacheEngine, LaterRequestsReuseThePrefixAndSampleTheSameTokens) {
  const Reference ref = load_reference();
  const auto prompts = shared_prefix_prompts(ref);
  Engine off(load_model(false), nullptr);
  const auto expected = run_each(off, prompts);
  auto model = load_model(true);
  Engine on(model, nullptr);
  EXPECT_EQ(run_each(on, prompts), expected);  // the first fills the cache, the later ones reuse it
  std::vector<int64_t> cached;
  const auto again = run_each(on, prompts, &cached);
  EXPECT_EQ(again, expected);
  const int64_t prefix = static_cast<int64_t>(prompts.back().size());
  for (size_t i = 0; i < cached.size(); ++i) {
    EXPECT_GE(cached[i], prefix / 16 * 16) << "prompt " << i;
    EXPECT_LT(cached[i], static_cast<int64_t>(prompts[i].size())) << "prompt " << i;  // the last is computed
  }
  EXPECT_EQ(cached.back(), prefix - 1);  // a repeated prompt: all but its last token
  EXPECT_GT(model->cache().cached_pages(), 0);
}

TEST(PrefixCacheEngine, ConcurrentRequestsWithChunkedPrefill) {
  const Reference ref = load_reference();
  const auto prompts = shared_prefix_prompts(ref);
  Engine off(load_model(false), nullptr);
  const auto expected = run_each(off, prompts);
  Engine on(load_model(true), nullptr);
  on.set_prefill_chunk(7);
  for (int round = 0; round < 2; ++round) {
    std::vector<std::vector<int32_t>> got(prompts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i)
      threads.emplace_back([&, i] { got[i] = drain(*on.submit(prompts[i], sampled(12, 100 + i))).tokens; });
    for (auto& t : threads) t.join();
    EXPECT_EQ(got, expected) << "round " << round;
  }
}

TEST(PrefixCacheEngine, UnderEvictionPressureEveryRequestStillCompletes) {
  const Reference ref = load_reference();
  // Distinct long prompts through a budget that holds about two of them (with their output) at a time.
  std::vector<std::vector<int32_t>> prompts;
  for (int k = 0; k < 6; ++k) {
    std::vector<int32_t> p;
    for (int j = 0; j < 4; ++j) {
      const auto& src = ref.prompts[(k + j) % ref.prompts.size()];
      p.insert(p.end(), src.begin(), src.end());
    }
    p.push_back(static_cast<int32_t>(k + 1));
    prompts.push_back(p);
  }
  int64_t pages_needed = 0;
  for (const auto& p : prompts) pages_needed += (static_cast<int64_t>(p.size()) + 12 + 15) / 16;
  ASSERT_GT(pages_needed, 2 * 10);              // the cache must evict to serve them all, every round
  const int64_t page_bytes = 4 * 576 * 4 * 16;  // 4 layers (and no MTP) x 576 floats x 16 tokens
  auto model = load_model(true, 10 * page_bytes);
  ASSERT_EQ(model->cache().total_pages(), 10);
  Engine off(load_model(false, 10 * page_bytes), nullptr);
  Engine on(model, nullptr);
  const auto expected = run_each(off, prompts);
  for (int round = 0; round < 3; ++round) EXPECT_EQ(run_each(on, prompts), expected) << "round " << round;
  EXPECT_LE(model->cache().cached_pages(), 10);
  EXPECT_EQ(model->cache().free_pages(), 10);  // nothing runs: every page is free or the cache's alone
}

TEST(PrefixCacheEngine, ExpertParallelLoopReusesThePrefix) {
  const Reference ref = load_reference();
  const auto prompts = shared_prefix_prompts(ref);
  Engine off(load_model(false), nullptr);
  const auto expected = run_each(off, prompts);
  Engine on(load_model(true, 64 << 20, /*ep=*/true), nullptr);
  std::vector<int64_t> cached;
  EXPECT_EQ(run_each(on, prompts, &cached), expected);
  EXPECT_EQ(cached.back(), static_cast<int64_t>(prompts.back().size()) - 1);
}

}  // namespace
}  // namespace moert
