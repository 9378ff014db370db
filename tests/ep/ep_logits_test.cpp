// The fixtures' logits with EP = 1, 2, 4 in-process ranks, each rank running its own share of the prompts
// (its own batch and KV cache; with 3 prompts and 4 ranks one rank idles and still takes part), prefill
// then 8 decode steps, with and without redundant experts, with both combine modes: equal to the
// single-process logits (bit for bit with the exact combine; within the stated bound with partial sums)
// and to the transformers reference within 2e-4. Also: a rank that throws fails every rank; a silent rank
// makes the others time out; EPLB re-placement between steps keeps the logits and evens out the work.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>

#include "ep_cases.h"
#include "ep_harness.h"
#include "util/error.h"

namespace moert {
namespace {

using testing::CaseOut;
using testing::count_cases;
using testing::EpGroup;
using testing::Golden;
using testing::kOverlapTol;
using testing::kPartialTol;
using testing::kRefTol;
using testing::max_abs_diff;
using testing::max_decode;
using testing::run_share;

// Single process, one prompt at a time (as the golden tests run them).
const std::vector<CaseOut>& single(const std::string& name) {
  static std::map<std::string, std::vector<CaseOut>> memo;
  auto it = memo.find(name);
  if (it != memo.end()) return it->second;
  Golden g(name, {}, 1);
  std::vector<CaseOut> out;
  for (int c = 0; g.has("case" + std::to_string(c) + ".prompt"); ++c) {
    const std::string k = "case" + std::to_string(c);
    std::vector<int32_t> prompt = g.ints(k + ".prompt"), dec = g.ints(k + ".decode_inputs");
    LatentCache cache = g.cache();
    KvSequence kv(&cache);
    CaseOut co;
    co.prompt.resize(prompt.size() * g.cfg.vocab_size);
    std::vector<SequenceStep> steps{{&kv, prompt.data(), static_cast<int64_t>(prompt.size()), true}};
    g.model->forward(steps, co.prompt.data());
    for (size_t i = 0; i < dec.size(); ++i) {
      std::vector<float> l(g.cfg.vocab_size);
      std::vector<SequenceStep> one{{&kv, &dec[i], 1, false}};
      g.model->forward(one, l.data());
      co.decode.push_back(l);
    }
    out.push_back(std::move(co));
  }
  return memo[name] = std::move(out);
}

// Single process, all prompts as one batch (the EP runs' global batch).
const std::vector<CaseOut>& single_batched(const std::string& name) {
  static std::map<std::string, std::vector<CaseOut>> memo;
  auto it = memo.find(name);
  if (it != memo.end()) return it->second;
  Golden g(name, {}, 1);
  std::vector<CaseOut> out(count_cases(g));
  std::vector<int> all;
  for (int c = 0; c < count_cases(g); ++c) all.push_back(c);
  LatentCache cache = g.cache();
  run_share(*g.model, cache, g, all, out);
  return memo[name] = std::move(out);
}

// Every rank runs cases c with c % ranks == rank.
std::vector<CaseOut> run_ep(EpGroup& grp, const Golden& ref, std::vector<std::string>* errors = nullptr,
                            int bad_rank = -1) {
  const int R = static_cast<int>(grp.ranks.size());
  std::vector<CaseOut> out(count_cases(ref));
  auto err = grp.run([&](int r) {
    std::vector<int> mine;
    for (int c = r; c < count_cases(ref); c += R) mine.push_back(c);
    run_share(*grp.ranks[r].model, *grp.ranks[r].cache, ref, mine, out, r == bad_rank);
  });
  if (errors) {
    *errors = err;
  } else {
    for (size_t r = 0; r < err.size(); ++r) EXPECT_EQ(err[r], "") << "rank " << r;
  }
  return out;
}

struct Diff {
  float vs_single = 0, vs_ref = 0;
};

Diff compare(const std::vector<CaseOut>& got, const std::vector<CaseOut>& want, const Golden& ref) {
  Diff d;
  const int64_t V = ref.cfg.vocab_size;
  for (size_t c = 0; c < want.size(); ++c) {
    const std::string k = "case" + std::to_string(c);
    EXPECT_EQ(got[c].prompt.size(), want[c].prompt.size()) << k;
    EXPECT_EQ(got[c].decode.size(), want[c].decode.size()) << k;
    if (got[c].prompt.size() != want[c].prompt.size() || got[c].decode.size() != want[c].decode.size())
      continue;
    d.vs_single = std::max(d.vs_single,
                           max_abs_diff(got[c].prompt.data(), want[c].prompt.data(), want[c].prompt.size()));
    d.vs_ref = std::max(d.vs_ref, max_abs_diff(got[c].prompt.data(), ref.floats(k + ".prompt_logits"),
                                               want[c].prompt.size()));
    for (size_t i = 0; i < want[c].decode.size(); ++i) {
      d.vs_single = std::max(d.vs_single, max_abs_diff(got[c].decode[i].data(), want[c].decode[i].data(), V));
      d.vs_ref = std::max(d.vs_ref,
                          max_abs_diff(got[c].decode[i].data(), ref.floats(k + ".decode_logits") + i * V, V));
    }
  }
  return d;
}

bool bit_equal(const std::vector<CaseOut>& a, const std::vector<CaseOut>& b) {
  for (size_t c = 0; c < a.size(); ++c) {
    if (a[c].prompt != b[c].prompt || a[c].decode != b[c].decode) return false;
  }
  return true;
}

using Param = std::tuple<std::string, int, int, ep::CombineMode, bool>;
class EpLogits : public ::testing::TestWithParam<Param> {};

TEST_P(EpLogits, MatchSingleProcessAndReference) {
  const auto [name, R, redundant, mode, overlap] = GetParam();
  const std::string dir = std::string(MOERT_TEST_DATA) + "/" + name;
  Golden ref(name, {}, 1);
  const auto& want = single(name);
  ep::EpOptions eo;
  eo.combine = mode;
  eo.overlap = overlap;
  EpGroup grp(dir, R, redundant, eo);
  const auto got = run_ep(grp, ref);
  const auto& batched = single_batched(name);
  const Diff d = compare(got, want, ref), db = compare(got, batched, ref);
  const bool exact = bit_equal(got, want), exact_b = bit_equal(got, batched);
  std::printf(
      "[ep] %s EP=%d redundant/rank=%d %s%s: vs single-process batched %.3g (%s), vs per-prompt %.3g "
      "(%s), vs reference %.3g\n",
      name.c_str(), R, redundant, mode == ep::CombineMode::kExact ? "exact" : "partial",
      overlap ? " overlap" : "", db.vs_single, exact_b ? "bit-exact" : "differs", d.vs_single,
      exact ? "bit-exact" : "differs", d.vs_ref);
  EXPECT_LT(d.vs_ref, kRefTol);
  EXPECT_LT(d.vs_single, overlap ? kOverlapTol : kPartialTol);
  EXPECT_LT(db.vs_single, overlap ? kOverlapTol : kPartialTol);
  // Every rank counted its routed pairs: top_k per token per MoE layer.
  int64_t tokens = 0;
  for (const auto& c : want)
    tokens += static_cast<int64_t>(c.prompt.size() / grp.cfg.vocab_size + c.decode.size());
  int64_t pairs = 0;
  for (auto& rk : grp.ranks)
    for (int64_t v : rk.ep->local_load()) pairs += v;
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < grp.cfg.num_hidden_layers; ++l) moe_layers += grp.cfg.is_moe_layer(l);
  EXPECT_EQ(pairs, tokens * grp.cfg.num_experts_per_tok * moe_layers);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EpLogits,
                         ::testing::Combine(::testing::Values("tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16"),
                                            ::testing::Values(1, 2, 4), ::testing::Values(0, 1),
                                            ::testing::Values(ep::CombineMode::kExact,
                                                              ep::CombineMode::kPartialSums),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           std::string s = std::get<0>(info.param);
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s + "_ep" + std::to_string(std::get<1>(info.param)) + "_red" +
                                  std::to_string(std::get<2>(info.param)) +
                                  (std::get<3>(info.param) == ep::CombineMode::kExact ? "_exact"
                                                                                      : "_partial") +
                                  (std::get<4>(info.param) ? "_overlap" : "");
                         });

// Batch-invariant CPU backend (every GEMM row summed the same way whatever the row count): then the only
// difference left between expert parallelism and one process is the exchange, which the exact combine makes
// exact. Logits bit for bit equal to one process running each prompt alone, for EP = 1, 2, 4, with and
// without redundant experts and the overlap, with the rows exchanged between the ranks' tensors and carried
// in the host messages (as over MPI).
TEST(EpBatchInvariant, BitExactWithOneProcess) {
  for (const std::string name : {"tiny-v3-fp8", "tiny-v2-bf16"}) {
    Golden ref(name, {}, 1, /*batch_invariant=*/true);
    // One process, one prompt at a time.
    std::vector<CaseOut> want(count_cases(ref));
    for (int c = 0; c < count_cases(ref); ++c) {
      LatentCache cache = ref.cache();
      run_share(*ref.model, cache, ref, {c}, want);
    }
    for (int R : {1, 2, 4})
      for (int redundant : {0, 1})
        for (bool overlap : {false, true})
          for (bool in_messages : {false, true}) {
            ep::EpOptions eo;
            eo.overlap = overlap;
            ep::InProcessOptions io;
            io.rows_in_messages = in_messages;
            EpGroup grp(std::string(MOERT_TEST_DATA) + "/" + name, R, redundant, eo, io, {}, nullptr, true);
            const auto got = run_ep(grp, ref);
            const Diff d = compare(got, want, ref);
            EXPECT_TRUE(bit_equal(got, want))
                << name << " EP=" << R << " redundant=" << redundant << (overlap ? " overlap" : "")
                << (in_messages ? " rows in messages" : "") << ": max diff " << d.vs_single;
            EXPECT_LT(d.vs_ref, kRefTol);
          }
  }
}

// And a batch: every prompt's logits (prefill and decode, 2 threads) are the same bits batched with the
// others as alone.
TEST(BatchInvariant, ABatchGivesEachSequenceItsLogitsAlone) {
  for (const std::string name : {"tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16"}) {
    Golden g(name, {}, 2, /*batch_invariant=*/true);
    std::vector<CaseOut> alone(count_cases(g)), batched(count_cases(g));
    std::vector<int> all;
    for (int c = 0; c < count_cases(g); ++c) {
      LatentCache cache = g.cache();
      run_share(*g.model, cache, g, {c}, alone);
      all.push_back(c);
    }
    LatentCache cache = g.cache();
    run_share(*g.model, cache, g, all, batched);
    EXPECT_TRUE(bit_equal(batched, alone)) << name << ": max diff " << compare(batched, alone, g).vs_single;
  }
}

// A prompt's logits (every row) from two forwards: tokens [0, cut), then the rest through the cache.
std::vector<float> chunked_prefill(Golden& g, const std::vector<int32_t>& prompt, int64_t cut) {
  const int64_t n = static_cast<int64_t>(prompt.size()), V = g.cfg.vocab_size;
  LatentCache cache = g.cache();
  KvSequence kv(&cache);
  std::vector<float> l(n * V);
  std::vector<SequenceStep> first{{&kv, prompt.data(), cut, true}};
  g.model->forward(first, l.data());
  std::vector<SequenceStep> rest{{&kv, prompt.data() + cut, n - cut, true}};
  g.model->forward(rest, l.data() + cut * V);
  return l;
}

// The same backend makes chunked prefill equal one forward, bit for bit (both chunks in the expanded form:
// a one-token chunk would take the absorbed form, another computation).
TEST(ChunkedPrefill, BitExactWithABatchInvariantBackend) {
  ModelOptions mo;
  mo.attention = AttentionForm::kExpanded;
  Golden g("tiny-v3-fp8", mo, 2, /*batch_invariant=*/true);
  const int64_t V = g.cfg.vocab_size;
  for (int c = 0; c < count_cases(g); ++c) {
    const std::vector<int32_t> prompt = g.ints("case" + std::to_string(c) + ".prompt");
    const int64_t n = static_cast<int64_t>(prompt.size());
    const std::vector<float> whole = g.full_logits(prompt);
    for (int64_t cut = 1; cut < n; cut += std::max<int64_t>(1, n / 5)) {
      const std::vector<float> l = chunked_prefill(g, prompt, cut);
      EXPECT_EQ(l, whole) << "case " << c << " cut " << cut << ": max diff "
                          << max_abs_diff(l.data(), whole.data(), n * V);
    }
  }
}

// The reordering bound the overlap runs are held to, measured in one process: a prompt's logits from two
// chunks (cut anywhere) against one forward.
TEST(ChunkedPrefill, DeviatesFromOneForwardWithinTheOverlapBound) {
  for (const std::string name : {"tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16"}) {
    Golden g(name, {}, 1);
    const auto& want = single(name);
    const int64_t V = g.cfg.vocab_size;
    float worst = 0;
    for (int c = 0; c < count_cases(g); ++c) {
      std::vector<int32_t> prompt = g.ints("case" + std::to_string(c) + ".prompt");
      const int64_t n = static_cast<int64_t>(prompt.size());
      for (int64_t cut = 1; cut < n; cut += std::max<int64_t>(1, n / 6)) {
        const std::vector<float> l = chunked_prefill(g, prompt, cut);
        worst = std::max(worst, max_abs_diff(l.data(), want[c].prompt.data(), n * V));
      }
    }
    std::printf("[ep] %s: chunked prefill vs one forward, worst over cuts %.3g\n", name.c_str(), worst);
    EXPECT_LT(worst, kOverlapTol);
    EXPECT_GT(worst, 0.0f);  // the effect the overlap bound is about exists
  }
}

// Ranks loaded with different settings fail together, naming the setting, before any exchange.
TEST(EpSettings, RanksThatDisagreeFailTogether) {
  auto group = ep::make_in_process_group(2);
  const ep::Placement p = ep::contiguous_placement(3, 16, 2, 0);
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<ep::ExpertParallel>> eps;
  for (int r = 0; r < 2; ++r) {
    ep::EpOptions eo;
    eo.overlap = r == 1;  // rank 1 overlaps, rank 0 does not
    backends.push_back(make_cpu_backend(1));
    eps.push_back(std::make_unique<ep::ExpertParallel>(group[r], *backends[r], p, eo));
  }
  std::vector<std::string> err(2);
  std::vector<std::thread> th;
  for (int r = 0; r < 2; ++r)
    th.emplace_back([&, r] {
      try {
        ep::run_collective(*group[r], [&] { eps[r]->check_same_settings({{"hidden_size", 256}}); });
      } catch (const std::exception& e) {
        err[r] = e.what();
      }
    });
  for (auto& t : th) t.join();
  for (int r = 0; r < 2; ++r) EXPECT_NE(err[r].find("disagree on ep_overlap"), std::string::npos) << err[r];
  // The same settings pass, extra values included.
  auto g2 = ep::make_in_process_group(2);
  std::vector<std::unique_ptr<ep::ExpertParallel>> same;
  for (int r = 0; r < 2; ++r) same.push_back(std::make_unique<ep::ExpertParallel>(g2[r], *backends[r], p));
  th.clear();
  for (int r = 0; r < 2; ++r)
    th.emplace_back([&, r] {
      try {
        same[r]->check_same_settings({{"hidden_size", 256}, {"eplb_interval", r == 0 ? 8 : 8}});
        err[r].clear();
      } catch (const std::exception& e) {
        err[r] = e.what();
      }
    });
  for (auto& t : th) t.join();
  EXPECT_EQ(err[0], "");
  EXPECT_EQ(err[1], "");
}

// Both fault tests with and without the overlap (where exchanges are in flight on the lane thread).
class EpFaults : public ::testing::TestWithParam<bool> {};

TEST_P(EpFaults, ARankThatThrowsFailsEveryRank) {
  const std::string name = "tiny-v3-fp8";
  Golden ref(name, {}, 1);
  ep::EpOptions eo;
  eo.overlap = GetParam();
  EpGroup grp(std::string(MOERT_TEST_DATA) + "/" + name, 4, 0, eo, {std::chrono::milliseconds(20000), {}});
  std::vector<std::string> err;
  const auto t0 = std::chrono::steady_clock::now();
  run_ep(grp, ref, &err, /*bad_rank=*/1);
  for (int r = 0; r < 4; ++r) EXPECT_NE(err[r], "") << "rank " << r << " did not fail";
  EXPECT_NE(err[1].find("outside the vocabulary"), std::string::npos) << err[1];
  EXPECT_NE(err[0].find("rank 1 failed"), std::string::npos) << err[0];
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));  // an abort, not the time-out
}

