// DeepSeek-R1's reasoning: with an R1 chat template the generation prompt ends in "<think>\n", so the
// reply starts inside the reasoning; the text up to "</think>" is returned as `reasoning_content` and the
// rest as `content` (as DeepSeek's API and llama-server do). A reply that opens "<think>" itself (the
// older R1 template) is split the same way. Fed piece by piece, so a tag split across pieces is found.
#pragma once
#include <string>

namespace serve {

class ReasoningSplitter {
 public:
  // in_reasoning: the prompt already opened the reasoning (R1 template). enabled false: all is content.
  ReasoningSplitter(bool enabled, bool in_reasoning);
  // Adds a piece; appends what is now known to be reasoning / content to the two outputs.
  void feed(const std::string& piece, std::string* reasoning, std::string* content);
  // The end of the reply: flushes what was held back (a partial tag).
  void finish(std::string* reasoning, std::string* content);
  bool enabled() const { return enabled_; }
  // Past the reasoning (or none): what follows is content.
  bool in_content() const { return state_ == State::kContent; }

 private:
  enum class State { kStart, kReasoning, kContent };
  bool enabled_;
  State state_;
  std::string held_;    // text that may be the start of a tag
  bool strip_ = false;  // drop the newlines right after "</think>"
};

}  // namespace serve
