#include "backend/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moert {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

// Applies the penalties, then the logit bias, to a copy of the logits.
void penalised(const float* logits, int64_t vocab, const SamplingParams& p, const TokenHistory* h,
               std::vector<double>& out) {
  out.assign(logits, logits + vocab);
  if (h && p.repetition_penalty != 1.0) {
    auto apply = [&](int32_t t) {
      if (t < 0 || t >= vocab) return;
      double& l = out[t];
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    };
    // Each seen token is penalised once, whether it came from the prompt, the output or both.
    for (const auto& [t, n] : h->prompt) apply(t);
    for (const auto& [t, n] : h->output)
      if (!h->prompt.count(t)) apply(t);
  }
  if (h && (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0))
    for (const auto& [t, n] : h->output)
      if (t >= 0 && t < vocab) out[t] -= p.presence_penalty + p.frequency_penalty * n;
  for (const auto& [t, b] : p.logit_bias)
    if (t >= 0 && t < vocab) out[t] += b;
}

}  // namespace

SamplingRng::SamplingRng(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& s : s_) s = splitmix64(x);
}

uint64_t SamplingRng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double SamplingRng::uniform() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

void sampling_distribution(const float* logits, int64_t vocab, const SamplingParams& p,
                           const TokenHistory* history, std::vector<double>* probs) {
  std::vector<double> l;
  penalised(logits, vocab, p, history, l);
  // Softmax at the temperature.
  double mx = -INFINITY;
  for (double v : l) mx = std::max(mx, v);
  probs->assign(vocab, 0.0);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += ((*probs)[i] = std::exp((l[i] - mx) / p.temperature));
  for (double& v : *probs) v /= sum;
  // Candidates by descending probability (ties: lower id first).
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  auto by_prob = [&](int32_t a, int32_t b) {
    return (*probs)[a] > (*probs)[b] || ((*probs)[a] == (*probs)[b] && a < b);
  };
  int64_t keep = vocab;
  if (p.top_k > 0 && p.top_k < vocab) {
    std::partial_sort(order.begin(), order.begin() + p.top_k, order.end(), by_prob);
    keep = p.top_k;
  } else {
    std::sort(order.begin(), order.end(), by_prob);
  }
  if (p.top_p < 1.0) {
    // Smallest prefix whose mass (renormalised over the top-k set) reaches top_p.
    double kept_mass = 0.0;
    for (int64_t i = 0; i < keep; ++i) kept_mass += (*probs)[order[i]];
    double cum = 0.0;
    int64_t n = 0;
    while (n < keep) {
      cum += (*probs)[order[n]] / kept_mass;
      ++n;
      if (cum >= p.top_p) break;
    }
    keep = std::max<int64_t>(n, 1);
  }
  if (p.min_p > 0.0) {
    const double threshold = p.min_p * (*probs)[order[0]];
    int64_t n = 0;
    while (n < keep && (*probs)[order[n]] >= threshold) ++n;
    keep = std::max<int64_t>(n, 1);
  }
  std::vector<double> kept(vocab, 0.0);
  double total = 0.0;
  for (int64_t i = 0; i < keep; ++i) total += (kept[order[i]] = (*probs)[order[i]]);
  for (double& v : kept) v /= total;
  probs->swap(kept);
}

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& p, SamplingRng& rng,
                     const TokenHistory* history) {
  if (p.temperature <= 0.0) {
    std::vector<double> l;
    const bool penalties =
        history && (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0);
    if (!penalties && p.logit_bias.empty())
      return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
    penalised(logits, vocab, p, history, l);
    return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
  }
  std::vector<double> probs;
  sampling_distribution(logits, vocab, p, history, &probs);
  // Inverse CDF over ids in order: deterministic given the generator state.
  const double u = rng.uniform();
  double cum = 0.0;
  int32_t last = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (probs[i] <= 0.0) continue;
    cum += probs[i];
    last = static_cast<int32_t>(i);
    if (u < cum) return last;
  }
  return last;
}

}  // namespace moert
