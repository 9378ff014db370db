// Attribute and item access, the Python methods of str, dict and list that chat templates call, the
// operators and iteration.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace moert::tok::jinja {

void check_string_size(size_t bytes) {
  if (bytes > kMaxStringBytes) render_error("a string would be larger than 128 MiB");
}
void check_item_count(size_t items) {
  if (items > kMaxItems) render_error("a list would have more than 1048576 items");
}

std::string undefined_message(const Value& v) {
  return v.str ? *v.str : "a value is undefined";
}

const Value* find_arg(const Args& args, size_t index, const char* name) {
  if (index < args.positional.size()) return &args.positional[index];
  for (const auto& [k, v] : args.keyword)
    if (k == name) return &v;
  return nullptr;
}

namespace {

// Python's str.isspace for the code point at s[i]: its length in bytes, or 0.
size_t space_at(std::string_view s, size_t i) {
  size_t len = 1;
  return py_isspace(utf8_decode_lossy(s, i, &len)) ? len : 0;
}
// The same for the code point that ends at s[e - 1] (not starting before s[b]).
size_t space_before(std::string_view s, size_t b, size_t e) {
  const size_t len = utf8_last_length(s, b, e);
  size_t n = 1;
  return py_isspace(utf8_decode_lossy(s, e - len, &n)) ? len : 0;
}

const std::string& str_arg(const Args& a, size_t i, const char* name, const char* method) {
  const Value* v = find_arg(a, i, name);
  if (!v || !v->is_string()) render_error(std::string(method) + "() needs a string argument '" + name + "'");
  return v->s();
}

int64_t int_arg(const Args& a, size_t i, const char* name, int64_t fallback) {
  const Value* v = find_arg(a, i, name);
  if (!v || v->is_none()) return fallback;
  if (v->kind != Kind::kInt && v->kind != Kind::kBool)
    render_error(std::string("'") + name + "' must be an int");
  return v->kind == Kind::kInt ? v->integer : v->boolean;
}

std::string strip_chars(const std::string& s, const Value* chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (!chars || chars->is_none()) {  // Unicode whitespace, as Python's str.strip()
    if (left)
      for (size_t n; b < e && (n = space_at(s, b)) != 0;) b += n;
    if (right)
      for (size_t n; e > b && (n = space_before(s, b, e)) != 0;) e -= n;
    return s.substr(b, e - b);
  }
  if (!chars->is_string()) render_error("strip arg must be None or str");
  charge_work(4 * chars->s().size());  // the set's table
  const auto set = code_points(chars->s());
  charge_work((1 + s.size() / 16) * (1 + set.size() / 16));
  auto in_set = [&](std::string_view cp) { return std::find(set.begin(), set.end(), cp) != set.end(); };
  if (left)
    while (b < e) {
      size_t len = 1;
      utf8_decode_lossy(s, b, &len);
      if (!in_set(std::string_view(s).substr(b, len))) break;
      b += len;
    }
  if (right)
    while (e > b) {
      const size_t len = utf8_last_length(s, b, e);
      if (!in_set(std::string_view(s).substr(e - len, len))) break;
      e -= len;
    }
  return s.substr(b, e - b);
}

Value split(const std::string& s, const Args& a, bool from_right) {
  const Value* sep = find_arg(a, 0, "sep");
  int64_t maxsplit = int_arg(a, 1, "maxsplit", -1);
  List out;
  charge_work(1 + s.size() / 16);
  if (!sep || sep->is_none()) {  // runs of (Unicode) whitespace, none at either end
    std::vector<std::pair<size_t, size_t>> words;
    for (size_t i = 0; i < s.size();) {
      for (size_t n; i < s.size() && (n = space_at(s, i)) != 0;) i += n;
      if (i >= s.size()) break;
      size_t j = i;
      while (j < s.size() && space_at(s, j) == 0) ++j;
      words.emplace_back(i, j);
      check_item_count(words.size());
      i = j;
    }
    if (maxsplit >= 0 && words.size() > static_cast<size_t>(maxsplit) + 1) {
      // The last piece (from the right: the first) is the rest of the text, its far-side whitespace kept.
      const size_t keep = static_cast<size_t>(maxsplit);
      if (!from_right) {
        for (size_t k = 0; k < keep; ++k)
          out.push_back(Value::from(s.substr(words[k].first, words[k].second - words[k].first)));
        out.push_back(Value::from(s.substr(words[keep].first)));
      } else {
        const size_t first = words.size() - keep;
        out.push_back(Value::from(s.substr(0, words[first - 1].second)));
        for (size_t k = first; k < words.size(); ++k)
          out.push_back(Value::from(s.substr(words[k].first, words[k].second - words[k].first)));
      }
    } else {
      for (const auto& [b, e] : words) out.push_back(Value::from(s.substr(b, e - b)));
    }
    return Value::from(std::move(out));
  }
  if (!sep->is_string()) render_error("split() separator must be a string");
  const std::string& d = sep->s();
  if (d.empty()) render_error("split(): empty separator");
  charge_work((1 + s.size() / 16) * (1 + d.size() / 16));
  std::vector<std::string> parts;
  if (!from_right) {
    size_t i = 0;
    for (;;) {
      const size_t j = maxsplit != 0 ? s.find(d, i) : std::string::npos;
      if (j == std::string::npos) {
        parts.push_back(s.substr(i));
        break;
      }
      parts.push_back(s.substr(i, j - i));
      i = j + d.size();
      if (maxsplit > 0) --maxsplit;
      check_item_count(parts.size());
    }
  } else {
    size_t e = s.size();
    for (;;) {
      const size_t j = maxsplit != 0 && e >= d.size() ? s.rfind(d, e - d.size()) : std::string::npos;
      if (j == std::string::npos) {
        parts.push_back(s.substr(0, e));
        break;
      }
      parts.push_back(s.substr(j + d.size(), e - j - d.size()));
      e = j;
      if (maxsplit > 0) --maxsplit;
      check_item_count(parts.size());
    }
    std::reverse(parts.begin(), parts.end());
  }
  for (auto& p : parts) out.push_back(Value::from(std::move(p)));
  return Value::from(std::move(out));
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  charge_work((1 + s.size() / 16) * (1 + from.size() / 16));
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every character, and at both ends
    const auto cps = code_points(s);
    int64_t n = 0;
    for (const auto& cp : cps) {
      if (count < 0 || n++ < count) out += to;
      out += cp;
      check_string_size(out.size());
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t i = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    const size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += to;
    check_string_size(out.size());
    i = j + from.size();
  }
  out.append(s, i, std::string::npos);
  check_string_size(out.size());
  return out;
}

}  // namespace

