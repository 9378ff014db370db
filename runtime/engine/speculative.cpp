#include "engine/speculative.h"
#include <cstddef>

namespace moert {
namespace {

// A token from `probs` (sums to about 1) by the inverse CDF at u in [0, 1).
int32_t draw(const std::vector<double>& probs, double u) {
  double total = 0.0;
  for (double q : probs) total += q;
  double acc = 0.0;
  const double target = u * total;
  int32_t last = -1;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0) continue;
    acc += probs[i];
    last = static_cast<int32_t>(i);
    if (target < acc) return last;
  }
  return last;  // rounding at the top end
}

}  // namespace

std::vector<int32_t> accept_drafts(const float* logits, int64_t vocab, const std::vector<int32_t>& drafts,
                                   const SamplingParams& p, SamplingRng& rng, const TokenHistory* history) {
  std::vector<int32_t> out;
  const size_t k = drafts.size();
  if (p.temperature <= 0.0) {
    for (size_t j = 0; j <= k; ++j) {
      const int32_t t = sample_token(logits + j * vocab, vocab, p, rng, history);
      out.push_back(t);
      if (j == k || t != drafts[j]) break;
    }
    return out;
  }
  std::vector<double> probs;
  for (size_t j = 0; j <= k; ++j) {
    sampling_distribution(logits + j * vocab, vocab, p, history, &probs);
    if (j == k) {
      out.push_back(draw(probs, rng.uniform()));
      break;
    }
    const int32_t d = drafts[j];
    const double pd = d >= 0 && d < vocab ? probs[d] : 0.0;
    if (rng.uniform() < pd) {
      out.push_back(d);
      continue;
    }
    // Rejected: the residual max(p - q, 0) with q one-hot at d is p without d.
    if (d >= 0 && d < vocab) probs[d] = 0.0;
    const int32_t t = draw(probs, rng.uniform());
    out.push_back(t >= 0 ? t : d);  // p was all on d (then it was accepted above with certainty)
    break;
  }
  return out;
}

}  // namespace moert
