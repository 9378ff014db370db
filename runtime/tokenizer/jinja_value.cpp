#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"

namespace moert::tok::jinja {

void render_error(const std::string& message) {
  throw TemplateError(message);
}

namespace {
thread_local WorkBudget* current_budget = nullptr;
}  // namespace

WorkBudget::WorkBudget() : outer_(current_budget) {
  current_budget = this;
}
WorkBudget::~WorkBudget() {
  current_budget = outer_;
}

void charge_work(size_t units) {
  WorkBudget* b = current_budget;
  if (!b) return;
  b->used_ += units;
  if (b->used_ > kMaxWork) render_error("the template does too much work (more than 33554432 units)");
}

Value Value::undefined(std::string name) {
  Value v;
  if (!name.empty()) v.str = std::make_shared<const std::string>(std::move(name));
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::kNone;
  return v;
}
Value Value::from(bool b) {
  Value v;
  v.kind = Kind::kBool;
  v.boolean = b;
  return v;
}
Value Value::from(int64_t i) {
  Value v;
  v.kind = Kind::kInt;
  v.integer = i;
  return v;
}
Value Value::from(double d) {
  Value v;
  v.kind = Kind::kFloat;
  v.number = d;
  return v;
}
Value Value::from(std::string s) {
  Value v;
  v.kind = Kind::kString;
  charge_work(1 + s.size() / 16);
  v.str = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::from(List l, bool tuple) {
  Value v;
  v.kind = Kind::kList;
  v.tuple = tuple;
  charge_work(1 + 2 * l.size());
  int depth = 0;
  for (const Value& e : l) depth = std::max<int>(depth, e.depth);
  if (depth + 1 > kMaxNesting) render_error("lists and dicts nested more than 256 deep");
  v.depth = static_cast<uint16_t>(depth + 1);
  v.list = std::make_shared<const List>(std::move(l));
  return v;
}
Value Value::from(Dict d) {
  Value v;
  v.kind = Kind::kDict;
  charge_work(1 + 2 * d.items.size());
  int depth = 0;
  for (const auto& kv : d.items) depth = std::max<int>(depth, kv.second.depth);
  if (depth + 1 > kMaxNesting) render_error("lists and dicts nested more than 256 deep");
  v.depth = static_cast<uint16_t>(depth + 1);
  v.dict = std::make_shared<Dict>(std::move(d));
  return v;
}
Value Value::name_space(Dict d) {
  Value v = from(std::move(d));
  v.kind = Kind::kNamespace;
  v.depth = 1;  // it changes as the template sets attributes: what holds it sees 1 (the renderer tears
                // every namespace down after a render, so none is destroyed recursively)
  return v;
}
Value Value::function(Function f) {
  Value v;
  v.kind = Kind::kFunction;
  v.fn = std::make_shared<const Function>(std::move(f));
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  return from_json(j, 0);
}

Value Value::from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth >= kMaxNesting) render_error("JSON nested more than 256 deep");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return from(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return from(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return from(static_cast<int64_t>(u));
      return from(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return from(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return from(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (const auto& e : j) l.push_back(from_json(e, depth + 1));
      return from(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.set(dict_key(from(it.key())), from_json(it.value(), depth + 1));
      return from(std::move(d));
    }
    default:
      render_error("unsupported JSON value");
  }
}

namespace {

// nlohmann's SAX events into Values: linear in the text (an ordered_json object's key lookup is a scan).
class ValueBuilder : public nlohmann::json_sax<nlohmann::json> {
 public:
  Value result;
  std::string error;

  bool null() override { return put(Value::none()); }
  bool boolean(bool b) override { return put(Value::from(b)); }
  bool number_integer(number_integer_t i) override { return put(Value::from(static_cast<int64_t>(i))); }
  bool number_unsigned(number_unsigned_t u) override {
    return put(u <= static_cast<uint64_t>(INT64_MAX) ? Value::from(static_cast<int64_t>(u))
                                                     : Value::from(static_cast<double>(u)));
  }
  bool number_float(number_float_t d, const string_t&) override {
    return put(Value::from(static_cast<double>(d)));
  }
  bool string(string_t& s) override { return put(Value::from(std::move(s))); }
  bool binary(binary_t&) override { return fail_with("binary values are not JSON"); }
  bool start_object(std::size_t) override { return open(true); }
  bool key(string_t& k) override {
    frames_.back().key = dict_key(Value::from(std::move(k)));
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return fail_with(e.what());
  }

 private:
  struct Frame {
    bool object;
    List list;
    Dict dict;
    std::string key;
  };
  std::vector<Frame> frames_;

  bool fail_with(std::string message) {
    error = std::move(message);
    return false;
  }
  bool put(Value v) {
    if (frames_.empty()) {
      result = std::move(v);
    } else if (frames_.back().object) {
      frames_.back().dict.set(frames_.back().key, std::move(v));
    } else {
      frames_.back().list.push_back(std::move(v));
    }
    return true;
  }
  bool open(bool object) {
    if (frames_.size() >= static_cast<size_t>(kMaxNesting))
      return fail_with("JSON nested more than 256 deep");
    frames_.push_back(Frame{object, {}, {}, {}});
    return true;
  }
  bool close() {
    Frame f = std::move(frames_.back());
    frames_.pop_back();
    return put(f.object ? Value::from(std::move(f.dict)) : Value::from(std::move(f.list)));
  }
};

}  // namespace

Value Value::parse_json(const std::string& text) {
  ValueBuilder b;
  if (!nlohmann::json::sax_parse(text, &b)) render_error("not valid JSON: " + b.error);
  return std::move(b.result);
}

double Value::as_double() const {
  if (kind == Kind::kFloat) return number;
  if (kind == Kind::kInt) return static_cast<double>(integer);
  return boolean ? 1.0 : 0.0;
}

const Value* Dict::find(const std::string& key) const {
  if (!index_.empty()) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &items[it->second].second;
  }
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  if (index_.empty() && items.size() >= 8)
    for (size_t i = 0; i < items.size(); ++i) index_.emplace(items[i].first, i);
  if (!index_.empty()) {
    auto [it, fresh] = index_.emplace(key, items.size());
    if (!fresh) {
      items[it->second].second = std::move(v);
      return;
    }
  } else {
    for (auto& [k, old] : items)
      if (k == key) {
        old = std::move(v);
        return;
      }
  }
  items.emplace_back(key, std::move(v));
}

void Dict::clear() {
  items.clear();
  index_.clear();
}

std::string dict_key(const Value& key) {
  switch (key.kind) {
    case Kind::kString:
      return !key.s().empty() && key.s()[0] == '\x01' ? "\x01s" + key.s() : key.s();
    case Kind::kInt:
      return "\x01i" + std::to_string(key.integer);
    case Kind::kBool:
      return key.boolean ? "\x01i1" : "\x01i0";
    case Kind::kFloat:
      if (std::isfinite(key.number) && key.number == std::trunc(key.number) && std::fabs(key.number) < 9e18)
        return "\x01i" + std::to_string(static_cast<int64_t>(key.number));
      return "\x01r" + float_repr(key.number);
    case Kind::kNone:
      return "\x01n";
    default:
      render_error(std::string("unhashable or unsupported dict key type: '") + type_name(key) + "'");
  }
}

Value dict_key_value(const std::string& stored) {
  if (stored.empty() || stored[0] != '\x01') return Value::from(stored);
  switch (stored[1]) {
    case 's':
      return Value::from(stored.substr(2));
    case 'i':  // written by dict_key: always a valid int64
      return Value::from(static_cast<int64_t>(std::strtoll(stored.c_str() + 2, nullptr, 10)));
    case 'r':
      return Value::from(std::strtod(stored.c_str() + 2, nullptr));
    default:
      return Value::none();
  }
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return v.boolean;
    case Kind::kInt:
      return v.integer != 0;
    case Kind::kFloat:
      return v.number != 0;
    case Kind::kString:
      return !v.str->empty();
    case Kind::kList:
      return !v.list->empty();
    case Kind::kDict:
      return !v.dict->items.empty();
    case Kind::kNamespace:
    case Kind::kFunction:
      return true;
  }
  return false;
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);  // [-]d[.ddd]e(+|-)XX
  const size_t e = sci.find('e');
  const bool neg = sci[0] == '-';
  std::string digits;
  for (size_t i = neg ? 1 : 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int exp = std::stoi(sci.substr(e + 1));
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {  // Python's repr is positional in this range
    if (exp < 0) return out + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    const size_t point = static_cast<size_t>(exp) + 1;
    if (digits.size() <= point) return out + digits + std::string(point - digits.size(), '0') + ".0";
    return out + digits.substr(0, point) + "." + digits.substr(point);
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  const int a = exp < 0 ? -exp : exp;
  out += exp < 0 ? "e-" : "e+";
  if (a < 10) out += '0';
  out += std::to_string(a);
  return out;
}

namespace {

// Code points Python's repr escapes beyond ASCII controls: the C1 controls, the non-ASCII spaces and the
// common format characters (categories Cc, Zs, Zl, Zp, Cf), and private use.
bool repr_escapes(uint32_t c) {
  return (c >= 0x80 && c <= 0xA0) || c == 0xAD || (c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD ||
         c == 0x70F || c == 0x1680 || c == 0x180E || (c >= 0x2000 && c <= 0x200F) ||
         (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F) || c == 0x3000 ||
         (c >= 0xE000 && c <= 0xF8FF) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB);
}

std::string str_repr(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  const char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = 1;
      const uint32_t cp = utf8_decode_lossy(s, i, &len);  // an invalid byte: U+FFFD, printed as it is
      if (repr_escapes(cp)) {
        out += cp <= 0xFF ? "\\x" : "\\u";
        for (int sh = cp <= 0xFF ? 4 : 12; sh >= 0; sh -= 4) out += hex[(cp >> sh) & 15];
      } else {
        out.append(s, i, len);
      }
      i += len;
      continue;
    }
    const char ch = s[i++];
    if (ch == q || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  out += q;
  return out;
}

std::string repr_at(const Value& v, int depth);

// Printing charges its work and bounds its size as it goes: a list that holds one sub-list twice, nested,
// prints exponentially long.
void grew(const std::string& out, size_t piece) {
  charge_work(1 + piece / 4);  // each level of a nested value copies its pieces once more
  if (out.size() > kMaxStringBytes) render_error("a printed value would be larger than 128 MiB");
}

std::string list_repr(const Value& v, int depth) {
  std::string out = v.tuple ? "(" : "[";
  for (size_t i = 0; i < v.list->size(); ++i) {
    if (i) out += ", ";
    const std::string piece = repr_at((*v.list)[i], depth + 1);
    out += piece;
    grew(out, piece.size());
  }
  if (v.tuple && v.list->size() == 1) out += ',';
  out += v.tuple ? ")" : "]";
  return out;
}

std::string dict_repr(const Dict& d, int depth) {
  std::string out = "{";
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    const std::string piece =
        repr_at(dict_key_value(d.items[i].first), depth + 1) + ": " + repr_at(d.items[i].second, depth + 1);
    out += piece;
    grew(out, piece.size());
  }
  return out + "}";
}

// str(v) at this depth of the value being printed (a namespace may hold itself).
std::string to_str_at(const Value& v, int depth) {
  if (depth > kMaxNesting) render_error("a value nested more than 256 deep cannot be printed");
  switch (v.kind) {
    case Kind::kUndefined:
      return {};
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.boolean ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.integer);
    case Kind::kFloat:
      return float_repr(v.number);
    case Kind::kString:
      return *v.str;
    case Kind::kList:
      return list_repr(v, depth);
    case Kind::kDict:
      return dict_repr(*v.dict, depth);
    case Kind::kNamespace:
      return "<Namespace " + dict_repr(*v.dict, depth) + ">";
    case Kind::kFunction:
      return "<function>";
  }
  return {};
}

std::string repr_at(const Value& v, int depth) {
  if (v.kind == Kind::kString) return str_repr(*v.str);
  if (v.kind == Kind::kUndefined) return "Undefined";
  return to_str_at(v, depth);
}

}  // namespace

std::string to_str(const Value& v) {
  return to_str_at(v, 0);
}

std::string repr(const Value& v) {
  return repr_at(v, 0);
}

const char* type_name(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return v.tuple ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kFunction:
      return "function";
  }
  return "object";
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Kind::kFloat && b.kind != Kind::kFloat) {
      const int64_t x = a.kind == Kind::kInt ? a.integer : a.boolean;
      const int64_t y = b.kind == Kind::kInt ? b.integer : b.boolean;
      return x == y;
    }
    return a.as_double() == b.as_double();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      charge_work(1 + std::min(a.str->size(), b.str->size()) / 16);
      return *a.str == *b.str;
    case Kind::kList:
      if (a.tuple != b.tuple || a.list->size() != b.list->size()) return false;
      charge_work(a.list->size());
      for (size_t i = 0; i < a.list->size(); ++i)
        if (!equals((*a.list)[i], (*b.list)[i])) return false;
      return true;
    case Kind::kDict:
      if (a.dict->items.size() != b.dict->items.size()) return false;
      charge_work(a.dict->items.size());
      for (const auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    case Kind::kNamespace:
      return a.dict == b.dict;
    case Kind::kFunction:
      return a.fn == b.fn;
    default:
      return false;
  }
}

bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Kind::kFloat && b.kind != Kind::kFloat) {
      const int64_t x = a.kind == Kind::kInt ? a.integer : a.boolean;
      const int64_t y = b.kind == Kind::kInt ? b.integer : b.boolean;
      return x < y;
    }
    return a.as_double() < b.as_double();
  }
  if (a.kind == Kind::kString && b.kind == Kind::kString) {  // UTF-8 bytes: code point order
    charge_work(1 + std::min(a.str->size(), b.str->size()) / 16);
    return *a.str < *b.str;
  }
  if (a.kind == Kind::kList && b.kind == Kind::kList && a.tuple == b.tuple) {
    const size_t n = std::min(a.list->size(), b.list->size());
    charge_work(n);
    for (size_t i = 0; i < n; ++i) {
      const Value &x = (*a.list)[i], &y = (*b.list)[i];
      if (!equals(x, y)) return less(x, y);
    }
    return a.list->size() < b.list->size();
  }
  render_error(std::string("'<' not supported between instances of '") + type_name(a) + "' and '" +
               type_name(b) + "'");
}

namespace {

void json_string(const std::string& s, std::string* out) {
  static const char* hex = "0123456789abcdef";
  *out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          *out += hex[c >> 4];
          *out += hex[c & 15];
        } else {
          *out += ch;
        }
    }
  }
  *out += '"';
}

