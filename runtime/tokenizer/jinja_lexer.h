// The lexer of moert's jinja engine: a template split into text runs and tags, with HF's whitespace rules
// (trim_blocks and lstrip_blocks, as transformers renders chat templates; '-' strips, '+' keeps), comments
// dropped and {% raw %} kept as text; then a tag's body split into tokens.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moert::tok::jinja {

struct Segment {
  enum Kind { kText, kExpr, kBlock } kind;
  std::string text;  // kText: the text as rendered; kExpr/kBlock: the tag's body between its markers
  int line;          // 1-based line of the segment's start
};

struct Token {
  enum Kind { kName, kInt, kFloat, kString, kOp, kEnd } kind;
  std::string text;  // kName, kOp: the token; kString: the decoded value
  int64_t integer = 0;
  double number = 0;
};

// The whitespace of jinja's whitespace control and of a tag's body (ASCII, as Python's \s in jinja's lexer).
inline bool is_jinja_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Throws Error(kUnsupported, "chat template: line N: ...") for an unterminated tag or raw block.
std::vector<Segment> split_template(const std::string& source);

// The tokens of a tag body, ending with one kEnd. Throws like split_template for a bad character, number
// or string literal.
std::vector<Token> tokenize(const std::string& body, int line);

// Throws Error(kUnsupported, "chat template: line N: " + message): a template moert cannot parse.
[[noreturn]] void syntax_error(int line, const std::string& message);

}  // namespace moert::tok::jinja
