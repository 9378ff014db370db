// moert_options: typed key/value settings, validated when set against one table of known keys
// (option_table.inc).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

struct moert_options {
  using Value = std::variant<int64_t, double, std::string, std::vector<std::string>, std::vector<int64_t>>;
  std::map<std::string, Value> values;

  // The value of a key that was set, or null (then the reader keeps the runtime's default, which
  // tests/options checks equal to the table's).
  const int64_t* find_int(const std::string& key) const { return find<int64_t>(key); }
  const double* find_float(const std::string& key) const { return find<double>(key); }
  const std::string* find_string(const std::string& key) const { return find<std::string>(key); }
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;

 private:
  template <typename T>
  const T* find(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : std::get_if<T>(&it->second);
  }
};

namespace moert::capi {

// Where a key is read: each call that takes options reads only its own scope's keys.
enum class OptionScope { kLoad, kGenerate, kCheckpoint, kQuantize };
enum class OptionKind { kInt, kFloat, kString, kStringList, kIntList };

// One line of option_table.inc.
struct OptionSpec {
  const char* key;
  OptionScope scope;
  OptionKind kind;
  const char* dflt;                  // the default as text; "" when there is none
  double min, max;                   // numeric range (inclusive)
  std::vector<std::string> choices;  // string choices (empty = any)
  const char* doc;
};

// The table, in its order.
const std::vector<OptionSpec>& option_specs();
// The key's line, or null.
const OptionSpec* find_option(const std::string& key);
// "a model load option (moert_model_load)", ...: what error messages call a scope.
const char* scope_name(OptionScope scope);

// Throws Error(kInvalidArgument) naming the first key of another scope (which that call would ignore).
void options_require_scope(const moert_options* o, OptionScope scope);
// Validates and stores; throws Error(kInvalidArgument) naming the key.
void options_set(moert_options& o, const std::string& key, std::variant<int64_t, double, std::string> value);
// Appends to a list key; throws Error(kInvalidArgument) naming the key.
void options_add(moert_options& o, const std::string& key, std::variant<int64_t, std::string> value);
}  // namespace moert::capi
