// A compiled regular expression (PCRE2, JIT, UTF + UCP) with the matching semantics the Hugging Face
// `tokenizers` library gets from Oniguruma (Ruby syntax): patterns are translated where the two dialects
// differ (`\s` is Unicode White_Space, `\h` is a hex digit, `^`/`$` are line anchors, `\p{Han}` is the Script
// property, a class intersection `[A&&B]` becomes a lookahead). The same translation serves tiktoken's
// patterns (Rust's regex, which agrees with Oniguruma on all of these).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moert::tok {

// Translates an Oniguruma (Ruby syntax) pattern into an equivalent PCRE2 pattern. Throws
// Error(kUnsupported) for constructs PCRE2 cannot express (a nested character class other than the right
// side of one `&&`, a negated intersection).
std::string onig_to_pcre2(std::string_view pattern);

class Regex {
 public:
  // pattern in Oniguruma syntax (translated with onig_to_pcre2). Throws Error(kFormat) when it does not
  // compile.
  explicit Regex(std::string_view onig_pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping matches in text (valid UTF-8), as (start, end) byte offsets, the way the onig
  // crate's find_iter reports them (an empty match right after the previous match is skipped).
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;
  // The first match at or after `start`; false when none.
  bool find(std::string_view text, size_t start, size_t* mstart, size_t* mend) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace moert::tok
