#include "options.h"

#include <cmath>
#include <functional>
#include <vector>

#include "guard.h"

namespace moert::capi {
namespace {

enum class Kind { kInt, kFloat, kString };

struct KeySpec {
  const char* key;
  Kind kind;
  double min, max;                      // numeric range (inclusive)
  std::vector<const char*> choices;     // string choices (empty = any)
};

const std::vector<KeySpec>& specs() {
  static const std::vector<KeySpec> kSpecs = {
      // model load
      {"threads", Kind::kInt, 0, 4096, {}},
      {"device", Kind::kString, 0, 0, {"cpu", "cuda"}},
      {"activations", Kind::kString, 0, 0, {"fp32", "fp8"}},
      {"kv_cache_bytes", Kind::kInt, 1 << 16, 9.0e18, {}},
      {"max_batch", Kind::kInt, 1, 4096, {}},
      {"attention", Kind::kString, 0, 0, {"auto", "expanded", "absorbed"}},
      {"mtp", Kind::kInt, 0, 1, {}},
  };
  return kSpecs;
}

const char* kind_name(Kind k) { return k == Kind::kInt ? "an integer" : k == Kind::kFloat ? "a number" : "a string"; }

}  // namespace

void options_set(moert_options& o, const std::string& key, std::variant<int64_t, double, std::string> value) {
  const KeySpec* spec = nullptr;
  for (const KeySpec& s : specs())
    if (key == s.key) spec = &s;
  if (!spec) {
    std::string known;
    for (const KeySpec& s : specs()) known += (known.empty() ? "" : ", ") + std::string(s.key);
    fail(ErrorCode::kInvalidArgument, "unknown option '" + key + "' (known: " + known + ")");
  }
  // An integer is accepted for a float key.
  if (spec->kind == Kind::kFloat && std::holds_alternative<int64_t>(value))
    value = static_cast<double>(std::get<int64_t>(value));
  const bool ok = (spec->kind == Kind::kInt && std::holds_alternative<int64_t>(value)) ||
                  (spec->kind == Kind::kFloat && std::holds_alternative<double>(value)) ||
                  (spec->kind == Kind::kString && std::holds_alternative<std::string>(value));
  if (!ok) fail(ErrorCode::kInvalidArgument, "option '" + key + "' takes " + kind_name(spec->kind));
  if (spec->kind != Kind::kString) {
    const double v = spec->kind == Kind::kInt ? static_cast<double>(std::get<int64_t>(value)) : std::get<double>(value);
    if (!std::isfinite(v) || v < spec->min || v > spec->max)
      fail(ErrorCode::kInvalidArgument, "option '" + key + "' value " +
                                            (spec->kind == Kind::kInt ? std::to_string(std::get<int64_t>(value))
                                                                      : std::to_string(std::get<double>(value))) +
                                            " is out of range [" + std::to_string(spec->min) + ", " +
                                            std::to_string(spec->max) + "]");
  } else if (!spec->choices.empty()) {
    const std::string& v = std::get<std::string>(value);
    bool found = false;
    std::string list;
    for (const char* c : spec->choices) {
      found |= v == c;
      list += (list.empty() ? "\"" : ", \"") + std::string(c) + "\"";
    }
    if (!found) fail(ErrorCode::kInvalidArgument, "option '" + key + "' value \"" + v + "\" is not one of " + list);
  }
  o.values[key] = std::move(value);
}

}  // namespace moert::capi

int64_t moert_options::get_int(const std::string& key, int64_t dflt) const {
  auto it = values.find(key);
  return it == values.end() ? dflt : std::get<int64_t>(it->second);
}
double moert_options::get_float(const std::string& key, double dflt) const {
  auto it = values.find(key);
  return it == values.end() ? dflt : std::get<double>(it->second);
}
std::string moert_options::get_string(const std::string& key, const std::string& dflt) const {
  auto it = values.find(key);
  return it == values.end() ? dflt : std::get<std::string>(it->second);
}

using moert::capi::guarded;
using moert::capi::require;

extern "C" {

MOERT_API moert_status moert_options_create(moert_options** out) {
  return guarded([&] {
    require(out, "out");
    *out = new moert_options();
  });
}

MOERT_API void moert_options_free(moert_options* options) { delete options; }

MOERT_API moert_status moert_options_set_int(moert_options* o, const char* key, int64_t value) {
  return guarded([&] { moert::capi::options_set(*require(o, "options"), require(key, "key"), value); });
}
MOERT_API moert_status moert_options_set_float(moert_options* o, const char* key, double value) {
  return guarded([&] { moert::capi::options_set(*require(o, "options"), require(key, "key"), value); });
}
MOERT_API moert_status moert_options_set_string(moert_options* o, const char* key, const char* value) {
  return guarded([&] {
    moert::capi::options_set(*require(o, "options"), require(key, "key"), std::string(require(value, "value")));
  });
}

}  // extern "C"