TEST_P(EpFaults, ASilentRankMakesTheOthersTimeOut) {
  const std::string name = "tiny-v3-bf16";
  Golden ref(name, {}, 1);
  ep::EpOptions eo;
  eo.overlap = GetParam();
  EpGroup grp(std::string(MOERT_TEST_DATA) + "/" + name, 2, 0, eo, {std::chrono::milliseconds(500), {}});
  std::vector<int32_t> prompt = ref.ints("case0.prompt");
  auto err = grp.run([&](int r) {
    if (r == 1) return;  // never steps
    KvSequence kv(grp.ranks[r].cache.get());
    std::vector<SequenceStep> steps{{&kv, prompt.data(), static_cast<int64_t>(prompt.size()), false}};
    std::vector<float> l(grp.cfg.vocab_size);
    grp.ranks[r].model->forward(steps, l.data());
  });
  EXPECT_NE(err[0].find("timed out"), std::string::npos) << err[0];
}

// A link that fails on its n-th all-to-all (mid-forward: exchanges of the other microbatch may be in flight).
class FailingLink final : public ep::Transport {
 public:
  FailingLink(std::shared_ptr<ep::Transport> t, int fail_at) : t_(std::move(t)), fail_at_(fail_at) {}
  int rank() const override { return t_->rank(); }
  int size() const override { return t_->size(); }
  void all_to_all(const std::vector<ep::Bytes>& send, std::vector<ep::Bytes>& recv) override {
    if (++calls_ == fail_at_) throw Error(ErrorCode::kInternal, "injected link failure");
    t_->all_to_all(send, recv);
  }
  void all_reduce_sum(int64_t* d, size_t n) override { t_->all_reduce_sum(d, n); }
  void all_reduce_sum(double* d, size_t n) override { t_->all_reduce_sum(d, n); }
  void barrier() override { t_->barrier(); }
  void abort(const std::string& why) override { t_->abort(why); }
  std::chrono::milliseconds timeout() const override { return t_->timeout(); }
  bool moves_rows(DeviceKind d) const override { return t_->moves_rows(d); }
  void all_to_all_rows(Backend& b, const Tensor& send, const std::vector<int64_t>& send_rows, Tensor& recv,
                       const std::vector<int64_t>& recv_rows, const std::shared_ptr<void>& after) override {
    t_->all_to_all_rows(b, send, send_rows, recv, recv_rows, after);
  }