std::string ascii_case(std::string s, bool upper) {
  for (char& c : s)
    if (upper ? (c >= 'a' && c <= 'z') : (c >= 'A' && c <= 'Z')) c = static_cast<char>(c ^ 0x20);
  return s;
}

namespace {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool affix_matches(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& a) {
    if (!a.is_string())
      render_error(std::string(prefix ? "startswith" : "endswith") + "() needs a string or tuple");
    const std::string& x = a.s();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_list()) {
    for (const Value& a : *affix.list)
      if (one(a)) return true;
    return false;
  }
  return one(affix);
}

Value string_method(const Value& self, const std::string& name, const Args& a) {
  const std::string& s = self.s();
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return Value::from(strip_chars(s, find_arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
  if (name == "split" || name == "rsplit") return split(s, a, name == "rsplit");
  if (name == "splitlines") {  // Python's line boundaries: \n \r \r\n \v \f \x1c-\x1e U+0085 U+2028 U+2029
    charge_work(1 + s.size() / 16);
    List out;
    size_t i = 0, line = 0;
    while (i < s.size()) {
      size_t len = 1;
      const uint32_t c = utf8_decode_lossy(s, i, &len);
      if (c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
          c == 0x2028 || c == 0x2029) {
        out.push_back(Value::from(s.substr(line, i - line)));
        check_item_count(out.size());
        if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++len;
        line = i + len;
      }
      i += len;
    }
    if (line < s.size()) out.push_back(Value::from(s.substr(line)));
    return Value::from(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    const Value* affix = find_arg(a, 0, "prefix");
    if (!affix) render_error(name + "() takes an argument");
    return Value::from(affix_matches(s, *affix, name == "startswith"));
  }
  if (name == "replace")
    return Value::from(replace_all(s, str_arg(a, 0, "old", "replace"), str_arg(a, 1, "new", "replace"),
                                   int_arg(a, 2, "count", -1)));
  if (name == "upper" || name == "lower") return Value::from(ascii_case(s, name == "upper"));
  if (name == "title" || name == "capitalize") {
    std::string out = ascii_case(s, false);
    bool start = true;
    for (char& c : out) {
      if (start && c >= 'a' && c <= 'z') c = static_cast<char>(c ^ 0x20);
      start = name == "title" ? !is_alpha(c) : false;
    }
    return Value::from(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    const std::string& sub = str_arg(a, 0, "sub", name.c_str());
    charge_work((1 + s.size() / 16) * (1 + sub.size() / 16));
    if (name == "count") {
      if (sub.empty()) return Value::from(static_cast<int64_t>(code_point_count(s) + 1));
      int64_t n = 0;
      for (size_t i = s.find(sub); i != std::string::npos; i = s.find(sub, i + sub.size())) ++n;
      return Value::from(n);
    }
    const size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") render_error("substring not found");
      return Value::from(int64_t{-1});
    }
    return Value::from(static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, at))));
  }
  if (name == "join") {
    const Value* items = find_arg(a, 0, "iterable");
    if (!items) render_error("join() takes an argument");
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*items)) {
      if (!v.is_string()) render_error("join(): sequence item is not a str");
      if (!first) out += s;
      out += v.s();
      first = false;
      check_string_size(out.size());
    }
    return Value::from(std::move(out));
  }
  auto all_of = [&](auto pred) {
    if (s.empty()) return Value::from(false);
    for (char c : s)
      if (!pred(c)) return Value::from(false);
    return Value::from(true);
  };
  if (name == "isspace") {
    if (s.empty()) return Value::from(false);
    for (size_t i = 0, n; i < s.size(); i += n)
      if ((n = space_at(s, i)) == 0) return Value::from(false);
    return Value::from(true);
  }
  if (name == "isdigit") return all_of([](char c) { return c >= '0' && c <= '9'; });
  if (name == "isalpha") return all_of(is_alpha);
  if (name == "isalnum") return all_of([](char c) { return is_alpha(c) || (c >= '0' && c <= '9'); });
  if (name == "islower" || name == "isupper") {
    bool cased = false;
    for (char c : s) {
      if (c >= 'a' && c <= 'z') {
        if (name == "isupper") return Value::from(false);
        cased = true;
      } else if (c >= 'A' && c <= 'Z') {
        if (name == "islower") return Value::from(false);
        cased = true;
      }
    }
    return Value::from(cased);
  }
  render_error("'str' object has no method '" + name + "'");
}

