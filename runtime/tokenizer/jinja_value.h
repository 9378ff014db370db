// The values of moert's jinja engine (jinja.h), with Python's semantics where chat templates see them:
// truthiness, equality and ordering, str() and repr() of numbers, strings, lists and dicts, and jinja2's
// Undefined (prints as nothing, is false, iterates as empty, and raises on attribute access or arithmetic).
// Lists and dicts are shared and immutable, as in HF's ImmutableSandboxedEnvironment; a namespace() is the
// one mutable object.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moert::tok::jinja {

struct Value;
using List = std::vector<Value>;
struct Dict;

// Positional and keyword arguments of a call, a filter or a test.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(const Args&)>;

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };

struct Value {
  Kind kind = Kind::kUndefined;
  bool boolean = false;
  bool tuple = false;  // a kList written as a tuple: only its repr differs
  uint16_t depth = 0;  // containers nested in a kList or kDict, itself included (a namespace counts 1)
  int64_t integer = 0;
  double number = 0;
  std::shared_ptr<const std::string> str;  // kString; kUndefined: the name that was undefined (may be null)
  std::shared_ptr<const List> list;
  std::shared_ptr<Dict> dict;  // kDict (never modified once built) and kNamespace
  std::shared_ptr<const Function> fn;

  static Value undefined(std::string name = {});
  static Value none();
  static Value from(bool b);
  static Value from(int64_t i);
  static Value from(double d);
  static Value from(std::string s);
  static Value from(List l, bool tuple = false);
  static Value from(Dict d);
  static Value name_space(Dict d);
  static Value function(Function f);
  static Value from_json(const nlohmann::ordered_json& j);  // objects keep their key order
  // JSON text straight to a Value (objects keep their key order; a repeated key keeps its first place and
  // its last value, as Python's json.loads). Throws TemplateError for bad JSON or nesting beyond
  // kMaxNesting.
  static Value parse_json(const std::string& text);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_list() const { return kind == Kind::kList; }
  bool is_mapping() const { return kind == Kind::kDict || kind == Kind::kNamespace; }
  const std::string& s() const { return *str; }
  double as_double() const;  // for a number (a bool is 0 or 1, as in Python)

 private:
  static Value from_json(const nlohmann::ordered_json& j, int depth);
};

// The largest string a render makes (output included).
constexpr size_t kMaxStringBytes = size_t{128} << 20;

// Lists and dicts nest at most this deep (deeper is a template error), so that destroying or printing one
// never recurses without bound.
constexpr int kMaxNesting = 256;

// Insertion-ordered, string-keyed (JSON's objects and jinja's dict literals).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;  // add only with set (it keeps index)
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);  // a key already there keeps its place (as in Python)
  void clear();

 private:
  std::unordered_map<std::string, size_t> index_;  // key -> position, once the dict has 8 keys
};

// A dict key as a Dict stores it: a string as itself, any other key (a number, None) as "\x01" and a tag,
// so that keys Python takes as equal (1, 1.0 and True) store alike (a bool key prints as 1, not True); a
// string that starts with "\x01" is escaped. Throws for what Python cannot hash (lists, dicts) and for tuples
// (not supported here).
std::string dict_key(const Value& key);
// The key a stored key stands for.
Value dict_key_value(const std::string& stored);

// Python's bool(v).
bool truthy(const Value& v);
// Python's str(v) (what {{ v }} prints; Undefined prints as nothing).
std::string to_str(const Value& v);
// Python's repr(v).
std::string repr(const Value& v);
// The Python type name, for error messages.
const char* type_name(const Value& v);
// Python's ==.
bool equals(const Value& a, const Value& b);
// Python's <; throws the template error for values Python cannot order.
bool less(const Value& a, const Value& b);

// json.dumps(v, ensure_ascii=False, indent=indent, separators=(item_sep, key_sep), sort_keys=sort_keys),
// HF's tojson. indent: nullptr for none. Throws for what JSON cannot hold (Undefined, a function).
std::string to_json(const Value& v, const std::string* indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys);

// Python's repr of a float (shortest round trip: 1.0, 0.1, 1e-05, 1e+16, inf, nan).
std::string float_repr(double d);

// Number of code points of a UTF-8 string (its len() in Python).
size_t code_point_count(std::string_view s);
// The code points of s, each as its UTF-8 bytes.
std::vector<std::string_view> code_points(std::string_view s);

// What jinja raises while rendering; the renderer turns it into Error(kInvalidArgument) with the line of the
// template it came from.
struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void render_error(const std::string& message);

// The work one render may do, in units of about 20 ns (an element copied or compared, 16 bytes of a
// string made or searched, a list item made is two): a render past kMaxWork is a template error, so no
// template, however written, runs for more than a second or so (a few under a sanitizer). Counted on the
// rendering thread while a WorkBudget is alive.
constexpr size_t kMaxWork = size_t{1} << 25;
void charge_work(size_t units);
class WorkBudget {
 public:
  WorkBudget();
  ~WorkBudget();
  WorkBudget(const WorkBudget&) = delete;
  WorkBudget& operator=(const WorkBudget&) = delete;

 private:
  size_t used_ = 0;
  WorkBudget* outer_;
  friend void charge_work(size_t units);
};

}  // namespace moert::tok::jinja
