#include "options.h"

#include <cmath>
#include <functional>
#include <vector>

#include "guard.h"

namespace moert::capi {
namespace {

enum class Kind { kInt, kFloat, kString, kStringList, kIntList };

struct KeySpec {
  const char* key;
  OptionScope scope;
  Kind kind;
  double min, max;                   // numeric range (inclusive)
  std::vector<const char*> choices;  // string choices (empty = any)
};

const std::vector<KeySpec>& specs() {
  static const std::vector<KeySpec> kSpecs = {
      // model load
      {"threads", OptionScope::kLoad, Kind::kInt, 0, 4096, {}},
      {"device", OptionScope::kLoad, Kind::kString, 0, 0, {"cpu", "cuda"}},
      {"activations", OptionScope::kLoad, Kind::kString, 0, 0, {"fp32", "fp8"}},
      {"kv_cache_bytes", OptionScope::kLoad, Kind::kInt, 1 << 16, 9.0e18, {}},
      {"max_batch", OptionScope::kLoad, Kind::kInt, 1, 4096, {}},
      {"attention", OptionScope::kLoad, Kind::kString, 0, 0, {"auto", "expanded", "absorbed"}},
      {"mtp", OptionScope::kLoad, Kind::kInt, 0, 1, {}},
      {"batch_invariant", OptionScope::kLoad, Kind::kInt, 0, 1, {}},
      {"cuda_graphs", OptionScope::kLoad, Kind::kInt, 0, 1, {}},
      {"kv_cache_dtype", OptionScope::kLoad, Kind::kString, 0, 0, {"auto", "fp32", "bf16"}},
      {"ep_size", OptionScope::kLoad, Kind::kInt, 1, 1 << 16, {}},
      {"ep_transport", OptionScope::kLoad, Kind::kString, 0, 0, {"none", "inproc", "mpi", "nccl"}},
      {"ep_redundant", OptionScope::kLoad, Kind::kInt, 0, 1 << 14, {}},
      {"eplb_interval", OptionScope::kLoad, Kind::kInt, 0, 1e12, {}},
      {"ep_overlap", OptionScope::kLoad, Kind::kInt, -1, 1, {}},
      {"ep_max_ranks_per_token", OptionScope::kLoad, Kind::kInt, 0, 1 << 16, {}},
      {"ep_timeout_ms", OptionScope::kLoad, Kind::kInt, 1, 1e9, {}},
      {"check_weights", OptionScope::kLoad, Kind::kInt, 0, 1, {}},
      {"prefix_cache", OptionScope::kLoad, Kind::kInt, 0, 1, {}},
      {"speculative", OptionScope::kLoad, Kind::kString, 0, 0, {"auto", "off"}},
      {"draft_tokens", OptionScope::kLoad, Kind::kInt, 1, 3, {}},
      // generation
      {"max_tokens", OptionScope::kGeneration, Kind::kInt, 0, 1e9, {}},
      {"temperature", OptionScope::kGeneration, Kind::kFloat, 0, 100, {}},
      {"top_k", OptionScope::kGeneration, Kind::kInt, 0, 1e9, {}},
      {"top_p", OptionScope::kGeneration, Kind::kFloat, 1e-9, 1, {}},
      {"min_p", OptionScope::kGeneration, Kind::kFloat, 0, 1, {}},
      {"repetition_penalty", OptionScope::kGeneration, Kind::kFloat, 1e-3, 100, {}},
      {"presence_penalty", OptionScope::kGeneration, Kind::kFloat, -100, 100, {}},
      {"frequency_penalty", OptionScope::kGeneration, Kind::kFloat, -100, 100, {}},
      {"seed", OptionScope::kGeneration, Kind::kInt, 0, 9.2e18, {}},
      {"stop", OptionScope::kGeneration, Kind::kStringList, 0, 0, {}},
      {"stop_token_ids", OptionScope::kGeneration, Kind::kIntList, 0, 2147483647.0, {}},
      {"ignore_eos", OptionScope::kGeneration, Kind::kInt, 0, 1, {}},
      {"add_generation_prompt", OptionScope::kGeneration, Kind::kInt, 0, 1, {}},
      // random checkpoint shape (moert_checkpoint_write_random)
      {"model.vocab", OptionScope::kShape, Kind::kInt, 2, 1 << 24, {}},
      {"model.hidden", OptionScope::kShape, Kind::kInt, 16, 1 << 16, {}},
      {"model.intermediate", OptionScope::kShape, Kind::kInt, 1, 1 << 20, {}},
      {"model.moe_intermediate", OptionScope::kShape, Kind::kInt, 1, 1 << 20, {}},
      {"model.layers", OptionScope::kShape, Kind::kInt, 1, 1024, {}},
      {"model.dense_layers", OptionScope::kShape, Kind::kInt, 0, 1024, {}},
      {"model.heads", OptionScope::kShape, Kind::kInt, 1, 1024, {}},
      {"model.q_lora", OptionScope::kShape, Kind::kInt, 0, 1 << 16, {}},
      {"model.kv_lora", OptionScope::kShape, Kind::kInt, 1, 1 << 16, {}},
      {"model.experts", OptionScope::kShape, Kind::kInt, 0, 1 << 14, {}},
      {"model.top_k", OptionScope::kShape, Kind::kInt, 1, 1 << 14, {}},
      {"model.groups", OptionScope::kShape, Kind::kInt, 1, 1 << 14, {}},
      {"model.topk_groups", OptionScope::kShape, Kind::kInt, 1, 1 << 14, {}},
      {"model.shared", OptionScope::kShape, Kind::kInt, 0, 64, {}},
      {"model.mtp", OptionScope::kShape, Kind::kInt, 0, 8, {}},
      {"model.fp8", OptionScope::kShape, Kind::kInt, 0, 1, {}},
      {"model.seed", OptionScope::kShape, Kind::kInt, 0, 9.2e18, {}},
      // checkpoint quantisation (moert_checkpoint_quantize)
      {"quantize.experts", OptionScope::kQuantize, Kind::kString, 0, 0, {"q4"}},
      {"quantize.group_size", OptionScope::kQuantize, Kind::kInt, 32, 128, {}},
      {"quantize.threads", OptionScope::kQuantize, Kind::kInt, 0, 4096, {}},
  };
  return kSpecs;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kInt:
      return "an integer";
    case Kind::kFloat:
      return "a number";
    case Kind::kString:
      return "a string";
    case Kind::kStringList:
      return "a list of strings (moert_options_add_string)";
    case Kind::kIntList:
      return "a list of integers (moert_options_add_int)";
  }
  return "?";
}

const KeySpec& find_spec(const std::string& key) {
  for (const KeySpec& s : specs())
    if (key == s.key) return s;
  std::string known;
  for (const KeySpec& s : specs()) known += (known.empty() ? "" : ", ") + std::string(s.key);
  fail(ErrorCode::kInvalidArgument, "unknown option '" + key + "' (known: " + known + ")");
}

const char* scope_name(OptionScope s) {
  switch (s) {
    case OptionScope::kLoad:
      return "a model load option (moert_model_load)";
    case OptionScope::kGeneration:
      return "a generation option (moert_generate_*)";
    case OptionScope::kShape:
      return "a checkpoint shape option (moert_checkpoint_write_random)";
    case OptionScope::kQuantize:
      return "a quantisation option (moert_checkpoint_quantize)";
  }
  return "?";
}

}  // namespace