struct JsonWriter {
  const std::string* indent;
  const std::string& item_sep;
  const std::string& key_sep;
  bool sort_keys;
  std::string out;

  void newline(int depth) {
    out += '\n';
    for (int i = 0; i < depth; ++i) {
      out += *indent;
      grew(out, indent->size());
    }
  }

  void write(const Value& v, int depth) {
    if (depth > 512) render_error("tojson: nesting too deep");
    switch (v.kind) {
      case Kind::kNone:
        out += "null";
        return;
      case Kind::kBool:
        out += v.boolean ? "true" : "false";
        return;
      case Kind::kInt:
        out += std::to_string(v.integer);
        return;
      case Kind::kFloat:
        if (std::isnan(v.number)) {
          out += "NaN";
        } else if (std::isinf(v.number)) {
          out += v.number < 0 ? "-Infinity" : "Infinity";
        } else {
          out += float_repr(v.number);
        }
        return;
      case Kind::kString:
        json_string(*v.str, &out);
        return;
      case Kind::kList: {
        if (v.list->empty()) {
          out += "[]";
          return;
        }
        out += '[';
        for (size_t i = 0; i < v.list->size(); ++i) {
          if (i) out += item_sep;
          if (indent) newline(depth + 1);
          write((*v.list)[i], depth + 1);
          grew(out, item_sep.size());
        }
        if (indent) newline(depth);
        out += ']';
        return;
      }
      case Kind::kDict: {
        if (v.dict->items.empty()) {
          out += "{}";
          return;
        }
        std::vector<const std::pair<std::string, Value>*> items;
        for (const auto& kv : v.dict->items) items.push_back(&kv);
        if (sort_keys)
          std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
        out += '{';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep;
          if (indent) newline(depth + 1);
          // json.dumps writes a number or None key as its JSON text, quoted.
          const Value key = dict_key_value(items[i]->first);
          json_string(key.is_string() ? key.s() : key.is_none() ? std::string("null") : to_str(key), &out);
          out += key_sep;
          write(items[i]->second, depth + 1);
          grew(out, item_sep.size() + key_sep.size() + items[i]->first.size());
        }
        if (indent) newline(depth);
        out += '}';
        return;
      }
      default:
        render_error(std::string("tojson: Object of type ") + type_name(v) + " is not JSON serializable");
    }
  }
};

}  // namespace

std::string to_json(const Value& v, const std::string* indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys) {
  JsonWriter w{indent, item_sep, key_sep, sort_keys, {}};
  w.write(v, 0);
  return std::move(w.out);
}

size_t code_point_count(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    size_t len = 1;
    utf8_next(reinterpret_cast<const unsigned char*>(s.data() + i), s.size() - i, &len);
    i += len;
  }
  return n;
}

std::vector<std::string_view> code_points(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    utf8_next(reinterpret_cast<const unsigned char*>(s.data() + i), s.size() - i, &len);
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace moert::tok::jinja
