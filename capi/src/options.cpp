#include "options.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "guard.h"
#include "option_values.h"

namespace moert::capi {
namespace {

using Kind = OptionKind;

std::vector<std::string> split_choices(const char* choices) {
  std::vector<std::string> out;
  std::string c = choices;
  for (size_t at = 0; !c.empty() && at <= c.size();) {
    const size_t bar = std::min(c.find('|', at), c.size());
    out.push_back(c.substr(at, bar - at));
    at = bar + 1;
  }
  return out;
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

const OptionSpec& find_spec(const std::string& key) {
  if (const OptionSpec* s = find_option(key)) return *s;
  std::string known;
  for (const OptionSpec& s : option_specs()) known += (known.empty() ? "" : ", ") + std::string(s.key);
  fail(ErrorCode::kInvalidArgument, "unknown option '" + key + "' (known: " + known + ")");
}

}  // namespace

const std::vector<OptionSpec>& option_specs() {
  static const std::vector<OptionSpec> kSpecs = {
#define MOERT_OPTION(key, scope, kind, dflt, min, max, choices, doc) \
  {key, OptionScope::k##scope, OptionKind::k##kind, dflt, min, max, split_choices(choices), doc},
#include "option_table.inc"
#undef MOERT_OPTION
  };
  return kSpecs;
}

const OptionSpec* find_option(const std::string& key) {
  for (const OptionSpec& s : option_specs())
    if (key == s.key) return &s;
  return nullptr;
}

const char* scope_name(OptionScope s) {
  switch (s) {
    case OptionScope::kLoad:
      return "a model load option (moert_model_load)";
    case OptionScope::kGenerate:
      return "a generation option (moert_generate_*)";
    case OptionScope::kCheckpoint:
      return "a checkpoint shape option (moert_checkpoint_write_random)";
    case OptionScope::kQuantize:
      return "a quantisation option (moert_checkpoint_quantize)";
  }
  return "?";
}

void options_require_scope(const moert_options* o, OptionScope scope) {
  if (!o) return;
  for (const auto& [key, value] : o->values) {
    const OptionSpec& spec = find_spec(key);
    if (spec.scope != scope)
      fail(ErrorCode::kInvalidArgument, "option '" + key + "' is " + scope_name(spec.scope) + ", not " +
                                            scope_name(scope) + ": it would be ignored here");
  }
}

void options_add(moert_options& o, const std::string& key, std::variant<int64_t, std::string> value) {
  const OptionSpec& spec = find_spec(key);
  if (spec.kind == Kind::kStringList && std::holds_alternative<std::string>(value)) {
    if (key == "logit_bias") parse_logit_bias(std::get<std::string>(value));  // refused now, not later
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
  const OptionSpec* spec = &find_spec(key);
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
    // An int key may list its values too (quantize.group_size: 32|64|128).
    if (spec->kind == Kind::kInt && !spec->choices.empty()) {
      const std::string v = std::to_string(std::get<int64_t>(value));
      std::string list;
      bool found = false;
      for (const std::string& c : spec->choices) {
        found |= v == c;
        list += (list.empty() ? "" : ", ") + c;
      }
      if (!found)
        fail(ErrorCode::kInvalidArgument, "option '" + key + "' value " + v + " is not one of " + list);
    }
  } else if (!spec->choices.empty()) {
    const std::string& v = std::get<std::string>(value);
    bool found = false;
    std::string list;
    for (const std::string& c : spec->choices) {
      found |= v == c;
      list += (list.empty() ? "\"" : ", \"") + c + "\"";
    }
    if (!found)
      fail(ErrorCode::kInvalidArgument, "option '" + key + "' value \"" + v + "\" is not one of " + list);
  }
  std::visit([&](auto&& v) { o.values[key] = std::move(v); }, std::move(value));
}

}  // namespace moert::capi

std::vector<std::string> moert_options::get_strings(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? std::vector<std::string>{} : std::get<std::vector<std::string>>(it->second);
}
std::vector<int64_t> moert_options::get_ints(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? std::vector<int64_t>{} : std::get<std::vector<int64_t>>(it->second);
}