 private:
  std::shared_ptr<ep::Transport> t_;
  int fail_at_, calls_ = 0;
};

TEST_P(EpFaults, ATransportErrorMidForwardFailsEveryRank) {
  const std::string name = "tiny-v3-fp8";
  Golden ref(name, {}, 1);
  ep::EpOptions eo;
  eo.overlap = GetParam();
  auto wrap = [](int r, std::shared_ptr<ep::Transport> t) -> std::shared_ptr<ep::Transport> {
    return r == 2 ? std::make_shared<FailingLink>(std::move(t), 3) : t;
  };
  EpGroup grp(std::string(MOERT_TEST_DATA) + "/" + name, 4, 0, eo, {std::chrono::milliseconds(20000), {}}, {},
              wrap);
  std::vector<std::string> err;
  const auto t0 = std::chrono::steady_clock::now();
  run_ep(grp, ref, &err);
  for (int r = 0; r < 4; ++r) EXPECT_NE(err[r], "") << "rank " << r << " did not fail";
  EXPECT_NE(err[2].find("injected link failure"), std::string::npos) << err[2];
  EXPECT_NE(err[0].find("rank 2 failed"), std::string::npos) << err[0];
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));  // an abort, not the time-out
}

INSTANTIATE_TEST_SUITE_P(Overlap, EpFaults, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "overlap" : "sequential"); });

