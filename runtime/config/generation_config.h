// generation_config.json: the sampling defaults a checkpoint ships with (DeepSeek-V3: temperature 0.6,
// top_p 0.95), applied to every request that leaves them unset, as transformers and vLLM do.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace moert {

struct GenerationDefaults {
  std::optional<double> temperature, top_p, repetition_penalty;
  std::optional<int64_t> top_k;
  // eos_token_id (one id or a list): they end a sequence too, with config.json's (transformers stops on
  // these; an instruct checkpoint may name its end-of-turn token only here).
  std::vector<int64_t> eos_token_ids;
};

// Parses generation_config.json's text; `source` names it in errors. "do_sample": false (transformers'
// greedy) gives temperature 0. Out-of-range values and ids that are not non-negative integers are
// Error(kFormat) naming the field.
GenerationDefaults parse_generation_defaults(const std::string& json_text, const std::string& source);
// model_dir/generation_config.json when it exists (read as a regular file), else no defaults.
GenerationDefaults load_generation_defaults(const std::string& model_dir);

}  // namespace moert
