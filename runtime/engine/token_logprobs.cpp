#include "engine/token_logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moert {

TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t token, int32_t top) {
  // log-sum-exp in double around the maximum: exact to float for any vocabulary size.
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  TokenLogprobs out;
  out.logprob = static_cast<float>(logits[token] - lse);
  const int64_t k = std::clamp<int64_t>(top, 0, vocab);
  if (k == 0) return out;
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), better);
  for (int64_t i = 0; i < k; ++i) {
    out.top_ids.push_back(ids[i]);
    out.top_logprobs.push_back(static_cast<float>(logits[ids[i]] - lse));
  }
  return out;
}

}  // namespace moert