void options_require_scope(const moert_options* o, OptionScope scope) {
  if (!o) return;
  for (const auto& [key, value] : o->values) {
    const KeySpec& spec = find_spec(key);
    if (spec.scope != scope)
      fail(ErrorCode::kInvalidArgument, "option '" + key + "' is " + scope_name(spec.scope) + ", not " +
                                            scope_name(scope) + ": it would be ignored here");
  }
}

void options_add(moert_options& o, const std::string& key, std::variant<int64_t, std::string> value) {
  const KeySpec& spec = find_spec(key);
  if (spec.kind == Kind::kStringList && std::holds_alternative<std::string>(value)) {
    auto it = o.values.try_emplace(key, std::vector<std::string>{}).first;
    std::get<std::vector<std::string>>(it->second).push_back(std::get<std::string>(value));
  } else if (spec.kind == Kind::kIntList && std::holds_alternative<int64_t>(value)) {
    const int64_t v = std::get<int64_t>(value);
    if (v < spec.min || v > spec.max)
      fail(ErrorCode::kInvalidArgument,
           "option '" + key + "' value " + std::to_string(v) + " is out of range");
    auto it = o.values.try_emplace(key, std::vector<int64_t>{}).first;
    std::get<std::vector<int64_t>>(it->second).push_back(v);
  } else {
    fail(ErrorCode::kInvalidArgument, "option '" + key + "' takes " + kind_name(spec.kind));
  }
}

