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
  bool operator==(const GenerationParams&) const = default;
};

}  // namespace moert
