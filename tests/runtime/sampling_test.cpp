// Sampling math against straightforward reference formulas: penalties, temperature, top-k, top-p, min-p,
// greedy ties, and the generator's reproducibility and distribution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "backend/sampling.h"
#include "engine/text_stream.h"

namespace moert {
namespace {

std::vector<float> random_logits(int n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// The textbook pipeline, written out independently: softmax(l / T), then keep the k most likely, then
// the smallest prefix reaching mass p (renormalised), then tokens with p >= min_p * p_max.
std::vector<double> reference_distribution(std::vector<double> l, double T, int k, double top_p,
                                           double min_p) {
  const int n = static_cast<int>(l.size());
  double mx = *std::max_element(l.begin(), l.end());
  std::vector<double> p(n);
  double s = 0;
  for (int i = 0; i < n; ++i) s += p[i] = std::exp((l[i] - mx) / T);
  for (double& x : p) x /= s;
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return p[a] > p[b]; });
  std::vector<bool> keep(n, false);
  int kk = k > 0 ? std::min(k, n) : n;
  double mass = 0;
  for (int i = 0; i < kk; ++i) mass += p[idx[i]];
  double cum = 0;
  int count = 0;
  for (int i = 0; i < kk; ++i) {
    keep[idx[i]] = true;
    ++count;
    cum += p[idx[i]] / mass;
    if (top_p < 1.0 && cum >= top_p) break;
  }
  for (int i = 0; i < n; ++i)
    if (keep[i] && p[i] < min_p * p[idx[0]]) keep[i] = false;
  double tot = 0;
  for (int i = 0; i < n; ++i) tot += keep[i] ? p[i] : 0;
  std::vector<double> out(n, 0.0);
  for (int i = 0; i < n; ++i) out[i] = keep[i] ? p[i] / tot : 0.0;
  return out;
}

TEST(Sampling, DistributionMatchesReferenceFormulas) {
  const auto l = random_logits(300, 1);
  std::vector<double> ld(l.begin(), l.end());
  struct Case {
    double T;
    int k;
    double p, minp;
  } cases[] = {{1.0, 0, 1.0, 0.0},  {0.7, 20, 1.0, 0.0}, {1.3, 0, 0.9, 0.0},
               {0.9, 50, 0.8, 0.0}, {1.0, 0, 1.0, 0.05}, {0.5, 10, 0.95, 0.1}};
  for (const Case& c : cases) {
    SamplingParams sp;
    sp.temperature = c.T;
    sp.top_k = c.k;
    sp.top_p = c.p;
    sp.min_p = c.minp;
    std::vector<double> got;
    sampling_distribution(l.data(), 300, sp, nullptr, &got);
    const auto want = reference_distribution(ld, c.T, c.k, c.p, c.minp);
    for (int i = 0; i < 300; ++i)
      ASSERT_NEAR(got[i], want[i], 1e-12) << "T=" << c.T << " k=" << c.k << " i=" << i;
  }
}

TEST(Sampling, PenaltiesFollowTheirDefinitions) {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  TokenHistory h;
  h.add_prompt({0, 1});
  h.add_output(1);
  h.add_output(3);
  h.add_output(3);
  SamplingParams sp;
  sp.temperature = 1.0;
  sp.repetition_penalty = 2.0;
  sp.presence_penalty = 0.5;
  std::vector<double> got;
  sampling_distribution(l.data(), 5, sp, &h, &got);
  // repetition: seen tokens 0, 1, 3 -> 2/2, -1*2, 3/2; presence: output tokens 1, 3 -> -0.5 each (once).
  std::vector<double> pen = {1.0, -2.5, 0.5, 1.0, -2.0};
  const auto want = reference_distribution(pen, 1.0, 0, 1.0, 0.0);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
  // Frequency: minus f per occurrence in the output (token 3 twice, token 1 once).
  sp.frequency_penalty = 0.25;
  sampling_distribution(l.data(), 5, sp, &h, &got);
  const auto want_f = reference_distribution({1.0, -2.75, 0.5, 0.5, -2.0}, 1.0, 0, 1.0, 0.0);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(got[i], want_f[i], 1e-12) << i;
  sp.frequency_penalty = 0.0;
  // Greedy sees the penalties too: token 3 (3.0 -> 1.0) ties with token 0 (2.0 -> 1.0): lowest id wins.
  SamplingRng rng(1);
  sp.temperature = 0.0;
  EXPECT_EQ(sample_token(l.data(), 5, sp, rng, &h), 0);
  SamplingParams plain;
  EXPECT_EQ(sample_token(l.data(), 5, plain, rng, &h), 3);
  SamplingParams freq;  // greedy with only a frequency penalty: token 3 (twice in the output) 3.0 -> 0.0
  freq.frequency_penalty = 1.5;
  EXPECT_EQ(sample_token(l.data(), 5, freq, rng, &h), 0);
}

TEST(Sampling, LogitBiasIsAddedAfterThePenalties) {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  SamplingParams sp;
  sp.logit_bias = {{3, -2.5f}, {4, 4.0f}};
  SamplingRng rng(1);
  // Greedy, no history: 3.0 - 2.5 = 0.5, -2.0 + 4.0 = 2.0 ties with token 0: lowest id wins.
  EXPECT_EQ(sample_token(l.data(), 5, sp, rng, nullptr), 0);
  sp.logit_bias.push_back({2, 10.0f});
  EXPECT_EQ(sample_token(l.data(), 5, sp, rng, nullptr), 2);
  // Sampled: the distribution of the biased logits; after a repetition penalty (token 3 seen: 3 / 2).
  TokenHistory h;
  h.add_output(3);
  sp.temperature = 1.0;
  sp.repetition_penalty = 2.0;
  sp.logit_bias = {{3, 1.0f}};
  std::vector<double> got;
  sampling_distribution(l.data(), 5, sp, &h, &got);
  const auto want = reference_distribution({2.0, -1.0, 0.5, 2.5, -2.0}, 1.0, 0, 1.0, 0.0);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
}

TEST(Sampling, SeededDrawsAreReproducibleAndFollowTheDistribution) {
  const auto l = random_logits(50, 7);
  SamplingParams sp;
  sp.temperature = 1.0;
  sp.top_k = 10;
  sp.seed = 42;
  std::vector<double> p;
  sampling_distribution(l.data(), 50, sp, nullptr, &p);
  SamplingRng a(42), b(42), c(43);
  std::map<int, int> counts;
  const int draws = 20000;
  bool differs = false;
  for (int i = 0; i < draws; ++i) {
    const int x = sample_token(l.data(), 50, sp, a, nullptr);
    EXPECT_EQ(x, sample_token(l.data(), 50, sp, b, nullptr));
    differs |= x != sample_token(l.data(), 50, sp, c, nullptr);
    ++counts[x];
  }
  EXPECT_TRUE(differs);
  for (int t = 0; t < 50; ++t) {
    const double f = static_cast<double>(counts[t]) / draws;
    if (p[t] == 0.0) {
      EXPECT_EQ(counts[t], 0) << t;
    } else {
      EXPECT_NEAR(f, p[t], 4 * std::sqrt(p[t] * (1 - p[t]) / draws) + 1e-3) << t;
    }
  }
}

TEST(StopMatcher, HoldsBackPossibleStopPrefixesAndCutsAtTheStop) {
  StopMatcher m({"</end>", "STOP"});
  bool stopped = false;
  EXPECT_EQ(m.push("hello </e", &stopped), "hello ");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.push("x", &stopped), "</ex");  // not a stop after all: released
  EXPECT_EQ(m.push(" ST", &stopped), " ");
  EXPECT_EQ(m.push("OP and more", &stopped), "");
  EXPECT_TRUE(stopped);
  StopMatcher none({});
  EXPECT_EQ(none.push("abc", &stopped), "abc");
  StopMatcher tail({"xyz"});
  EXPECT_EQ(tail.push("abx", &stopped), "ab");
  EXPECT_EQ(tail.flush(), "x");
}

}  // namespace
}  // namespace moert