TEST(EpRebalance, ReplacementBetweenStepsKeepsLogitsAndEvensWork) {
  const std::string name = "tiny-v3-fp8";
  Golden ref(name, {}, 1);
  const auto& want = single(name);
  for (ep::EplbPolicy policy : {ep::EplbPolicy::kGlobal, ep::EplbPolicy::kHierarchical}) {
    EpGroup grp(std::string(MOERT_TEST_DATA) + "/" + name, 4, 1);
    const auto first = run_ep(grp, ref);
    EXPECT_LT(compare(first, want, ref).vs_single, kPartialTol);
    // Work per rank (pairs computed) under the contiguous placement, then EPLB from the gathered load.
    std::vector<std::vector<int64_t>> work_before(4), work_after(4);
    ep::EplbOptions eo;
    eo.policy = policy;
    eo.groups = static_cast<int>(grp.cfg.n_group);
    eo.nodes = 2;
    auto err = grp.run([&](int r) {
      work_before[r] = grp.ranks[r].ep->gather_work();
      ep::rebalance(*grp.ranks[r].ep, *grp.ranks[r].model, eo);
    });
    for (auto& e : err) EXPECT_EQ(e, "");
    for (int r = 1; r < 4; ++r)
      EXPECT_EQ(grp.ranks[r].ep->placement().layers, grp.ranks[0].ep->placement().layers);
    for (auto& rk : grp.ranks)
      rk.cache = std::make_unique<LatentCache>(*rk.backend, rk.model->cache_layers(),
                                               grp.cfg.kv_cache_width(), 16, 64 << 20);
    const auto second = run_ep(grp, ref);
    EXPECT_LT(compare(second, want, ref).vs_single, kPartialTol);
    EXPECT_LT(compare(second, want, ref).vs_ref, kRefTol);
    err = grp.run([&](int r) { work_after[r] = grp.ranks[r].ep->gather_work(); });
    for (auto& e : err) EXPECT_EQ(e, "");
    double before = 0, after = 0;
    int n = 0;
    for (int64_t l = 0; l < grp.cfg.num_hidden_layers; ++l) {
      if (!grp.cfg.is_moe_layer(l)) continue;
      std::vector<double> b(4), a(4);
      for (int r = 0; r < 4; ++r) {
        b[r] = static_cast<double>(work_before[0][l * 4 + r]);
        a[r] = static_cast<double>(work_after[0][l * 4 + r]);
      }
      before += ep::imbalance(b);
      after += ep::imbalance(a);
      ++n;
    }
    before /= n;
    after /= n;
    std::printf(
        "[ep] %s EP=4, 1 redundant slot/rank, %s EPLB from served load: max/mean (token, expert) pairs per "
        "rank %.3f -> %.3f (mean over MoE layers, same prompts)\n",
        name.c_str(), policy == ep::EplbPolicy::kGlobal ? "global" : "hierarchical (2 nodes)", before, after);
    EXPECT_LE(after, before);
  }
}

}  // namespace
}  // namespace moert