bool is_string_method(const std::string& n) {
  static const char* kNames[] = {"strip",      "lstrip",     "rstrip",     "split",   "rsplit",
                                 "splitlines", "startswith", "endswith",   "replace", "upper",
                                 "lower",      "title",      "capitalize", "find",    "rfind",
                                 "index",      "rindex",     "count",      "join",    "isspace",
                                 "isdigit",    "isalpha",    "isalnum",    "islower", "isupper"};
  for (const char* k : kNames)
    if (n == k) return true;
  return false;
}

Value dict_method(const Value& self, const std::string& name, const Args& a) {
  const Dict& d = *self.dict;
  if (name == "items" || name == "keys" || name == "values") {
    List out;
    out.reserve(d.items.size());
    for (const auto& [k, v] : d.items) {
      if (name == "items") {
        out.push_back(Value::from(List{dict_key_value(k), v}, /*tuple=*/true));
      } else {
        out.push_back(name == "keys" ? dict_key_value(k) : v);
      }
    }
    return Value::from(std::move(out));
  }
  if (name == "get") {
    const Value* key = find_arg(a, 0, "key");
    if (!key) render_error("get() takes a key");
    const Value* dflt = find_arg(a, 1, "default");
    if (const Value* v = d.find(dict_key(*key))) return *v;
    return dflt ? *dflt : Value::none();
  }
  render_error("'dict' object has no method '" + name + "'");
}

