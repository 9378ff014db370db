// moert's jinja engine: renders the chat templates of Hugging Face checkpoints that moert has no native
// renderer for, as transformers' apply_chat_template does (jinja2's ImmutableSandboxedEnvironment with
// trim_blocks and lstrip_blocks, its tojson, raise_exception and strftime_now).
//
// The subset is what chat templates use: {{ }}, {% if/elif/else %}, {% for %} (with loop.*, an `if` filter,
// else, break and continue), {% set %} (also ns.attr and block form), {% macro %}, {% filter %},
// {% generation %}, {% raw %}, comments; jinja2's expressions, filters and tests, and the Python methods of
// str, dict and list that do not modify. Not supported (a parse error): include, extends, import, call
// blocks, recursive loops; nor the filters format, groupby, batch and center (an error when used).
// Differences from Python: integers are 64-bit (overflow is an error), upper/lower/title change ASCII
// letters only, and a True dict key prints as 1.
//
// A template is untrusted input: its nesting, its output, its strings and lists and its loop iterations are
// bounded (jinja_builtins.h), so a template fails with an error, never a crash or a hang.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/jinja_value.h"

namespace moert::tok::jinja {

struct Node;

class Template {
 public:
  // Throws Error(kUnsupported, "chat template: line N: ...") for a syntax error or an unsupported construct.
  explicit Template(const std::string& source);
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  ~Template();

  // Renders with the members of context (an object) as variables, beside jinja's globals. Thread-safe (a
  // render shares nothing). Throws Error(kInvalidArgument, "chat template: line N: ...") where jinja2
  // would raise: raise_exception(message), an undefined value used, a type error, a bound exceeded.
  std::string render(const nlohmann::ordered_json& context) const;
  // The same with the variables as a dict Value.
  std::string render(const Value& context) const;

 private:
  struct Parsed;
  std::shared_ptr<const Parsed> parsed_;
};

}  // namespace moert::tok::jinja
