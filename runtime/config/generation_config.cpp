#include "config/generation_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_io.h"

namespace moert {

GenerationDefaults parse_generation_defaults(const std::string& text, const std::string& src) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kFormat, src + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) fail(ErrorCode::kFormat, src + ": must be a JSON object");
  GenerationDefaults d;
  // Numbers within [lo, hi], as the C API's generation keys accept them.
  auto number = [&](const char* key, double lo, double hi) -> std::optional<double> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < lo ||
        it->get<double>() > hi)
      fail(ErrorCode::kFormat, src + ": field '" + key + "' has value " + it->dump() + ", outside [" +
                                   std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return it->get<double>();
  };
  d.temperature = number("temperature", 0, 100);
  d.top_p = number("top_p", 1e-9, 1);
  d.repetition_penalty = number("repetition_penalty", 1e-3, 100);
  if (auto k = number("top_k", 0, 1e9)) {
    if (*k != std::floor(*k)) fail(ErrorCode::kFormat, src + ": field 'top_k' must be an integer");
    d.top_k = static_cast<int64_t>(*k);
  }
  if (auto e = j.find("eos_token_id"); e != j.end() && !e->is_null()) {
    const nlohmann::json ids = e->is_array() ? *e : nlohmann::json::array({*e});
    for (const auto& v : ids) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 0x7FFFFFFF)
        fail(ErrorCode::kFormat,
             src + ": field 'eos_token_id' must be a token id or a list of them, got " + e->dump());
      d.eos_token_ids.push_back(v.get<int64_t>());
    }
  }
  auto ds = j.find("do_sample");
  if (ds != j.end() && ds->is_boolean() && !ds->get<bool>()) d.temperature = 0.0;
  return d;
}

GenerationDefaults load_generation_defaults(const std::string& model_dir) {
  const std::string path = model_dir + "/generation_config.json";
  if (!path_exists(path)) return {};
  return parse_generation_defaults(read_regular_file(path), path);
}

}  // namespace moert