Value list_method(const Value& self, const std::string& name, const Args& a) {
  const Value* x = find_arg(a, 0, "value");
  if (!x) render_error(name + "() takes an argument");
  int64_t n = 0;
  for (size_t i = 0; i < self.list->size(); ++i) {
    if (!equals((*self.list)[i], *x)) continue;
    if (name == "index") return Value::from(static_cast<int64_t>(i));
    ++n;
  }
  if (name == "index") render_error("list.index(x): x not in list");
  return Value::from(n);
}

Value bound(const Value& self, const std::string& name,
            Value (*method)(const Value&, const std::string&, const Args&)) {
  Value f = Value::function([self, name, method](const Args& a) { return method(self, name, a); });
  // It holds self: nested in a list it nests as deep (the destructor recursion stays bounded).
  if (self.depth + 1 > kMaxNesting) render_error("lists and dicts nested more than 256 deep");
  f.depth = static_cast<uint16_t>(self.depth + 1);
  return f;
}

int64_t normalise_index(int64_t i, size_t n) {
  return i < 0 ? i + static_cast<int64_t>(n) : i;
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) render_error(undefined_message(obj));
  if (!name.empty() && name[0] == '_') return Value::undefined("access to '" + name + "' is not allowed");
  const std::string missing = std::string("'") + type_name(obj) + " object' has no attribute '" + name + "'";
  switch (obj.kind) {
    case Kind::kDict:
      if (name == "items" || name == "keys" || name == "values" || name == "get")
        return bound(obj, name, dict_method);
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined(missing);
    case Kind::kNamespace:
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined(missing);
    case Kind::kString:
      if (is_string_method(name)) return bound(obj, name, string_method);
      return Value::undefined(missing);
    case Kind::kList:
      if (name == "index" || name == "count") return bound(obj, name, list_method);
      if (name == "append" || name == "pop" || name == "insert" || name == "extend" || name == "remove" ||
          name == "sort" || name == "reverse" || name == "clear")
        return Value::function([name](const Args&) -> Value {
          render_error("list." + name + "() is not allowed: the template's values are immutable");
        });
      return Value::undefined(missing);
    default:
      return Value::undefined(missing);
  }
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) render_error(undefined_message(obj));
  if (obj.is_mapping() && (key.is_string() || key.is_number() || key.is_none())) {
    if (const Value* v = obj.dict->find(dict_key(key))) return *v;
    if (obj.kind == Kind::kDict && key.is_string()) return get_attr(obj, key.s());
    return Value::undefined("'" + std::string(type_name(obj)) + " object' has no attribute " + repr(key));
  }
  if ((obj.is_list() || obj.is_string()) && (key.kind == Kind::kInt || key.kind == Kind::kBool)) {
    const int64_t raw = key.kind == Kind::kInt ? key.integer : key.boolean;
    if (obj.is_list()) {
      const int64_t i = normalise_index(raw, obj.list->size());
      if (i < 0 || i >= static_cast<int64_t>(obj.list->size()))
        return Value::undefined(std::string("'") + type_name(obj) + " object' has no element " +
                                std::to_string(raw));
      return (*obj.list)[static_cast<size_t>(i)];
    }
    const std::string& str = obj.s();
    int64_t i = raw;
    if (i < 0) {
      charge_work(1 + str.size() / 4);
      i += static_cast<int64_t>(code_point_count(str));
    }
    if (i >= 0) {
      // Walk to the i-th code point (the walk is charged as it goes).
      size_t at = 0, len = 1;
      for (int64_t k = 0; at < str.size(); ++k, at += len) {
        utf8_decode_lossy(str, at, &len);
        if (k == i) return Value::from(str.substr(at, len));
        if ((k & 15) == 15) charge_work(16);  // a step of the walk costs about a unit
      }
    }
    return Value::undefined("'str object' has no element " + std::to_string(raw));
  }
  if (key.is_string()) return get_attr(obj, key.s());
  return Value::undefined(std::string("'") + type_name(obj) + " object' has no element " + repr(key));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) render_error(undefined_message(obj));
  auto opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (v.kind == Kind::kInt) return v.integer;
    if (v.kind == Kind::kBool) return v.boolean;
    render_error(std::string("slice ") + what + " must be an integer or None");
  };
  const std::optional<int64_t> a = opt(start, "start"), b = opt(stop, "stop"), c = opt(step, "step");
  const int64_t st = c.value_or(1);
  if (st == 0) render_error("slice step cannot be zero");
  std::vector<std::string_view> cps;
  size_t n;
  if (obj.is_list()) {
    n = obj.list->size();
  } else if (obj.is_string()) {
    charge_work(1 + obj.s().size() / 4);  // the code point table
    cps = code_points(obj.s());
    n = cps.size();
  } else {
    render_error(std::string("'") + type_name(obj) + "' object is not subscriptable");
  }
  const auto len = static_cast<int64_t>(n);
  // Python's slice.indices.
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v < 0 ? *v + len : *v;
    if (st > 0) return std::clamp<int64_t>(x, 0, len);
    return std::clamp<int64_t>(x, -1, len - 1);
  };
  const int64_t lo = clamp(a, st > 0 ? 0 : len - 1), hi = clamp(b, st > 0 ? len : -1);
  // How many elements, counted without stepping past the ends (a huge step must not overflow).
  const __int128 span = st > 0 ? static_cast<__int128>(hi) - lo : static_cast<__int128>(lo) - hi;
  const __int128 mag = st > 0 ? static_cast<__int128>(st) : -static_cast<__int128>(st);
  const auto count = static_cast<int64_t>(span <= 0 ? 0 : (span + mag - 1) / mag);
  List items;
  std::string text;
  for (int64_t k = 0; k < count; ++k) {
    const auto i = static_cast<size_t>(lo + static_cast<int64_t>(static_cast<__int128>(k) * st));
    if (obj.is_list()) {
      items.push_back((*obj.list)[i]);
    } else {
      text += cps[i];
    }
  }
  if (obj.is_string()) return Value::from(std::move(text));
  return Value::from(std::move(items), obj.tuple);
}

