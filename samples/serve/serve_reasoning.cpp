#include "serve_reasoning.h"

namespace serve {
namespace {

const std::string kOpen = "<think>", kClose = "</think>";

// The length of the longest suffix of s that is a proper prefix of tag.
size_t partial_suffix(const std::string& s, const std::string& tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.compare(s.size() - n, n, tag, 0, n) == 0) return n;
  return 0;
}

}  // namespace

ReasoningSplitter::ReasoningSplitter(bool enabled, bool in_reasoning)
    : enabled_(enabled),
      state_(!enabled       ? State::kContent
             : in_reasoning ? State::kReasoning
                            : State::kStart) {}

void ReasoningSplitter::feed(const std::string& piece, std::string* reasoning, std::string* content) {
  held_ += piece;
  if (state_ == State::kStart) {
    // Leading whitespace, then "<think>" opens the reasoning; anything else means there is none.
    const size_t lead = held_.find_first_not_of(" \t\r\n");
    if (lead == std::string::npos) return;
    const std::string rest = held_.substr(lead);
    if (rest.size() < kOpen.size() && kOpen.compare(0, rest.size(), rest) == 0) return;
    if (rest.compare(0, kOpen.size(), kOpen) == 0) {
      state_ = State::kReasoning;
      held_ = rest.substr(kOpen.size());
    } else {
      state_ = State::kContent;
    }
  }
  if (state_ == State::kReasoning) {
    const size_t at = held_.find(kClose);
    if (at == std::string::npos) {
      const size_t keep = partial_suffix(held_, kClose);
      *reasoning += held_.substr(0, held_.size() - keep);
      held_.erase(0, held_.size() - keep);
      return;
    }
    *reasoning += held_.substr(0, at);
    held_.erase(0, at + kClose.size());
    state_ = State::kContent;
    strip_ = true;
  }
  if (strip_) {
    // The reply after the reasoning, without the blank lines the model writes after the tag.
    const size_t lead = held_.find_first_not_of("\r\n");
    if (lead == std::string::npos) {
      held_.clear();
      return;
    }
    held_.erase(0, lead);
    strip_ = false;
  }
  *content += held_;
  held_.clear();
}

void ReasoningSplitter::finish(std::string* reasoning, std::string* content) {
  if (state_ == State::kReasoning)
    *reasoning += held_;
  else
    *content += held_;
  held_.clear();
}

}  // namespace serve
