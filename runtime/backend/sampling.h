// Token sampling for generation: penalties, temperature, top-k, top-p, min-p, and a per-request seeded
// generator, so a seeded request samples the same tokens whatever else shares its batch.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moert {

struct SamplingParams {
  double temperature = 0.0;         // 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 0;                // 0: off
  double top_p = 1.0;               // 1: off
  double min_p = 0.0;               // 0: off; keeps tokens with p >= min_p * p_max
  double repetition_penalty = 1.0;  // HF: logit / r if > 0 else logit * r, for tokens seen (prompt + output)
  double presence_penalty = 0.0;    // OpenAI: logit - p for tokens present in the output
  double frequency_penalty = 0.0;   // OpenAI: logit - f * (times the token is in the output)
  uint64_t seed = 0;
  // OpenAI's logit_bias: (token, bias) added to the logits after the penalties (-100 all but bans a token,
  // +100 all but forces it). Ids outside the vocabulary are refused where a request is made.
  std::vector<std::pair<int32_t, float>> logit_bias;
  bool operator==(const SamplingParams&) const = default;
};

// xoshiro256** seeded by splitmix64: small, fast, and the same on every platform.
class SamplingRng {
 public:
  explicit SamplingRng(uint64_t seed = 0);
  uint64_t next();
  double uniform();  // [0, 1) with 53 random bits

 private:
  uint64_t s_[4];
};

// Token counts a request has seen, for the penalties.
struct TokenHistory {
  std::unordered_map<int32_t, int32_t> prompt, output;
  void add_prompt(const std::vector<int32_t>& ids) {
    for (int32_t t : ids) ++prompt[t];
  }
  void add_output(int32_t t) { ++output[t]; }
};

// Picks the next token from `logits` (vocab floats; not modified): after the penalties and the logit bias,
// greedy or from sampling_distribution.
int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& p, SamplingRng& rng,
                     const TokenHistory* history);

// The probability distribution sample_token draws from (after penalties, temperature and the filters),
// for tests: probs[vocab], zero outside the kept set. Requires temperature > 0.
void sampling_distribution(const float* logits, int64_t vocab, const SamplingParams& p,
                           const TokenHistory* history, std::vector<double>* probs);

}  // namespace moert