void options_set(moert_options& o, const std::string& key, std::variant<int64_t, double, std::string> value) {
  const KeySpec* spec = &find_spec(key);
  // An integer is accepted for a float key.
  if (spec->kind == Kind::kFloat && std::holds_alternative<int64_t>(value))
    value = static_cast<double>(std::get<int64_t>(value));
  const bool ok = (spec->kind == Kind::kInt && std::holds_alternative<int64_t>(value)) ||
                  (spec->kind == Kind::kFloat && std::holds_alternative<double>(value)) ||
                  (spec->kind == Kind::kString && std::holds_alternative<std::string>(value));
  if (!ok) fail(ErrorCode::kInvalidArgument, "option '" + key + "' takes " + kind_name(spec->kind));
  if (spec->kind != Kind::kString) {
    const double v =
        spec->kind == Kind::kInt ? static_cast<double>(std::get<int64_t>(value)) : std::get<double>(value);
    if (!std::isfinite(v) || v < spec->min || v > spec->max)
      fail(ErrorCode::kInvalidArgument,
           "option '" + key + "' value " +
               (spec->kind == Kind::kInt ? std::to_string(std::get<int64_t>(value))
                                         : std::to_string(std::get<double>(value))) +
               " is out of range [" + std::to_string(spec->min) + ", " + std::to_string(spec->max) + "]");
  } else if (!spec->choices.empty()) {
    const std::string& v = std::get<std::string>(value);
    bool found = false;
    std::string list;
    for (const char* c : spec->choices) {
      found |= v == c;
      list += (list.empty() ? "\"" : ", \"") + std::string(c) + "\"";
    }
    if (!found)
      fail(ErrorCode::kInvalidArgument, "option '" + key + "' value \"" + v + "\" is not one of " + list);
  }
  std::visit([&](auto&& v) { o.values[key] = std::move(v); }, std::move(value));
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
std::vector<std::string> moert_options::get_strings(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? std::vector<std::string>{} : std::get<std::vector<std::string>>(it->second);
}
std::vector<int64_t> moert_options::get_ints(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? std::vector<int64_t>{} : std::get<std::vector<int64_t>>(it->second);
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

MOERT_API void moert_options_free(moert_options* options) {
  delete options;
}

MOERT_API moert_status moert_options_set_int(moert_options* o, const char* key, int64_t value) {
  return guarded([&] { moert::capi::options_set(*require(o, "options"), require(key, "key"), value); });
}
MOERT_API moert_status moert_options_set_float(moert_options* o, const char* key, double value) {
  return guarded([&] { moert::capi::options_set(*require(o, "options"), require(key, "key"), value); });
}
MOERT_API moert_status moert_options_set_string(moert_options* o, const char* key, const char* value) {
  return guarded([&] {
    moert::capi::options_set(*require(o, "options"), require(key, "key"),
                             std::string(require(value, "value")));
  });
}

MOERT_API moert_status moert_options_add_string(moert_options* o, const char* key, const char* value) {
  return guarded([&] {
    moert::capi::options_add(*require(o, "options"), require(key, "key"),
                             std::string(require(value, "value")));
  });
}
MOERT_API moert_status moert_options_add_int(moert_options* o, const char* key, int64_t value) {
  return guarded([&] { moert::capi::options_add(*require(o, "options"), require(key, "key"), value); });
}

}  // extern "C"
