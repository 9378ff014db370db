// moert_options: typed key/value settings, validated when set against one table of known keys.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>

struct moert_options {
  std::map<std::string, std::variant<int64_t, double, std::string>> values;

  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_float(const std::string& key, double dflt) const;
  std::string get_string(const std::string& key, const std::string& dflt) const;
};

namespace moert::capi {
// Validates and stores; throws Error(kInvalidArgument) naming the key.
void options_set(moert_options& o, const std::string& key, std::variant<int64_t, double, std::string> value);
}  // namespace moert::capi
