// moert_options: typed key/value settings, validated when set against one table of known keys.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>

#include <vector>

struct moert_options {
  using Value = std::variant<int64_t, double, std::string, std::vector<std::string>, std::vector<int64_t>>;
  std::map<std::string, Value> values;

  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_float(const std::string& key, double dflt) const;
  std::string get_string(const std::string& key, const std::string& dflt) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
};

namespace moert::capi {
// Where a key is read: each call that takes options reads only its own scope's keys.
enum class OptionScope { kLoad, kGeneration, kShape, kQuantize };
// Throws Error(kInvalidArgument) naming the first key of another scope (which that call would ignore).
void options_require_scope(const moert_options* o, OptionScope scope);
// Validates and stores; throws Error(kInvalidArgument) naming the key.
void options_set(moert_options& o, const std::string& key, std::variant<int64_t, double, std::string> value);
// Appends to a list key; throws Error(kInvalidArgument) naming the key.
void options_add(moert_options& o, const std::string& key, std::variant<int64_t, std::string> value);
}  // namespace moert::capi
