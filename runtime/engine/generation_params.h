// What a generation request asks for beyond its prompt: sampling, the token budget and the stops.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/sampling.h"

namespace moert {

struct GenerationParams {
  SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  // -1: no log probabilities; 0: each generated token's; N: also the N most likely tokens at each step.
  int32_t logprobs = -1;
  bool operator==(const GenerationParams&) const = default;
};

}  // namespace moert
