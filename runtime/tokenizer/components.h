// The normalizer and pre-tokenizer of a tokenizer.json, built from its JSON description.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace moert::tok {

// Sequence / Replace / Prepend / Strip. Anything else: Error(kUnsupported) naming the type.
class Normalizer {
 public:
  // j may be null (no normalizer).
  explicit Normalizer(const nlohmann::json& j);
  ~Normalizer();
  bool identity() const { return steps_.empty(); }
  // Normalizes one piece of text (valid UTF-8).
  std::string apply(std::string_view s) const;

 private:
  struct Step {
    enum Kind { kReplaceString, kReplaceRegex, kPrepend, kStrip } kind;
    std::string pattern, content;
    std::unique_ptr<Regex> regex;
    bool left = false, right = false;
  };
  void add(const nlohmann::json& j);
  std::vector<Step> steps_;
};

// A piece of pre-tokenized text: a byte range of a buffer.
struct Span {
  uint32_t begin, end;
};

// Sequence of Split / Digits / ByteLevel (ByteLevel last). Anything else: Error(kUnsupported).
class PreTokenizer {
 public:
  explicit PreTokenizer(const nlohmann::json& j);
  ~PreTokenizer();
  // Splits buf[0, size) (the text of one piece; valid UTF-8) into pre-tokens. buf may grow (ByteLevel's
  // add_prefix_space copies pieces to its end); the spans index into the final buf.
  void split(std::string* buf, std::vector<Span>* out) const;

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    enum Kind { kSplitRegex, kSplitString, kByteLevel } kind;
    std::unique_ptr<Regex> regex;
    std::string literal;
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;
  };
  void add(const nlohmann::json& j, bool last);
  void apply_split(const Step& st, const std::string& buf, const std::vector<Span>& in,
                   std::vector<Span>* out) const;
  std::vector<Step> steps_;
};

}  // namespace moert::tok
