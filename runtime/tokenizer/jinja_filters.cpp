// jinja2's filters, tests and globals, with transformers' additions (its tojson, raise_exception and
// strftime_now), as chat templates use them.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/utf8.h"

namespace moert::tok::jinja {

namespace {

bool bool_arg(const Args& a, size_t i, const char* name, bool fallback) {
  const Value* v = find_arg(a, i, name);
  return v ? truthy(*v) : fallback;
}

// A value's sort or comparison key: the attribute (dotted path) when one is named, lower-cased strings
// unless case_sensitive.
Value key_of(const Value& v, const Value* attribute, bool case_sensitive) {
  Value k = v;
  if (attribute && !attribute->is_none()) {
    const std::string path = to_str(*attribute);
    size_t b = 0;
    for (;;) {
      const size_t e = path.find('.', b);
      const std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
      const bool digits =
          !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      int64_t index = 0;
      const bool as_index =
          digits && std::from_chars(part.data(), part.data() + part.size(), index).ec == std::errc();
      k = as_index ? get_item(k, Value::from(index)) : get_item(k, Value::from(part));
      if (e == std::string::npos) break;
      b = e + 1;
    }
  }
  if (!case_sensitive && k.is_string()) return Value::from(ascii_case(k.s(), false));
  return k;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// \uXXXX for every non-ASCII code point (json.dumps' ensure_ascii): they occur only inside strings.
std::string ascii_json(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  auto unit = [&](uint32_t u) {
    out += "\\u";
    for (int sh = 12; sh >= 0; sh -= 4) out += hex[(u >> sh) & 15];
  };
  for (size_t i = 0, len = 1; i < s.size(); i += len) {
    uint32_t c = utf8_decode_lossy(s, i, &len);
    if (len == 1) {  // ASCII, or an invalid byte kept as it is
      out += s[i];
      continue;
    }
    if (c >= 0x10000) {
      c -= 0x10000;
      unit(0xD800 + (c >> 10));
      unit(0xDC00 + (c & 0x3FF));
    } else {
      unit(c);
    }
  }
  return out;
}

Value tojson(const Value& v, const Args& a) {
  // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
  const bool ensure_ascii = bool_arg(a, 0, "ensure_ascii", false);
  const Value* indent = find_arg(a, 1, "indent");
  const Value* separators = find_arg(a, 2, "separators");
  const bool sort_keys = bool_arg(a, 3, "sort_keys", false);
  std::string indent_text;
  const std::string* ind = nullptr;
  if (indent && !indent->is_none()) {
    if (indent->kind == Kind::kInt) {
      indent_text.assign(static_cast<size_t>(std::clamp<int64_t>(indent->integer, 0, 64)), ' ');
    } else if (indent->is_string()) {
      indent_text = indent->s();
    } else {
      render_error("tojson: indent must be an int or a string");
    }
    ind = &indent_text;
  }
  std::string item_sep = ind ? "," : ", ", key_sep = ": ";
  if (separators && !separators->is_none()) {
    if (!separators->is_list() || separators->list->size() != 2 || !(*separators->list)[0].is_string() ||
        !(*separators->list)[1].is_string())
      render_error("tojson: separators must be a pair of strings");
    item_sep = (*separators->list)[0].s();
    key_sep = (*separators->list)[1].s();
  }
  std::string out = to_json(v, ind, item_sep, key_sep, sort_keys);
  check_string_size(out.size());
  return Value::from(ensure_ascii ? ascii_json(out) : std::move(out));
}

std::vector<Value> items_of(const Value& v) {
  if (v.is_mapping()) {
    std::vector<Value> out;
    for (const auto& [k, x] : v.dict->items) out.push_back(Value::from(List{dict_key_value(k), x}, true));
    return out;
  }
  if (v.is_undefined()) return {};
  render_error(std::string("items: '") + type_name(v) + "' is not a mapping");
}

Args rest_args(const Args& a, size_t from) {
  Args r;
  if (from < a.positional.size())
    r.positional.assign(a.positional.begin() + static_cast<long>(from), a.positional.end());
  r.keyword = a.keyword;
  return r;
}

Value select(const Value& v, const Args& a, bool by_attr, bool keep) {
  const std::string what = by_attr ? (keep ? "selectattr" : "rejectattr") : (keep ? "select" : "reject");
  size_t next = 0;
  const Value* attr = nullptr;
  if (by_attr) {
    attr = find_arg(a, next++, "attribute");
    if (!attr) render_error(what + " needs an attribute");
  }
  const Value* test = next < a.positional.size() ? &a.positional[next] : nullptr;
  if (test && !test->is_string()) render_error(what + ": the test must be named by a string");
  const Args targs = rest_args(a, next + 1);
  List out;
  for (const Value& x : iterate(v)) {
    const Value subject = attr ? key_of(x, attr, true) : x;
    const bool pass = test ? apply_test(test->s(), subject, targs) : truthy(subject);
    if (pass == keep) out.push_back(x);
  }
  return Value::from(std::move(out));
}

Value map(const Value& v, const Args& a) {
  List out;
  auto keyword = [&a](const char* name) -> const Value* {
    for (const auto& [k, v] : a.keyword)
      if (k == name) return &v;
    return nullptr;
  };
  if (const Value* attr = keyword("attribute")) {
    const Value* dflt = keyword("default");
    for (const Value& x : iterate(v)) {
      Value k = key_of(x, attr, true);
      out.push_back(k.is_undefined() && dflt ? *dflt : k);
    }
    return Value::from(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string())
    render_error("map needs a filter name or attribute=");
  const Args fargs = rest_args(a, 1);
  for (const Value& x : iterate(v)) out.push_back(apply_filter(a.positional[0].s(), x, fargs));
  return Value::from(std::move(out));
}

Value python_round(double x, int64_t digits, const std::string& method) {
  digits = std::clamp<int64_t>(digits, -300, 300);
  if (method == "ceil" || method == "floor") {  // jinja2: math.ceil/floor(x * 10**n) / 10**n
    const double scale = std::pow(10.0, static_cast<double>(digits));
    return Value::from((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  }
  if (method != "common") render_error("round: method must be 'common', 'ceil' or 'floor'");
  if (!std::isfinite(x) || digits < 0) {
    const double scale = std::pow(10.0, static_cast<double>(-digits));
    return Value::from(std::isfinite(x) ? std::nearbyint(x / scale) * scale : x);
  }
  // Python's round(x, n): the decimal nearest the exact binary value, ties to even; printf rounds the same.
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::min<int64_t>(digits, 60)), x);
  return Value::from(std::strtod(buf, nullptr));
}

// Python's float(s) / int(s, 10) on a string: surrounding whitespace and '_' between digits allowed, no
// hex; nullopt where Python raises ValueError.
std::string number_text(const std::string& text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  std::string t;
  for (size_t i = b; i < e; ++i)
    if (text[i] != '_') t += text[i];
  if (!t.empty() && t[0] == '+') t.erase(0, 1);
  return t;
}
std::optional<double> parse_float(const std::string& text) {
  const std::string t = number_text(text);
  double d = 0;
  const auto r = std::from_chars(t.data(), t.data() + t.size(), d, std::chars_format::general);
  if (t.empty() || r.ptr != t.data() + t.size() ||
      (r.ec != std::errc() && r.ec != std::errc::result_out_of_range))
    return std::nullopt;
  if (r.ec == std::errc::result_out_of_range) d = std::strtod(t.c_str(), nullptr);  // inf or 0, as Python
  return d;
}
std::optional<int64_t> parse_int(const std::string& text) {
  const std::string t = number_text(text);
  int64_t i = 0;
  const auto r = std::from_chars(t.data(), t.data() + t.size(), i, 10);
  if (t.empty() || r.ptr != t.data() + t.size() || r.ec != std::errc()) return std::nullopt;
  return i;
}

Value to_int(const Value& v, const Args& a) {
  const Value* dflt = find_arg(a, 0, "default");
  const Value fallback = dflt ? *dflt : Value::from(int64_t{0});
  auto from_double = [&](double d) {
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value::from(static_cast<int64_t>(d));
  };
  if (v.kind == Kind::kInt) return v;
  if (v.kind == Kind::kBool) return Value::from(static_cast<int64_t>(v.boolean));
  if (v.kind == Kind::kFloat) return from_double(v.number);
  if (v.is_string()) {  // jinja2: int(s, 10), else int(float(s)), else the default
    if (const auto i = parse_int(v.s())) return Value::from(*i);
    if (const auto d = parse_float(v.s())) return from_double(*d);
  }
  return fallback;
}

Value to_float(const Value& v, const Args& a) {
  const Value* dflt = find_arg(a, 0, "default");
  if (v.is_number()) return Value::from(v.as_double());
  if (v.is_string())
    if (const auto d = parse_float(v.s())) return Value::from(*d);
  return dflt ? *dflt : Value::from(0.0);
}

Value indent(const Value& v, const Args& a) {
  const Value* width = find_arg(a, 0, "width");
  std::string pad = "    ";
  if (width && width->kind == Kind::kInt)
    pad.assign(static_cast<size_t>(std::clamp<int64_t>(width->integer, 0, 256)), ' ');
  if (width && width->is_string()) pad = width->s();
  const bool first = bool_arg(a, 1, "first", false), blank = bool_arg(a, 2, "blank", false);
  // jinja2: the lines of s + "\n" (so a trailing newline adds no line); every line after the first gets the
  // pad, blank ones only with blank=True; the first only with first=True.
  const std::string s = to_str(v) + "\n";
  std::vector<std::string> lines;
  for (size_t i = 0; i < s.size();) {
    const size_t e = s.find('\n', i);
    lines.push_back(s.substr(i, e - i));
    i = e + 1;
  }
  std::string out = first ? pad + lines[0] : lines[0];
  for (size_t k = 1; k < lines.size(); ++k) {
    out += '\n';
    if (blank || !lines[k].empty()) out += pad;
    out += lines[k];
    check_string_size(out.size());
  }
  check_string_size(out.size());
  return Value::from(std::move(out));
}

}  // namespace

Value apply_filter(const std::string& name, const Value& v, const Args& a) {
  if (name == "default" || name == "d") {
    const Value* dflt = find_arg(a, 0, "default_value");
    const bool boolean = bool_arg(a, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !truthy(v))) return dflt ? *dflt : Value::from(std::string());
    return v;
  }
  if (name == "length" || name == "count") {
    switch (v.kind) {
      case Kind::kUndefined:
        return Value::from(int64_t{0});
      case Kind::kString:
        return Value::from(static_cast<int64_t>(code_point_count(v.s())));
      case Kind::kList:
        return Value::from(static_cast<int64_t>(v.list->size()));
      case Kind::kDict:
        return Value::from(static_cast<int64_t>(v.dict->items.size()));
      default:
        render_error(std::string("object of type '") + type_name(v) + "' has no len()");
    }
  }
  if (name == "tojson") return tojson(v, a);
  if (name == "string") return Value::from(to_str(v));
  if (name == "safe") return v;
  if (name == "e" || name == "escape" || name == "forceescape") return Value::from(html_escape(to_str(v)));
  if (name == "trim") {
    Args m;
    if (const Value* chars = find_arg(a, 0, "chars")) m.positional.push_back(*chars);
    return get_attr(Value::from(to_str(v)), "strip").fn->operator()(m);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize")
    return get_attr(Value::from(to_str(v)), name).fn->operator()(Args{});
  if (name == "replace") {
    Args m = a;
    return get_attr(Value::from(to_str(v)), "replace").fn->operator()(m);
  }
  if (name == "first" || name == "last") {
    const std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::from(iterate(v));
  if (name == "reverse") {
    if (v.is_string()) {
      auto cps = code_points(v.s());
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return Value::from(std::move(out));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::from(std::move(items));
  }
  if (name == "join") {
    const Value* sep = find_arg(a, 0, "d");
    const Value* attr = find_arg(a, 1, "attribute");
    const std::string d = sep ? to_str(*sep) : std::string();
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) {
      if (!first) out += d;
      out += to_str(attr ? key_of(x, attr, true) : x);
      first = false;
      check_string_size(out.size());
    }
    return Value::from(std::move(out));
  }
  if (name == "items") return Value::from(items_of(v));
  if (name == "dictsort") {
    const bool cs = bool_arg(a, 0, "case_sensitive", false);
    const Value* by = find_arg(a, 1, "by");
    const bool by_value = by && by->is_string() && by->s() == "value";
    const bool rev = bool_arg(a, 2, "reverse", false);
    std::vector<Value> items = items_of(v);
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const Value kx = key_of((*x.list)[by_value ? 1 : 0], nullptr, cs);
      const Value ky = key_of((*y.list)[by_value ? 1 : 0], nullptr, cs);
      return rev ? less(ky, kx) : less(kx, ky);
    });
    return Value::from(std::move(items));
  }
  if (name == "sort") {
    const bool rev = bool_arg(a, 0, "reverse", false), cs = bool_arg(a, 1, "case_sensitive", false);
    const Value* attr = find_arg(a, 2, "attribute");
    std::vector<Value> items = iterate(v);
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      charge_work(4);
      const Value kx = key_of(x, attr, cs), ky = key_of(y, attr, cs);
      return rev ? less(ky, kx) : less(kx, ky);
    });
    return Value::from(std::move(items));
  }
  if (name == "unique") {
    const bool cs = bool_arg(a, 0, "case_sensitive", false);
    const Value* attr = find_arg(a, 1, "attribute");
    List out, seen;
    for (const Value& x : iterate(v)) {
      const Value k = key_of(x, attr, cs);
      charge_work(seen.size());
      if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) continue;
      seen.push_back(k);
      out.push_back(x);
    }
    return Value::from(std::move(out));
  }
  if (name == "min" || name == "max") {
    const bool cs = bool_arg(a, 0, "case_sensitive", false);
    const Value* attr = find_arg(a, 1, "attribute");
    const std::vector<Value> items = iterate(v);
    if (items.empty())
      return Value::undefined("No " + std::string(name == "min" ? "smallest" : "largest") +
                              " item, sequence was empty.");
    size_t best = 0;
    for (size_t i = 1; i < items.size(); ++i) {
      const Value ki = key_of(items[i], attr, cs), kb = key_of(items[best], attr, cs);
      if (name == "min" ? less(ki, kb) : less(kb, ki)) best = i;
    }
    return items[best];
  }
  if (name == "sum") {
    const Value* attr = find_arg(a, 0, "attribute");
    const Value* start = find_arg(a, 1, "start");
    Value total = start ? *start : Value::from(int64_t{0});
    for (const Value& x : iterate(v)) total = binary_op("+", total, attr ? key_of(x, attr, true) : x);
    return total;
  }
  if (name == "map") return map(v, a);
  if (name == "select" || name == "reject") return select(v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select(v, a, true, name == "selectattr");
  if (name == "attr") {
    const Value* n = find_arg(a, 0, "name");
    if (!n || !n->is_string()) render_error("attr needs a name");
    // Python's getattr only: a dict's keys are not its attributes.
    const Value a = get_attr(v, n->s());
    if (v.kind == Kind::kDict && a.kind != Kind::kFunction)
      return Value::undefined("'dict object' has no attribute '" + n->s() + "'");
    return a;
  }
  if (name == "abs") {
    if (v.kind == Kind::kFloat) return Value::from(std::fabs(v.number));
    if (v.kind == Kind::kInt || v.kind == Kind::kBool)
      return v.kind == Kind::kInt && v.integer < 0
                 ? negate(v)
                 : Value::from(v.kind == Kind::kInt ? v.integer : static_cast<int64_t>(v.boolean));
    render_error(std::string("bad operand type for abs(): '") + type_name(v) + "'");
  }
  if (name == "round") {
    if (!v.is_number()) render_error("round: the value must be a number");
    const Value* p = find_arg(a, 0, "precision");
    const Value* m = find_arg(a, 1, "method");
    // round() of an int is that int (jinja2 passes it to Python's round).
    if (v.kind != Kind::kFloat && (!m || to_str(*m) == "common"))
      return Value::from(static_cast<int64_t>(v.kind == Kind::kInt ? v.integer : v.boolean));
    return python_round(v.as_double(), p && p->kind == Kind::kInt ? p->integer : 0,
                        m ? to_str(*m) : "common");
  }
  if (name == "int") return to_int(v, a);
  if (name == "float") return to_float(v, a);
  if (name == "indent") return indent(v, a);
  if (name == "wordcount") {
    const Value words = get_attr(Value::from(to_str(v)), "split").fn->operator()(Args{});
    return Value::from(static_cast<int64_t>(words.list->size()));
  }
  render_error("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const Args& a) {
  auto other = [&]() -> const Value& {
    if (a.positional.empty()) render_error("the test '" + name + "' takes an argument");
    return a.positional[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == Kind::kBool;
  if (name == "true") return v.kind == Kind::kBool && v.boolean;
  if (name == "false") return v.kind == Kind::kBool && !v.boolean;
  if (name == "integer") return v.kind == Kind::kInt;
  if (name == "float") return v.kind == Kind::kFloat;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind == Kind::kDict;
  if (name == "iterable") return v.is_undefined() || v.is_list() || v.is_string() || v.kind == Kind::kDict;
  if (name == "sequence") return v.is_list() || v.is_string() || v.kind == Kind::kDict;
  if (name == "callable") return v.kind == Kind::kFunction;
  if (name == "odd" || name == "even") {
    if (v.kind != Kind::kInt && v.kind != Kind::kBool)
      render_error("the test '" + name + "' needs an integer");
    const int64_t i = v.kind == Kind::kInt ? v.integer : v.boolean;
    return (i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& d = other();
    if (!d.is_number() || d.as_double() == 0) render_error("divisibleby needs a non-zero number");
    return truthy(binary_op("%", v, d)) == false;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other());
  if (name == "ne" || name == "!=") return !equals(v, other());
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, other());
  if (name == "le" || name == "<=") return less(v, other()) || equals(v, other());
  if (name == "gt" || name == "greaterthan" || name == ">") return less(other(), v);
  if (name == "ge" || name == ">=") return less(other(), v) || equals(v, other());
  if (name == "in") return contains(other(), v);
  if (name == "sameas") return v.kind == other().kind && equals(v, other());
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    return truthy(get_attr(v, name == "lower" ? "islower" : "isupper").fn->operator()(Args{}));
  }
  if (name == "escaped") return false;
  render_error("unknown test '" + name + "'");
}

Dict builtin_globals() {
  Dict g;
  g.set("range", Value::function([](const Args& a) {
          int64_t start = 0, stop = 0, step = 1;
          auto num = [](const Value& v) {
            if (v.kind != Kind::kInt && v.kind != Kind::kBool) render_error("range() takes integers");
            return v.kind == Kind::kInt ? v.integer : static_cast<int64_t>(v.boolean);
          };
          const size_t n = a.positional.size();
          if (n == 1) {
            stop = num(a.positional[0]);
          } else if (n == 2 || n == 3) {
            start = num(a.positional[0]);
            stop = num(a.positional[1]);
            if (n == 3) step = num(a.positional[2]);
          } else {
            render_error("range() takes 1 to 3 arguments");
          }
          if (step == 0) render_error("range() arg 3 must not be zero");
          // Its length first: the bounds and the work budget refuse a huge range before it is built.
          const __int128 span =
              step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
          const __int128 mag = step > 0 ? step : -static_cast<__int128>(step);
          const __int128 count = span <= 0 ? 0 : (span + mag - 1) / mag;
          check_item_count(count > static_cast<__int128>(kMaxItems) ? kMaxItems + 1
                                                                    : static_cast<size_t>(count));
          charge_work(2 * static_cast<size_t>(count));
          List out;
          out.reserve(static_cast<size_t>(count));
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            out.push_back(Value::from(i));
            check_item_count(out.size());
            if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
          }
          return Value::from(std::move(out));
        }));
  auto make_dict = [](const Args& a, bool ns) {
    Dict d;
    for (const Value& p : a.positional) {
      if (!p.is_mapping()) render_error(ns ? "namespace() takes a dict" : "dict() takes a dict");
      for (const auto& [k, v] : p.dict->items) d.set(k, v);
    }
    for (const auto& [k, v] : a.keyword) d.set(k, v);
    return ns ? Value::name_space(std::move(d)) : Value::from(std::move(d));
  };
  g.set("namespace", Value::function([make_dict](const Args& a) { return make_dict(a, true); }));
  g.set("dict", Value::function([make_dict](const Args& a) { return make_dict(a, false); }));
  g.set("raise_exception", Value::function([](const Args& a) -> Value {
          render_error(a.positional.empty() ? std::string("raise_exception") : to_str(a.positional[0]));
        }));
  g.set("strftime_now", Value::function([](const Args& a) {
          if (a.positional.empty() || !a.positional[0].is_string())
            render_error("strftime_now needs a format");
          const std::time_t now = std::time(nullptr);
          std::tm tm{};
          localtime_r(&now, &tm);
          char buf[256];
          const size_t n = std::strftime(buf, sizeof buf, a.positional[0].s().c_str(), &tm);
          return Value::from(std::string(buf, n));
        }));
  return g;
}

}  // namespace moert::tok::jinja
