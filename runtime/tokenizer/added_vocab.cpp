#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/added_vocab.h"

#include <memory>

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace moert::tok {

namespace {

// The Rust regex crate's Unicode \w (Alphabetic, M, Nd, Pc, Join_Control): what HF's single_word checks
// (`^\w` / `\w$` on the text after / before the match).
bool is_word_char(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  static const Regex word("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]");
  std::string s;
  utf8_append(c, &s);
  size_t a, b;
  return word.find(s, 0, &a, &b);
}

uint32_t last_char(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return utf8_decode(s, &i);
}

}  // namespace

void AddedMatcher::build(const std::vector<const AddedToken*>& tokens) {
  tokens_.clear();
  nodes_.assign(1, Node{});
  for (bool& b : first_byte_) b = false;
  for (const AddedToken* t : tokens) {
    if (t->content.empty()) continue;
    const int32_t index = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(t);
    int32_t node = 0;
    for (unsigned char b : t->content) {
      int32_t next = child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(b, next);
        nodes_.emplace_back();
      }
      node = next;
    }
    // The same content twice: aho-corasick reports the first pattern added.
    if (nodes_[node].token < 0) nodes_[node].token = index;
    first_byte_[static_cast<unsigned char>(t->content[0])] = true;
  }
}

int32_t AddedMatcher::longest_at(std::string_view text, size_t pos, size_t* len) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    node = child(node, static_cast<unsigned char>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) {
      best = nodes_[node].token;
      *len = i + 1 - pos;
    }
  }
  return best;
}

void AddedMatcher::split(std::string_view text, bool skip_special, std::vector<Segment>* out) const {
  if (text.empty()) {
    out->push_back(Segment{-1, 0, 0});
    return;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  const size_t n = text.size();
  while (pos < n && !tokens_.empty()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const int32_t ti = longest_at(text, pos, &len);
    if (ti < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = *tokens_[ti];
    size_t start = pos, stop = pos + len;
    pos = stop;  // the automaton goes on after this match whether or not it is used
    if (skip_special && tok.special) continue;
    if (tok.single_word) {
      const bool start_space = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      size_t k = stop;
      const bool stop_space = stop == n || !is_word_char(utf8_decode(text, &k));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      size_t newstart = start;
      while (newstart > 0) {
        size_t b = newstart - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        size_t k = b;
        if (!is_unicode_whitespace(utf8_decode(text, &k))) break;
        newstart = b;
      }
      start = std::max(newstart, start_offset);
    }
    if (tok.rstrip) {
      while (stop < n) {
        size_t k = stop;
        if (!is_unicode_whitespace(utf8_decode(text, &k))) break;
        stop = k;
      }
    }
    if (start_offset < start) out->push_back(Segment{-1, start_offset, start});
    out->push_back(Segment{tok.id, start, stop});
    start_offset = stop;
  }
  if (start_offset != n) out->push_back(Segment{-1, start_offset, n});
}

}  // namespace moert::tok