std::vector<Value> iterate(const Value& v) {
  charge_work(1 + (v.kind == Kind::kList   ? v.list->size()
                   : v.kind == Kind::kDict ? v.dict->items.size()
                                           : 0));
  switch (v.kind) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
      return *v.list;
    case Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& kv : v.dict->items) keys.push_back(dict_key_value(kv.first));
      return keys;
    }
    case Kind::kString: {
      check_item_count(code_point_count(v.s()));
      charge_work(2 * v.s().size());
      std::vector<Value> chars;
      for (const auto& cp : code_points(v.s())) chars.push_back(Value::from(std::string(cp)));
      return chars;
    }
    default:
      render_error(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (!item.is_string())
        render_error(std::string("'in <string>' requires string as left operand, not ") + type_name(item));
      charge_work((1 + container.s().size() / 16) * (1 + item.s().size() / 16));  // find's worst case
      return container.s().find(item.s()) != std::string::npos;
    case Kind::kList:
      charge_work(container.list->size());
      for (const Value& v : *container.list)
        if (equals(v, item)) return true;
      return false;
    case Kind::kDict:
    case Kind::kNamespace:
      return (item.is_string() || item.is_number() || item.is_none()) &&
             container.dict->find(dict_key(item)) != nullptr;
    default:
      render_error(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

namespace {

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) render_error(undefined_message(a));
  if (b.is_undefined()) render_error(undefined_message(b));
  render_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) +
               "'");
}

int64_t as_int(const Value& v) {
  return v.kind == Kind::kInt ? v.integer : v.boolean;
}

