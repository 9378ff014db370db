// What jinja gives a template: attribute and item access with the Python methods chat templates call
// (str, dict, list), the operators, iteration, and jinja2's filters, tests and globals (with HF's tojson,
// raise_exception and strftime_now). Everything throws TemplateError where Python would raise.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace moert::tok::jinja {

// Bounds that keep a hostile template from exhausting the host: any string, output or list beyond them,
// or a render with more loop iterations and macro calls than kMaxSteps (or more work than kMaxWork,
// jinja_value.h), is a template error.
constexpr size_t kMaxItems = size_t{1} << 20;
constexpr size_t kMaxSteps = size_t{1} << 18;
void check_string_size(size_t bytes);
void check_item_count(size_t items);

// obj.name: Python's getattr (methods first), then obj[name]. Private names (a leading '_') are undefined,
// as in jinja's sandbox. Throws for an undefined obj.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: Python's getitem, then getattr. Throws for an undefined obj.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] (each may be undefined: absent).
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// The items a for loop or a filter sees: a list's elements, a dict's keys, a string's characters; an
// undefined value has none.
std::vector<Value> iterate(const Value& v);
// item in container.
bool contains(const Value& container, const Value& item);
// a op b for op one of + - * / // % ** ~.
Value binary_op(const std::string& op, const Value& a, const Value& b);
// -v.
Value negate(const Value& v);

// A filter (v | name(args)) and a test (v is name(args)). Unknown names throw.
Value apply_filter(const std::string& name, const Value& v, const Args& args);
bool apply_test(const std::string& name, const Value& v, const Args& args);

// range, namespace, dict, raise_exception, strftime_now.
Dict builtin_globals();

// The argument at position index or with keyword name; nullptr when absent.
const Value* find_arg(const Args& args, size_t index, const char* name);

// s with its ASCII letters upper- or lower-cased (str.upper/lower here).
std::string ascii_case(std::string s, bool upper);

// The message of Undefined v used where Python raises UndefinedError.
std::string undefined_message(const Value& v);

}  // namespace moert::tok::jinja
