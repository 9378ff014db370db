// generation_config.json: the sampling defaults a checkpoint ships with (DeepSeek-V3: temperature 0.6,
// top_p 0.95), applied to every request that leaves them unset, as transformers and vLLM do.
#pragma once
#include <optional>
#include <string>

namespace moert {

struct GenerationDefaults {
  std::optional<double> temperature, top_p, repetition_penalty;
  std::optional<int64_t> top_k;
};

// Parses generation_config.json's text; `source` names it in errors. "do_sample": false (transformers'
// greedy) gives temperature 0. Out-of-range values are Error(kFormat) naming the field.
GenerationDefaults parse_generation_defaults(const std::string& json_text, const std::string& source);
// model_dir/generation_config.json when it exists (read as a regular file), else no defaults.
GenerationDefaults load_generation_defaults(const std::string& model_dir);

}  // namespace moert
