// Log probabilities of a generated token under the model's distribution, as OpenAI's `logprobs` and vLLM's
// report them: the log-softmax of the step's raw logits (temperature 1; sampling's temperature, penalties,
// top-k/top-p and min-p do not change them), for the token chosen and the most likely alternatives.
#pragma once
#include <cstdint>
#include <vector>

namespace moert {

struct TokenLogprobs {
  float logprob = 0.0f;             // the chosen token's
  std::vector<int32_t> top_ids;     // the `top` most likely tokens, most likely first (ties: lower id first)
  std::vector<float> top_logprobs;  // theirs
};

// From one row of `vocab` finite logits; top in [0, vocab].
TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t token, int32_t top);

}  // namespace moert
