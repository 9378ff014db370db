#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "util/error.h"

namespace moert::tok {

namespace {

// Unicode White_Space (what Oniguruma's \s matches in UTF-8 mode). PCRE2's \s also matches U+180E.
constexpr const char* kSpaceRanges =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";
constexpr const char* kHexRanges = "0-9a-fA-F";

// Per-thread match state shared by all patterns: match data (first pair only) and a roomy JIT stack.
struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* js = nullptr;
  MatchState() {
    md = pcre2_match_data_create(1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    js = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
    if (!md || !mc || !js) fail(ErrorCode::kOutOfMemory, "tokenizer: cannot allocate PCRE2 match state");
    pcre2_jit_stack_assign(mc, nullptr, js);
  }
  ~MatchState() {
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

// Whether \p{name} names a script (Han, Latin, ...), not a general category or a binary property: the
// names PCRE2 accepts as \p{sc:name}.
bool is_script(std::string_view name) {
  if (name.empty() || name.find_first_of(":=") != std::string_view::npos) return false;
  static constexpr std::string_view kCategories[] = {
      "C",  "Cc", "Cf", "Cn", "Co", "Cs", "L",  "Ll", "Lm", "Lo", "Lt", "Lu", "L&",
      "M",  "Mc", "Me", "Mn", "N",  "Nd", "Nl", "No", "P",  "Pc", "Pd", "Pe", "Pf",
      "Pi", "Po", "Ps", "S",  "Sc", "Sk", "Sm", "So", "Z",  "Zl", "Zp", "Zs", "Any"};
  for (std::string_view k : kCategories)
    if (name == k) return false;
  const std::string probe = "\\p{sc:" + std::string(name) + "}";
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(probe.data()), probe.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  pcre2_code_free(code);
  return code != nullptr;
}

// End of the character class opened at p[open] ('['): the index of its closing ']', with the index of a
// top-level "&&" in *amp (npos when none). Escapes, POSIX [:name:] and one nested class after "&&" are
// skipped; a nested class anywhere else is Error(kUnsupported).
size_t class_end(std::string_view p, size_t open, size_t* amp) {
  *amp = std::string_view::npos;
  size_t i = open + 1;
  const size_t n = p.size();
  if (i < n && p[i] == '^') ++i;
  if (i < n && p[i] == ']') ++i;  // a leading ']' is literal
  while (i < n) {
    const char c = p[i];
    if (c == '\\') {
      i += 2;
    } else if (c == '&' && i + 1 < n && p[i + 1] == '&' && *amp == std::string_view::npos) {
      *amp = i;
      i += 2;
      if (i < n && p[i] == '[') {
        size_t inner_amp;
        i = class_end(p, i, &inner_amp) + 1;
        if (inner_amp != std::string_view::npos)
          fail(ErrorCode::kUnsupported, "tokenizer: regex nests class intersections: " + std::string(p));
      }
    } else if (c == '[' && i + 1 < n && p[i + 1] == ':') {
      const size_t e = p.find(":]", i + 2);
      if (e == std::string_view::npos) fail(ErrorCode::kFormat, "tokenizer: bad regex " + std::string(p));
      i = e + 2;
    } else if (c == '[') {
      fail(ErrorCode::kUnsupported, "tokenizer: regex uses a nested character class: " + std::string(p));
    } else if (c == ']') {
      return i;
    } else {
      ++i;
    }
  }
  fail(ErrorCode::kFormat, "tokenizer: regex has an unclosed character class: " + std::string(p));
}

}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  size_t i = 0;
  const size_t n = p.size();
  while (i < n) {
    const char c = p[i];
    if (c == '\\' && i + 1 < n) {
      const char d = p[i + 1];
      if (d == 's' || d == 'h') {
        const char* r = d == 's' ? kSpaceRanges : kHexRanges;
        if (in_class) {
          out += r;
        } else {
          out += '[';
          out += r;
          out += ']';
        }
        i += 2;
        continue;
      }
      if ((d == 'S' || d == 'H') && !in_class) {
        out += "[^";
        out += d == 'S' ? kSpaceRanges : kHexRanges;
        out += ']';
        i += 2;
        continue;
      }
      if ((d == 'S' || d == 'H') && in_class)
        fail(ErrorCode::kUnsupported,
             "tokenizer: regex uses \\" + std::string(1, d) + " inside a character class: " + std::string(p));
      if ((d == 'p' || d == 'P') && i + 2 < n && p[i + 2] == '{') {
        // \p{Han}: Oniguruma and Rust's regex mean the Script property, PCRE2 (10.40 on, as Perl) the
        // Script_Extensions, which also takes shared punctuation such as U+3002 into Han: say sc: there.
        const size_t e = p.find('}', i + 3);
        if (e == std::string_view::npos) fail(ErrorCode::kFormat, "tokenizer: bad regex " + std::string(p));
        std::string_view name = p.substr(i + 3, e - i - 3);
        const bool neg = !name.empty() && name[0] == '^';
        if (neg) name.remove_prefix(1);
        out += c;
        out += d;
        out += neg ? "{^" : "{";
        if (is_script(name)) out += "sc:";
        out += name;
        out += '}';
        i = e + 1;
        continue;
      }
      out += c;
      out += d;
      i += 2;
      continue;
    }
    if (c == '[' && !in_class) {
      size_t amp;
      const size_t close = class_end(p, i, &amp);
      if (amp != std::string_view::npos) {
        // [A&&B] (Oniguruma and Rust's regex: the intersection; PCRE2 10.42 has no such class):
        // (?:(?=B)[A]), B a class or a single item.
        if (p[i + 1] == '^')
          fail(ErrorCode::kUnsupported, "tokenizer: regex negates a class intersection: " + std::string(p));
        const std::string_view left = p.substr(i + 1, amp - i - 1), b = p.substr(amp + 2, close - amp - 2);
        if (left.empty() || b.empty())
          fail(ErrorCode::kUnsupported, "tokenizer: regex has an empty side of '&&': " + std::string(p));
        const std::string a = onig_to_pcre2("[" + std::string(left) + "]");
        std::string bt;
        if (b[0] == '[') {
          size_t inner_amp;
          if (class_end(b, 0, &inner_amp) != b.size() - 1)  // [A&&[B]C]: the union of [B] and C
            fail(ErrorCode::kUnsupported,
                 "tokenizer: regex has items after the nested class of '&&': " + std::string(p));
          bt = onig_to_pcre2(b);
        } else {
          bt = onig_to_pcre2("[" + std::string(b) + "]");
        }
        out += "(?:(?=" + bt + ")" + a + ")";
        i = close + 1;
        continue;
      }
    }
    if (c == '[') {
      if (in_class) {
        if (i + 1 < n && p[i + 1] == ':') {  // POSIX class [:alpha:]
          const size_t e = p.find(":]", i + 2);
          if (e == std::string_view::npos) fail(ErrorCode::kFormat, "tokenizer: bad regex " + std::string(p));
          out.append(p.substr(i, e + 2 - i));
          i = e + 2;
          continue;
        }
        fail(ErrorCode::kUnsupported, "tokenizer: regex uses a nested character class: " + std::string(p));
      }
      in_class = true;
      out += '[';
      ++i;
      if (i < n && p[i] == '^') out += p[i++];
      if (i < n && p[i] == ']') out += p[i++];  // a leading ']' is literal
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
    ++i;
  }
  return out;
}

Regex::Regex(std::string_view onig_pattern) : pattern_(onig_pattern) {
  const std::string pcre = onig_to_pcre2(onig_pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre.data()), pcre.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &off, cc);
  pcre2_compile_context_free(cc);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    fail(ErrorCode::kFormat, "tokenizer: regex does not compile (" +
                                 std::string(reinterpret_cast<char*>(buf)) + " at offset " +
                                 std::to_string(off) + "): " + std::string(onig_pattern));
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

bool Regex::find(std::string_view text, size_t start, size_t* mstart, size_t* mend) const {
  MatchState& st = match_state();
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subj = reinterpret_cast<PCRE2_SPTR>(text.data());
  const int rc = jit_ ? pcre2_jit_match(code, subj, text.size(), start, 0, st.md, st.mc)
                      : pcre2_match(code, subj, text.size(), start, PCRE2_NO_UTF_CHECK, st.md, st.mc);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(rc, buf, sizeof(buf));
    fail(ErrorCode::kInternal, "tokenizer: regex match failed: " + std::string(reinterpret_cast<char*>(buf)));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
  *mstart = ov[0];
  *mend = ov[1];
  return true;
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    size_t s, e;
    if (!find(text, pos, &s, &e)) break;
    if (s == e && have_last && last_end == e) {
      // Skip an empty match right after the previous match: advance one character.
      if (pos >= text.size()) break;
      size_t len = 1;
      const unsigned char b = static_cast<unsigned char>(text[pos]);
      if (b >= 0xF0)
        len = 4;
      else if (b >= 0xE0)
        len = 3;
      else if (b >= 0xC0)
        len = 2;
      pos += len;
      continue;
    }
    out->emplace_back(s, e);
    pos = e;
    have_last = true;
    last_end = e;
    if (s == e) {
      // An empty match not following a match: the next search starts at the same place and will be
      // skipped by the rule above (as the onig crate does).
    }
  }
}

}  // namespace moert::tok