Value repeat(const Value& seq, int64_t times) {
  const size_t n = times > 0 ? static_cast<size_t>(times) : 0;
  // Sized and charged before it is built.
  if (seq.is_string()) {
    if (n && seq.s().size() > kMaxStringBytes / n) check_string_size(kMaxStringBytes + 1);
    charge_work(seq.s().size() * n / 16);
    const size_t total = seq.s().size() * n;
    std::string out;
    out.reserve(total);
    if (total == 0) return Value::from(std::string());
    out = seq.s();
    while (out.size() * 2 <= total) out += out;  // doubling: a few copies, not n appends
    out.append(out, 0, total - out.size());
    return Value::from(std::move(out));
  }
  if (n && seq.list->size() > kMaxItems / n) check_item_count(kMaxItems + 1);
  charge_work(seq.list->size() * n);
  List out;
  out.reserve(seq.list->size() * n);
  for (size_t i = 0; i < n; ++i) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return Value::from(std::move(out), seq.tuple);
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string out = to_str(a);
    out += to_str(b);
    check_string_size(out.size());
    return Value::from(std::move(out));
  }
  const bool ints =
      (a.kind == Kind::kInt || a.kind == Kind::kBool) && (b.kind == Kind::kInt || b.kind == Kind::kBool);
  const bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(as_int(a), as_int(b), &r)) render_error("integer overflow");
      return Value::from(r);
    }
    if (nums) return Value::from(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      check_string_size(a.s().size() + b.s().size());
      return Value::from(a.s() + b.s());
    }
    if (a.is_list() && b.is_list() && a.tuple == b.tuple) {
      check_item_count(a.list->size() + b.list->size());
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::from(std::move(out), a.tuple);
    }
    bad_operands(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(as_int(a), as_int(b), &r)) render_error("integer overflow");
      return Value::from(r);
    }
    if (nums) return Value::from(a.as_double() * b.as_double());
    if ((a.is_string() || a.is_list()) && (b.kind == Kind::kInt || b.kind == Kind::kBool))
      return repeat(a, as_int(b));
    if ((b.is_string() || b.is_list()) && (a.kind == Kind::kInt || a.kind == Kind::kBool))
      return repeat(b, as_int(a));
    bad_operands(op, a, b);
  }
  if (!nums) bad_operands(op, a, b);
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(as_int(a), as_int(b), &r)) render_error("integer overflow");
      return Value::from(r);
    }
    return Value::from(a.as_double() - b.as_double());
  }
  if (op == "/") {
    if (b.as_double() == 0) render_error("division by zero");
    return Value::from(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (b.as_double() == 0)
      render_error(op == "%" ? "integer modulo by zero" : "integer division or modulo by zero");
    if (ints) {
      const int64_t x = as_int(a), y = as_int(b);
      if (x == std::numeric_limits<int64_t>::min() && y == -1) render_error("integer overflow");
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors
        --q;
        r += y;
      }
      return Value::from(op == "//" ? q : r);
    }
    const double x = a.as_double(), y = b.as_double();
    if (op == "//") return Value::from(std::floor(x / y));
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value::from(r);
  }
  if (op == "**") {
    if (ints && as_int(b) >= 0) {
      int64_t r = 1, base = as_int(a);
      for (int64_t e = as_int(b); e > 0;) {  // by squaring: a huge exponent of 0, 1 or -1 stays quick
        if ((e & 1) && __builtin_mul_overflow(r, base, &r)) render_error("integer overflow");
        e >>= 1;
        if (e && __builtin_mul_overflow(base, base, &base)) render_error("integer overflow");
      }
      return Value::from(r);
    }
    return Value::from(std::pow(a.as_double(), b.as_double()));
  }
  render_error("unknown operator " + op);
}

Value negate(const Value& v) {
  if (v.kind == Kind::kFloat) return Value::from(-v.number);
  if (v.kind == Kind::kInt || v.kind == Kind::kBool) {
    if (as_int(v) == std::numeric_limits<int64_t>::min()) render_error("integer overflow");
    return Value::from(-as_int(v));
  }
  if (v.is_undefined()) render_error(undefined_message(v));
  render_error(std::string("bad operand type for unary -: '") + type_name(v) + "'");
}

}  // namespace moert::tok::jinja
