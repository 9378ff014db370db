#include "tokenizer/jinja_lexer.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace moert::tok::jinja {

void syntax_error(int line, const std::string& message) {
  fail(ErrorCode::kUnsupported, "chat template: line " + std::to_string(line) + ": " + message);
}

namespace {

struct Tag {
  char kind;  // '{' expression, '%' block, '#' comment, 'r' the {% raw %} / {% endraw %} markers
  bool strip_before = false, strip_after = false, keep_before = false, keep_after = false;
  std::string body;
  int line = 1;
};

struct Scanner {
  const std::string& t;
  size_t i = 0;
  int line = 1;
  size_t counted = 0;  // newlines counted up to here

  int line_at(size_t pos) {
    for (; counted < pos; ++counted)
      if (t[counted] == '\n') ++line;
    return line;
  }

  // At "{{", "{%" or "{#": reads the tag; returns the index after its closing marker.
  size_t read_tag(size_t at, Tag* tag) {
    const char kind = t[at + 1];
    const char close = kind == '{' ? '}' : kind;
    tag->kind = kind;
    tag->line = line_at(at);
    size_t j = at + 2;
    if (j < t.size() && (t[j] == '-' || t[j] == '+')) {
      tag->strip_before = t[j] == '-';
      tag->keep_before = t[j] == '+';
      ++j;
    }
    const size_t body_start = j;
    char quote = 0;
    int braces = 0;  // in {{ }}, jinja2 closes the tag only outside a dict literal: {{ {'a': {'b': 1}} }}
    for (; j < t.size(); ++j) {
      const char c = t[j];
      if (quote) {
        if (c == '\\' && j + 1 < t.size()) {
          ++j;
        } else if (c == quote) {
          quote = 0;
        }
        continue;
      }
      if (kind != '#' && (c == '\'' || c == '"')) {
        quote = c;
        continue;
      }
      if (kind == '{' && c == '{') ++braces;
      if (kind == '{' && c == '}' && braces > 0) {
        --braces;
        continue;
      }
      if (c == close && j + 1 < t.size() && t[j + 1] == '}') {
        tag->body = t.substr(body_start, j - body_start);
        return j + 2;
      }
      if ((c == '-' || c == '+') && j + 2 < t.size() && t[j + 1] == close && t[j + 2] == '}') {
        tag->strip_after = c == '-';
        tag->keep_after = c == '+';
        tag->body = t.substr(body_start, j - body_start);
        return j + 3;
      }
    }
    syntax_error(tag->line, kind == '#' ? "unterminated comment" : "unterminated tag");
  }
};

std::string trimmed(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_jinja_space(s[b])) ++b;
  while (e > b && is_jinja_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace

namespace {

// jinja2 3.1 reads a source with every \r\n and \r made \n, and one trailing line break dropped
// (keep_trailing_newline is off).
std::string normalise_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += '\n';
    } else {
      out += s[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Segment> split_template(const std::string& source) {
  const std::string t = normalise_newlines(source);
  Scanner sc{t};
  std::vector<std::string> texts(1);  // texts[k] precedes tags[k]
  std::vector<int> text_lines{1};
  std::vector<Tag> tags;
  size_t i = 0;
  while (i < t.size()) {
    if (t[i] == '{' && i + 1 < t.size() && (t[i + 1] == '{' || t[i + 1] == '%' || t[i + 1] == '#')) {
      Tag tag;
      size_t next = sc.read_tag(i, &tag);
      if (tag.kind == '%' && trimmed(tag.body) == "raw") {
        // The raw text runs to the first {% endraw %}; both markers follow the block tags' whitespace rules.
        tag.kind = 'r';
        tag.keep_after = true;  // jinja2's raw opener takes no trim_blocks newline
        size_t k = next;
        Tag end;
        for (;; ++k) {
          k = t.find("{%", k);
          if (k == std::string::npos) syntax_error(tag.line, "unterminated raw block");
          size_t b = k + 2;
          if (b < t.size() && (t[b] == '-' || t[b] == '+')) ++b;
          while (b < t.size() && is_jinja_space(t[b])) ++b;
          if (t.compare(b, 6, "endraw") == 0) {
            end = Tag{};
            const size_t after = sc.read_tag(k, &end);
            if (trimmed(end.body) == "endraw") {
              end.kind = 'r';
              tags.push_back(std::move(tag));
              texts.push_back(t.substr(next, k - next));
              text_lines.push_back(sc.line_at(next));
              tags.push_back(std::move(end));
              next = after;
              break;
            }
          }
        }
      } else {
        tags.push_back(std::move(tag));
      }
      texts.emplace_back();
      text_lines.push_back(sc.line_at(next));
      i = next;
    } else {
      const size_t n = std::min(t.find('{', i + 1), t.size());
      texts.back().append(t, i, n - i);
      i = n;
    }
  }
  // What jinja renders of each text run: a tag's '-' strips the whitespace beside it; trim_blocks drops the
  // newline after a block or comment tag, lstrip_blocks the spaces and tabs from a line start to one ('+'
  // turns either off). Expression tags take neither.
  for (size_t k = 0; k < texts.size(); ++k) {
    const std::string& raw = texts[k];
    size_t b = 0, e = raw.size();
    if (k > 0) {
      const Tag& prev = tags[k - 1];
      if (prev.strip_after) {
        while (b < e && is_jinja_space(raw[b])) ++b;
      } else if (prev.kind != '{' && !prev.keep_after && b < e && raw[b] == '\n') {
        ++b;
      }
    }
    if (k < tags.size()) {
      const Tag& next = tags[k];
      if (next.strip_before) {
        while (e > b && is_jinja_space(raw[e - 1])) --e;
      } else if (next.kind != '{' && !next.keep_before) {
        size_t l = raw.size();
        while (l > 0 && (raw[l - 1] == ' ' || raw[l - 1] == '\t')) --l;
        if ((l == 0 && k == 0) || (l > 0 && raw[l - 1] == '\n')) e = std::min(e, l);
      }
    }
    texts[k] = b < e ? raw.substr(b, e - b) : std::string();
  }
  std::vector<Segment> out;
  for (size_t k = 0; k < texts.size(); ++k) {
    if (!texts[k].empty()) {
      // Raw text between its markers is text too.
      if (!out.empty() && out.back().kind == Segment::kText) {
        out.back().text += texts[k];
      } else {
        out.push_back({Segment::kText, std::move(texts[k]), text_lines[k]});
      }
    }
    if (k < tags.size() && (tags[k].kind == '{' || tags[k].kind == '%'))
      out.push_back(
          {tags[k].kind == '{' ? Segment::kExpr : Segment::kBlock, std::move(tags[k].body), tags[k].line});
  }
  return out;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A string literal's value, with Python's unicode-escape rules (what jinja2 applies to literals).
size_t read_string(const std::string& s, size_t i, int line, std::string* out) {
  const char q = s[i++];
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == q) return i + 1;
    if (c != '\\' || i + 1 >= s.size()) {
      *out += c;
      continue;
    }
    const char e = s[++i];
    switch (e) {
      case 'n':
        *out += '\n';
        break;
      case 't':
        *out += '\t';
        break;
      case 'r':
        *out += '\r';
        break;
      case '\\':
      case '\'':
      case '"':
        *out += e;
        break;
      case 'a':
        *out += '\a';
        break;
      case 'b':
        *out += '\b';
        break;
      case 'f':
        *out += '\f';
        break;
      case 'v':
        *out += '\v';
        break;
      case '\n':
        break;  // a line continuation
      case 'x':
      case 'u':
      case 'U': {
        const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < n; ++k) {
          const int h = i + 1 + k < s.size() ? hex_value(s[i + 1 + k]) : -1;
          if (h < 0) syntax_error(line, std::string("truncated \\") + e + " escape in a string");
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          syntax_error(line, "a string escape is not a Unicode scalar value");
        utf8_append(cp, out);
        i += static_cast<size_t>(n);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = 0;
          int k = 0;
          for (; k < 3 && i < s.size() && s[i] >= '0' && s[i] <= '7'; ++k, ++i) cp = cp * 8 + (s[i] - '0');
          --i;
          utf8_append(cp, out);
        } else {
          *out += '\\';
          *out += e;
        }
    }
  }
  syntax_error(line, "unterminated string");
}

}  // namespace

std::vector<Token> tokenize(const std::string& s, int line) {
  static constexpr const char* kOps2[] = {"//", "**", "==", "!=", "<=", ">="};
  static constexpr const char* kOps1 = "+-*/%~<>=()[]{},.:|";
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (is_jinja_space(c)) {
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::kName, s.substr(i, j - i)});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      std::string digits;
      bool is_float = false;
      auto take_digits = [&] {
        while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_'))
          if (s[j++] != '_') digits += s[j - 1];
      };
      take_digits();
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        is_float = true;
        digits += s[j++];
        take_digits();
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
          is_float = true;
          digits += 'e';
          digits.append(s, j + 1, k - j - 1);
          j = k;
          take_digits();
        }
      }
      Token tok{is_float ? Token::kFloat : Token::kInt, digits};
      if (is_float) {
        tok.number = std::strtod(digits.c_str(), nullptr);  // as Python: 1e400 is inf, 5e-324 is kept
      } else if (std::from_chars(digits.data(), digits.data() + digits.size(), tok.integer).ec !=
                 std::errc()) {
        syntax_error(line, "integer literal beyond 64 bits: " + digits);
      }
      out.push_back(std::move(tok));
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      Token tok{Token::kString, {}};
      i = read_string(s, i, line, &tok.text);
      out.push_back(std::move(tok));
      continue;
    }
    bool matched = false;
    for (const char* op : kOps2)
      if (s.compare(i, 2, op) == 0) {
        out.push_back({Token::kOp, op});
        i += 2;
        matched = true;
        break;
      }
    if (matched) continue;
    if (c != '\0' && std::strchr(kOps1, c)) {
      out.push_back({Token::kOp, std::string(1, c)});
      ++i;
      continue;
    }
    syntax_error(line, std::string("unexpected character '") + c + "'");
  }
  out.push_back({Token::kEnd, {}});
  return out;
}

}  // namespace moert::tok::jinja
