// Added tokens (special and not): found in text as HF's AddedVocabulary does (aho-corasick, leftmost-longest,
// non-overlapping; single_word / lstrip / rstrip applied to each match).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moert::tok {

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word, normalized;
};

// One split of a text: an added token (id >= 0) or plain text (id == -1), as a byte range.
struct Segment {
  int32_t id;
  size_t begin, end;
};

class AddedMatcher {
 public:
  AddedMatcher() = default;
  // tokens: the subset of added tokens this matcher looks for.
  void build(const std::vector<const AddedToken*>& tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits text (valid UTF-8) like AddedVocabulary::find_matches; skip_special: special tokens are not
  // matched (encode_special_tokens). Appends to out; always covers the whole text (an empty text gives one
  // empty plain segment).
  void split(std::string_view text, bool skip_special, std::vector<Segment>* out) const;

 private:
  struct Node {
    int32_t token = -1;  // index in tokens_ ending here
    std::vector<std::pair<unsigned char, int32_t>> children;
  };
  int32_t child(int32_t node, unsigned char b) const {
    for (const auto& [c, n] : nodes_[node].children)
      if (c == b) return n;
    return -1;
  }
  // Longest token starting at text[pos], or -1.
  int32_t longest_at(std::string_view text, size_t pos, size_t* len) const;

  std::vector<const AddedToken*> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace moert::tok
